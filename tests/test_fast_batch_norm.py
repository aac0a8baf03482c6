"""plumbing/fast_batch_norm.py: Keras' BatchNormalization through TensorFlow's fused kernel gives
Keras' outputs, moving statistics and gradients, and leaves nothing of itself in a saved model.

Tolerances: the two paths sum in different orders in float32, so they agree to about 1e-6 relative
on values of order 1; the tests allow 1e-5 (outputs, statistics) and 1e-4 (gradients, which sum over
the whole batch). Under mixed_bfloat16 both compute in float32 and round the output to bfloat16
(8 bits of mantissa): there they may differ by one bfloat16 step (0.4% relative).
"""

import json
import os
import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf

from cnn import build_cnn
from helpers import random_images
from plumbing import fast_batch_norm


@pytest.fixture
def keras_path():
    """Keras' own computation during the test, and after it (the default of a process)."""
    fast_batch_norm.use_fused_kernel(False)
    yield
    fast_batch_norm.use_fused_kernel(False)


def _layer_run(fused: bool, x, training: bool, momentum: float = 0.9) -> dict:
    """A fresh BatchNormalization with set weights, applied to x: its output, moving statistics and
    the gradients of a weighted sum of the output with respect to x, gamma and beta."""
    fast_batch_norm.use_fused_kernel(fused)
    layer = keras.layers.BatchNormalization(momentum=momentum)
    layer.build(x.shape)
    channels = x.shape[-1]
    layer.gamma.assign(tf.linspace(0.5, 2.0, channels))
    layer.beta.assign(tf.linspace(-1.0, 1.0, channels))
    layer.moving_mean.assign(tf.fill([channels], 0.5))
    layer.moving_variance.assign(tf.fill([channels], 2.0))
    weights = random_images(x.shape[1:], batch=x.shape[0], seed=7)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=training)
        total = tf.reduce_sum(tf.cast(y, "float32") * weights)
    dx, dgamma, dbeta = tape.gradient(total, [x, layer.gamma, layer.beta])
    return dict(
        y=y.numpy().astype(np.float32),
        moving_mean=layer.moving_mean.numpy(),
        moving_variance=layer.moving_variance.numpy(),
        dx=dx.numpy(),
        dgamma=dgamma.numpy(),
        dbeta=dbeta.numpy(),
    )


@pytest.mark.parametrize("training", [True, False])
def test_fused_kernel_gives_keras_outputs_statistics_and_gradients(keras_path, training):
    x = random_images((6, 6, 5), batch=8) * 3 + 2
    fused, reference = _layer_run(True, x, training), _layer_run(False, x, training)
    for key in ("y", "moving_mean", "moving_variance"):
        np.testing.assert_allclose(
            fused[key], reference[key], rtol=1e-5, atol=1e-5, err_msg=f"{key}, {training=}"
        )
    for key in ("dx", "dgamma", "dbeta"):
        np.testing.assert_allclose(
            fused[key], reference[key], rtol=1e-4, atol=1e-5, err_msg=f"{key}, {training=}"
        )
    if training:  # the moving averages moved (by (1 - 0.9) of the way to the batch's statistics)
        assert np.all(np.abs(fused["moving_mean"] - 0.5) > 0.05), fused["moving_mean"]


def test_fused_kernel_gives_keras_outputs_under_mixed_bfloat16(keras_path):
    x = random_images((4, 4, 3), batch=4) * 2 + 1
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        fused, reference = _layer_run(True, x, True), _layer_run(False, x, True)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    np.testing.assert_allclose(fused["y"], reference["y"], rtol=8e-3, atol=8e-3)
    np.testing.assert_allclose(fused["moving_variance"], reference["moving_variance"], rtol=1e-5)


def test_importing_the_module_again_while_the_kernel_is_on_keeps_keras_call(keras_path):
    import importlib

    keras_call = fast_batch_norm.KERAS_CALL
    fast_batch_norm.use_fused_kernel(True)
    again = importlib.reload(fast_batch_norm)
    assert again.KERAS_CALL is keras_call, "Keras' own call lost: a fused call would call itself"


