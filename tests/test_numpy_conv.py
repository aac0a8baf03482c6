"""Graded tests, the NumPy track, part 2 (numpy_conv.py): convolution and pooling, forward and
backward, naive and vectorised, against TensorFlow's ops and against central differences.

Each function is checked on its own: while a naive one runs, the vectorised ones (and their window
view) raise, and the other way round, so a naive function that only calls the vectorised one (or a
vectorised one that is the naive one) fails instead of passing on the other's work.
"""

from unittest import mock

import numpy as np
import pytest
import tensorflow as tf

import numpy_conv as nc
from numpy_mlp import numerical_gradient, relative_error

STAGE = "NumPy conv"
CONVOLUTIONS = [
    (nc.conv2d_forward_naive, nc.conv2d_backward_naive),
    (nc.conv2d_forward, nc.conv2d_backward),
]
VECTORISED = (
    "conv2d_forward",
    "conv2d_backward",
    "max_pool_forward",
    "max_pool_backward",
    "avg_pool_forward",
    "avg_pool_backward",
    "_windows",
)
NAIVE = (
    "conv2d_forward_naive",
    "conv2d_backward_naive",
    "max_pool_forward_naive",
    "max_pool_backward_naive",
    "avg_pool_forward_naive",
    "avg_pool_backward_naive",
    "_pool_forward_naive",
)


def alone(function):
    """`function` wrapped so that, while it runs, every function of the other family (naive or
    vectorised) in numpy_conv raises an AssertionError naming both."""
    naive = function.__name__.endswith("_naive")
    others = VECTORISED if naive else NAIVE

    def forbidden(name):
        def call(*args, **kwargs):
            if naive:
                raise AssertionError(
                    f"{function.__name__} calls numpy_conv.{name}: write the naive version "
                    f"with loops over output positions, not with the vectorised code"
                )
            raise AssertionError(
                f"{function.__name__} calls numpy_conv.{name}: the vectorised version must "
                f"not call the naive one"
            )

        return call

    def run(*args, **kwargs):
        with mock.patch.multiple(nc, **{name: forbidden(name) for name in others}):
            return function(*args, **kwargs)

    run.__name__ = function.__name__
    return run


@pytest.fixture
def conv_inputs():
    rng = np.random.default_rng(0)
    return (
        rng.standard_normal((2, 7, 6, 3)),
        rng.standard_normal((3, 3, 3, 4)),
        rng.standard_normal(4),
    )


@pytest.mark.points(1)
@pytest.mark.parametrize("stride,pad", [(1, 0), (1, 1), (2, 1), (2, 0)])
def test_conv2d_matches_tensorflow(conv_inputs, stride, pad):
    x, w, b = conv_inputs
    padding = [[0, 0], [pad, pad], [pad, pad], [0, 0]]
    xt, wt = tf.Variable(x), tf.Variable(w)
    with tf.GradientTape() as tape:
        expected = tf.nn.conv2d(xt, wt, stride, padding) + b
        d_out = (
            np.arange(expected.numpy().size).reshape(expected.shape) % 7 - 3.0
        )  # a known gradient
        weighted = tf.reduce_sum(expected * tf.constant(d_out))
    dx_tf, dw_tf = tape.gradient(weighted, [xt, wt])
    for forward, backward in CONVOLUTIONS:
        where = f"stride {stride}, pad {pad}"
        np.testing.assert_allclose(
            alone(forward)(x, w, b, stride, pad),
            expected.numpy(),
            atol=1e-10,
            err_msg=f"{forward.__name__} vs tf.nn.conv2d, {where}",
        )
        dx, dw, db = alone(backward)(d_out, x, w, stride, pad)
        np.testing.assert_allclose(
            dx, dx_tf.numpy(), atol=1e-10, err_msg=f"{backward.__name__} dx, {where}"
        )
        np.testing.assert_allclose(
            dw, dw_tf.numpy(), atol=1e-10, err_msg=f"{backward.__name__} dw, {where}"
        )
        np.testing.assert_allclose(
            db,
            d_out.sum(axis=(0, 1, 2)),
            atol=1e-10,
            err_msg=f"{backward.__name__} db (the sum of d_out), {where}",
        )


@pytest.mark.points(2)
def test_conv2d_backward_matches_numerical_gradients(conv_inputs):
    x, w, b = conv_inputs
    for forward, backward in CONVOLUTIONS:  # yours (naive), then the vectorised one
        forward, backward = alone(forward), alone(backward)
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
    for forward, backward in zip(map(alone, forwards), map(alone, backwards)):
        where = f"{size}x{size} windows, stride {stride}"
        np.testing.assert_allclose(
            forward(x, size, stride),
            expected.numpy(),
            atol=1e-12,
            err_msg=f"{forward.__name__} vs tf.nn.{kind}_pool2d, {where}",
        )
        dx = backward(d_out, x, size, stride)
        np.testing.assert_allclose(
            dx, dx_tf, atol=1e-12, err_msg=f"{backward.__name__} dx, {where}"
        )
        error = nc.input_gradient_error(
            lambda x, f=forward: f(x, size, stride),
            lambda d, x, g=backward: g(d, x, size, stride),
            x,
            rng,
        )
        assert error < 1e-8, (
            f"{backward.__name__}: relative error {error:.2e} against central differences"
        )
