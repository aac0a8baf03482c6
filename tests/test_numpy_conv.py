"""Graded tests, the NumPy track, part 2 (numpy_conv.py): convolution and pooling, forward and backward,
naive and vectorised, against TensorFlow's ops and against central differences."""

import numpy as np
import pytest
import tensorflow as tf

import numpy_conv as nc
from numpy_mlp import numerical_gradient, relative_error

STAGE = "NumPy conv"
CONVOLUTIONS = [(nc.conv2d_forward_naive, nc.conv2d_backward_naive), (nc.conv2d_forward, nc.conv2d_backward)]


@pytest.fixture
def conv_inputs():
    rng = np.random.default_rng(0)
    return rng.standard_normal((2, 7, 6, 3)), rng.standard_normal((3, 3, 3, 4)), rng.standard_normal(4)


@pytest.mark.points(1)
@pytest.mark.parametrize("stride,pad", [(1, 0), (1, 1), (2, 1), (2, 0)])
def test_conv2d_matches_tensorflow(conv_inputs, stride, pad):
    x, w, b = conv_inputs
    padding = [[0, 0], [pad, pad], [pad, pad], [0, 0]]
    xt, wt = tf.Variable(x), tf.Variable(w)
    with tf.GradientTape() as tape:
        expected = tf.nn.conv2d(xt, wt, stride, padding) + b
        d_out = np.arange(expected.numpy().size).reshape(expected.shape) % 7 - 3.0  # a known gradient
        weighted = tf.reduce_sum(expected * tf.constant(d_out))
    dx_tf, dw_tf = tape.gradient(weighted, [xt, wt])
    for forward, backward in CONVOLUTIONS:
        np.testing.assert_allclose(forward(x, w, b, stride, pad), expected.numpy(), atol=1e-10)
        dx, dw, db = backward(d_out, x, w, stride, pad)
        np.testing.assert_allclose(dx, dx_tf.numpy(), atol=1e-10)
        np.testing.assert_allclose(dw, dw_tf.numpy(), atol=1e-10)
        np.testing.assert_allclose(db, d_out.sum(axis=(0, 1, 2)), atol=1e-10)


@pytest.mark.points(2)
def test_conv2d_backward_matches_numerical_gradients(conv_inputs):
    x, w, b = conv_inputs
    for forward, backward in CONVOLUTIONS:  # yours (naive), then the vectorised one
        d_out = np.random.default_rng(1).standard_normal(forward(x, w, b, 2, 1).shape)
        dx, dw, db = backward(d_out, x, w, 2, 1)

        def objective(forward=forward, d_out=d_out):
            return float(np.sum(forward(x, w, b, 2, 1) * d_out))
        for name, analytic, param in (("dx", dx, x), ("dw", dw, w), ("db", db, b)):
            error = relative_error(analytic, numerical_gradient(objective, param))
            assert error < 1e-8, f"{backward.__name__} {name}: relative error {error:.2e}"


@pytest.mark.points(1)
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("size,stride", [(2, 2), (3, 2), (2, 1)])
def test_pooling_matches_tensorflow(kind, size, stride):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 7, 6, 3))
    xt = tf.Variable(x)
    pool = tf.nn.max_pool2d if kind == "max" else tf.nn.avg_pool2d
    with tf.GradientTape() as tape:
        expected = pool(xt, size, stride, "VALID")
        d_out = np.random.default_rng(3).standard_normal(expected.shape)
        objective = tf.reduce_sum(expected * d_out)
    dx_tf = tape.gradient(objective, xt).numpy()
    forwards = (getattr(nc, f"{kind}_pool_forward_naive"), getattr(nc, f"{kind}_pool_forward"))
    backwards = (getattr(nc, f"{kind}_pool_backward_naive"), getattr(nc, f"{kind}_pool_backward"))
    for forward, backward in zip(forwards, backwards):
        np.testing.assert_allclose(forward(x, size, stride), expected.numpy(), atol=1e-12)
        dx = backward(d_out, x, size, stride)
        np.testing.assert_allclose(dx, dx_tf, atol=1e-12)
        assert nc.input_gradient_error(lambda x, f=forward: f(x, size, stride),
                                       lambda d, x, g=backward: g(d, x, size, stride), x, rng) < 1e-8