def _kernels_traced(x, training: bool) -> set[str]:
    """The batch-norm operations in the graph of a BatchNormalization layer applied to x."""
    layer = keras.layers.BatchNormalization()
    graph = tf.function(lambda x: layer(x, training=training)).get_concrete_function(x).graph
    return {op.type for op in graph.get_operations() if "BatchNorm" in op.type}


def test_fused_kernel_is_used_only_where_it_applies(keras_path):
    images, rows = random_images((4, 4, 3)), tf.random.stateless_normal((4, 6), [0, 0])
    fast_batch_norm.use_fused_kernel(True)
    assert _kernels_traced(images, True) == {"FusedBatchNormV3"}
    assert _kernels_traced(images, False) == {"FusedBatchNormV3"}
    assert _kernels_traced(rows, True) == set(), "2-D input: Keras' own computation"
    fast_batch_norm.use_fused_kernel(False)
    assert _kernels_traced(images, True) == set(), "switched off: Keras' own computation"


def test_train_py_start_up_switches_the_fused_kernel_on_for_a_cpu(keras_path, capsys):
    from plumbing import machine

    assert keras.layers.BatchNormalization.call is fast_batch_norm.KERAS_CALL
    machine.start(dict(device="cpu", mixed_precision=False, deterministic=False))
    assert keras.layers.BatchNormalization.call is fast_batch_norm.fused_call
    assert "training on the CPU" in capsys.readouterr().out


def _train_one_step(model, seed: int = 0):
    """One SGD step on random images, so the moving statistics and weights leave their start."""
    model.compile(
        keras.optimizers.SGD(0.1), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    x = random_images((8, 8, 3), batch=16, seed=seed) * 2 + 1
    model.train_on_batch(x, np.arange(16) % 10)


def test_a_model_saved_with_the_fused_kernel_holds_plain_batch_normalization(keras_path, tmp_path):
    fast_batch_norm.use_fused_kernel(True)
    keras.utils.set_random_seed(0)
    model = build_cnn((8, 8, 3), 10, widths=(4,), convs_per_stage=1, batch_norm=True)
    _train_one_step(model)
    model.save(tmp_path / "best.keras")
    with zipfile.ZipFile(tmp_path / "best.keras") as archive:
        config = json.loads(archive.read("config.json"))
    norms = [
        (layer["module"], layer["class_name"], layer["config"]["name"])
        for layer in config["config"]["layers"]
        if "Norm" in layer["class_name"]
    ]
    assert norms == [("keras.layers", "BatchNormalization", "stage1_conv1_bn")], norms


@pytest.mark.slow
def test_a_saved_batch_norm_model_loads_in_a_python_that_imports_nothing_of_ours(
    keras_path, tmp_path
):
    """Fresh interpreter, cwd tmp_path, no PYTHONPATH: only keras.models.load_model. Slow: it starts
    TensorFlow once more (about 5-10 s on 2 cores)."""
    fast_batch_norm.use_fused_kernel(True)
    keras.utils.set_random_seed(0)
    model = build_cnn((8, 8, 3), 10, widths=(4,), convs_per_stage=1, batch_norm=True)
    _train_one_step(model)
    model.save(tmp_path / "best.keras")
    x = random_images((8, 8, 3), batch=2, seed=3).numpy()
    np.save(tmp_path / "x.npy", x)
    expected = model(x, training=False).numpy()
    code = (
        "import sys, numpy as np, keras\n"
        "assert not any(name.split('.')[0] in ('plumbing', 'cnn') for name in sys.modules)\n"
        "model = keras.models.load_model('best.keras')\n"
        "np.save('logits.npy', model(np.load('x.npy'), training=False))\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "logits.npy"), expected, rtol=1e-5, atol=1e-5)
