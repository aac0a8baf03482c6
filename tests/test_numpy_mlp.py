"""Graded tests, the NumPy track, part 1 (numpy_mlp.py: NumpyMLP.loss): the handout's toy numbers,
gradient checks against central differences, agreement with TensorFlow, and SGD on the toy problem.

The loss and its gradients are computed with TensorFlow out of reach (numpy_loss): backpropagation
is what this stage is about, so gradients taken by TensorFlow's autodiff fail instead of passing.
"""

import contextlib
import sys
from unittest import mock

import numpy as np
import pytest
import tensorflow as tf

import numpy_mlp as nm

STAGE = "NumPy net"
FRAMEWORKS = ("tensorflow", "keras", "torch", "jax")  # what the NumPy net must do without


class _Unavailable:
    """Stands in for a framework's module or object in numpy_mlp while NumpyMLP.loss runs: it
    raises."""

    def __init__(self, name: str):
        self.name = name

    def __getattr__(self, attribute):
        raise AssertionError(
            f"NumpyMLP.loss uses {self.name}.{attribute}: compute the loss and the "
            f"gradients with NumPy only (backpropagation by hand, not autodiff)"
        )

    def __call__(self, *args, **kwargs):
        raise AssertionError(
            f"NumpyMLP.loss calls {self.name}: compute the loss and the gradients with "
            f"NumPy only (backpropagation by hand, not autodiff)"
        )


def _framework(value) -> str | None:
    """The framework a name in numpy_mlp refers to (a module, or anything defined in one), or
    None."""
    where = value.__name__ if isinstance(value, type(np)) else getattr(value, "__module__", None)
    top = where.split(".")[0] if isinstance(where, str) else None
    return top if top in FRAMEWORKS else None


@contextlib.contextmanager
def _without_frameworks():
    """Importing TensorFlow, Keras, PyTorch or JAX fails, and numpy_mlp's names for them raise."""
    saved = {name: sys.modules[name] for name in FRAMEWORKS if name in sys.modules}
    stand_ins = {name: _Unavailable(name) for name, value in vars(nm).items() if _framework(value)}
    sys.modules.update(
        {name: None for name in FRAMEWORKS}
    )  # None: `import tensorflow` raises ImportError
    try:
        with mock.patch.multiple(nm, **stand_ins) if stand_ins else contextlib.nullcontext():
            yield
    finally:
        for name in FRAMEWORKS:
            sys.modules.pop(name, None)
        sys.modules.update(saved)


def numpy_loss(net, X, y=None, reg: float = 0.0):
    """net.loss(X, y, reg) without TensorFlow (or another framework); checks the results are
    NumPy's."""
    try:
        with _without_frameworks():
            result = net.loss(X, y, reg=reg)
    except ImportError as error:
        raise AssertionError(
            f"NumpyMLP.loss imports {error.name}: compute the loss and the gradients with "
            f"NumPy only (backpropagation by hand, not autodiff)"
        ) from None
    if y is None:
        assert isinstance(result, np.ndarray), (
            f"scores of type {type(result).__name__}, not a NumPy array"
        )
        return result
    loss, grads = result
    assert isinstance(loss, (float, np.floating)), (
        f"a loss of type {type(loss).__name__}, expected a float"
    )
    for key, grad in grads.items():
        assert isinstance(grad, np.ndarray), (
            f"the gradient of {key} is a {type(grad).__name__}, expected a "
            f"NumPy array: backpropagate with NumPy"
        )
    return loss, grads


def tf_loss_and_grads(params: dict, X, y, reg: float):
    """The same network written with TensorFlow ops in float64, differentiated by GradientTape."""
    variables = {k: tf.Variable(v, dtype=tf.float64) for k, v in params.items()}
    num_layers = len(params) // 2
    with tf.GradientTape() as tape:
        h = tf.constant(X, tf.float64)
        for layer in range(1, num_layers + 1):
            h = h @ variables[f"W{layer}"] + variables[f"b{layer}"]
            if layer < num_layers:
                h = tf.nn.relu(h)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, h))
        loss += reg * tf.add_n(
            [tf.reduce_sum(variables[f"W{n}"] ** 2) for n in range(1, num_layers + 1)]
        )
    grads = tape.gradient(loss, variables)
    return h.numpy(), float(loss), {k: g.numpy() for k, g in grads.items()}


