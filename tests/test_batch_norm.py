"""Graded tests, stage 4: batch norm in the conv block (cnn.py: conv_block with batch_norm=True), as the
`cnn-bn` preset and the tuned CNN use it.

The layer sits after the convolution (which loses its bias); in training it normalises each channel
with the batch's statistics and updates moving averages; at inference it uses those, so an example's
output does not depend on its batch. Parameter counts, shapes, initial loss, over-fitting (scored in
training mode, so Keras' own BatchNormalization, whose moving averages adapt slowly, passes too).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from cnn import build_cnn, conv_block
from helpers import (
    check_initial_loss,
    check_logits,
    check_overfits,
    cnn_count,
    preset_builder,
    random_images,
)

STAGE = "batch norm"


def _bn_model():
    model = build_cnn((8, 8, 3), 10, widths=(6,), convs_per_stage=1, batch_norm=True)
    conv, bn = model.get_layer("stage1_conv1"), model.get_layer("stage1_conv1_bn")
    return keras.Model(model.input, [conv.output, bn.output]), bn


@pytest.mark.points(2)
def test_conv_block_with_batch_norm_has_no_bias_and_a_named_batch_norm_layer():
    inputs = keras.Input((8, 8, 3))
    block = keras.Model(inputs, conv_block(inputs, 5, stride=2, batch_norm=True, name="c"))
    assert not block.get_layer("c").use_bias, (
        "with batch norm the convolution needs no bias (beta is one)"
    )
    names = [layer.name for layer in block.layers]
    assert "c_bn" in names, (
        f"no layer named c_bn (the batch norm of conv_block(name='c')) in {names}"
    )
    assert names.index("c_bn") == names.index("c") + 1, (
        f"batch norm right after the convolution: {names}"
    )
    out = block(random_images((8, 8, 3)), training=False).numpy()
    assert out.shape == (4, 4, 4, 5), f"output of shape {out.shape}, expected (4, 4, 4, 5)"
    assert out.min() >= 0, (
        f"a negative output ({out.min():.3f}): the ReLU comes after the batch norm"
    )


@pytest.mark.points(1)
def test_batch_norm_normalises_each_channel_in_training():
    probe, _ = _bn_model()
    _, normalised = probe(random_images((8, 8, 3), batch=32) * 3 + 1, training=True)
    per_channel = normalised.numpy().reshape(-1, 6)
    np.testing.assert_allclose(
        per_channel.mean(axis=0),
        0,
        atol=1e-4,
        err_msg="in training, each channel's mean over the batch is 0",
    )
    np.testing.assert_allclose(
        per_channel.var(axis=0),
        1,
        atol=2e-3,
        err_msg="in training, each channel's variance over the batch is 1",
    )


@pytest.mark.points(1)
def test_batch_norm_moving_statistics_change_only_in_training():
    probe, bn = _bn_model()
    x = random_images((8, 8, 3), batch=16) * 2 + 5
    probe(x, training=False)
    np.testing.assert_array_equal(
        bn.moving_mean.numpy(), 0, err_msg="inference leaves the moving mean at 0"
    )
    np.testing.assert_array_equal(
        bn.moving_variance.numpy(), 1, err_msg="inference leaves the moving variance at 1"
    )
    conv_out, _ = probe(x, training=True)
    batch_mean = conv_out.numpy().reshape(-1, 6).mean(axis=0)
    np.testing.assert_allclose(
        bn.moving_mean.numpy(),
        (1 - bn.momentum) * batch_mean,
        rtol=1e-4,
        atol=1e-6,
        err_msg="one training step: moving mean = (1 - momentum) * the batch mean",
    )
    assert (bn.moving_variance.numpy() != 1).all(), (
        "a training step must update the moving variance"
    )


@pytest.mark.points(1)
def test_batch_norm_inference_treats_examples_independently():
    probe, _ = _bn_model()
    for _ in range(3):  # move the statistics away from their initial values
        probe(random_images((8, 8, 3), batch=16, seed=1) + 2, training=True)
    a, b = random_images((8, 8, 3), batch=8, seed=2), random_images((8, 8, 3), batch=8, seed=3) * 5
    out_a = probe(a, training=False)[1].numpy()
    out_mixed = probe(tf.concat([a[:1], b[1:]], axis=0), training=False)[1].numpy()
    np.testing.assert_allclose(
        out_a[0],
        out_mixed[0],
        rtol=1e-5,
        atol=1e-5,
        err_msg="at inference, an example's output must not depend on its batch",
    )
    in_training = probe(tf.concat([a[:1], b[1:]], axis=0), training=True)[1].numpy()
    assert not np.allclose(out_a[0], in_training[0], atol=1e-3), (
        "training mode must use batch statistics"
    )


@pytest.mark.points(1)
@pytest.mark.parametrize(
    "options,head_inputs",
    [
        (dict(widths=(8, 16), convs_per_stage=1, head="gap"), 16),
        (dict(widths=(8, 16, 32), convs_per_stage=2, head="flatten", dense_units=10), 4 * 4 * 32),
    ],
)
def test_parameter_count_with_batch_norm(options, head_inputs):
    model = build_cnn((32, 32, 3), 10, batch_norm=True, **options)
    expected = cnn_count(
        3,
        options["widths"],
        options["convs_per_stage"],
        True,
        head_inputs,
        options.get("dense_units", 0),
    )
    assert model.count_params() == expected, (
        f"{model.count_params()} parameters; the formula: {expected}"
    )


@pytest.mark.points(1)
@pytest.mark.parametrize("preset", ["cnn-bn", "tuned"])
def test_shapes_and_initial_loss(preset, real_images):
    check_logits(preset_builder(preset)((28, 28, 1), 10), (28, 28, 1))
    check_initial_loss(preset_builder(preset), real_images)


# Steps to 100% on 32 sample images (the cnn-bn preset's network, Adam 3e-3), scored in training
# mode: the slowest of seeds 0-4 needed 9, with the former fused layer (momentum 0.9) and with a
# stock keras.layers.BatchNormalization (momentum 0.99) alike; the test allows 20. (In inference
# mode the stock layer's moving averages are still far from the batch statistics after 40 steps.)
@pytest.mark.points(3)
def test_overfits_32_real_images(real_images):
    check_overfits(
        preset_builder("cnn-bn"), real_images, learning_rate=3e-3, steps=20, num_images=32
    )