@pytest.mark.points(2)
def test_handout_toy_loss():
    net, X, y = nm.handout_toy()
    loss, _ = numpy_loss(net, X, y, reg=0.05)
    assert abs(loss - 1.30378789133) < 1e-10, f"loss {loss!r}, the handout says 1.30378789133"
    scores, tf_loss, _ = tf_loss_and_grads(net.params, X, y, reg=0.05)
    np.testing.assert_allclose(
        numpy_loss(net, X),
        scores,
        rtol=1e-12,
        atol=1e-12,
        err_msg="the scores (net.loss(X), without labels) of the toy network",
    )
    assert abs(loss - tf_loss) < 1e-12, f"loss {loss!r}, TensorFlow's {tf_loss!r}"


@pytest.mark.points(1)
@pytest.mark.parametrize(
    "sizes", [[4, 10, 3], [4, 10, 8, 3], [4, 6, 7, 5, 3]], ids=["1 hidden", "2 hidden", "3 hidden"]
)
@pytest.mark.parametrize("reg", [0.0, 0.05])
def test_gradients_match_numerical_ones(sizes, reg):
    _, X, y = nm.handout_toy()
    net = nm.NumpyMLP(
        sizes, weight_scale=None, seed=3
    )  # He scaling: gradients do not vanish with depth
    assert nm.min_abs_preactivation(net, X) > 1e-4, (
        "central differences need pre-activations away from 0"
    )
    _, grads = numpy_loss(net, X, y, reg=reg)
    for key, param in net.params.items():
        numeric = nm.numerical_gradient(lambda: net.loss(X, y, reg=reg)[0], param)
        error = nm.relative_error(grads[key], numeric)
        assert error < 1e-8, (
            f"{key}: relative error {error:.2e} between backprop and central differences"
        )


@pytest.mark.points(1)
@pytest.mark.parametrize("sizes", [[4, 10, 3], [4, 10, 8, 3]])
def test_same_loss_and_gradients_as_tensorflow(sizes):
    _, X, y = nm.handout_toy()
    net = nm.NumpyMLP(sizes, weight_scale=0.1, seed=5)
    loss, grads = numpy_loss(net, X, y, reg=0.1)
    _, tf_loss, tf_grads = tf_loss_and_grads(net.params, X, y, reg=0.1)
    assert abs(loss - tf_loss) < 1e-10, f"loss {loss!r}, TensorFlow's {tf_loss!r}"
    assert sorted(grads) == sorted(tf_grads), (
        f"gradients for {sorted(grads)}, expected {sorted(tf_grads)}"
    )
    for key in grads:
        np.testing.assert_allclose(
            grads[key], tf_grads[key], atol=1e-10, err_msg=f"the gradient of {key} vs TensorFlow's"
        )


@pytest.mark.points(1)
def test_relative_error_can_fail():
    assert nm.relative_error(np.array([1.0, 2.0]), np.array([1.0, 2.001])) > 1e-4, (
        "relative_error([1, 2], [1, 2.001]) must exceed 1e-4"
    )
    net, X, y = nm.handout_toy()
    _, grads = net.loss(X, y, reg=0.05)
    wrong = net.params["W2"].copy()  # forget the regulariser's gradient: the check must notice
    numeric = nm.numerical_gradient(lambda: net.loss(X, y, reg=0.05)[0], net.params["W2"])
    assert nm.relative_error(grads["W2"] - 2 * 0.05 * wrong, numeric) > 1e-3, (
        "a W2 gradient without the regulariser's term must fail the gradient check"
    )


@pytest.mark.points(2)
def test_sgd_fits_the_toy_problem():
    net, X, y = nm.handout_toy()
    history = net.train(X, y, X, y, learning_rate=1e-1, reg=5e-6, num_iters=100, batch_size=200)
    assert history["loss_history"][-1] <= 0.02, (
        f"final training loss {history['loss_history'][-1]:.4f}"
    )
    assert history["loss_history"][0] > 1.0, (
        f"first loss {history['loss_history'][0]:.4f}, expected above 1"
    )
    assert history["val_acc_history"][-1] == 1.0, (
        f"final accuracy {history['val_acc_history'][-1]:.0%}"
    )
