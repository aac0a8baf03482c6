"""Tests for the model stages: shapes, parameter counts, batch norm, dropout, initialisation,
weight penalty, initial loss, over-fitting a small batch, and a float64 gradient check."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import cifar10_input as ci
from cnn import CNN_STAGES, FusedBatchNorm, build_cnn
from linear_model import build_linear_model, weight_penalty
from mlp import build_mlp

BUILDERS = {
    "linear": build_linear_model,
    "mlp": build_mlp,
    **{stage: (lambda shape, classes, o=options: build_cnn(shape, classes, **o)) for stage, options in CNN_STAGES.items()},
}


def _images(shape, batch=4, seed=0):
    return tf.random.stateless_normal((batch, *shape), [seed, 0])


# ----------------------------------------------------------------------------- shapes and counts
@pytest.mark.parametrize("input_shape", [(32, 32, 3), (24, 24, 3), (28, 28, 1)])
@pytest.mark.parametrize("name", list(BUILDERS))
def test_output_is_logits_of_the_right_shape(name, input_shape):
    model = BUILDERS[name](input_shape, 10)
    logits = model(_images(input_shape, batch=3), training=False)
    assert tuple(logits.shape) == (3, 10) and logits.dtype == tf.float32
    assert not np.allclose(np.sum(np.exp(logits.numpy()), axis=1), 1.0), "outputs must be logits, not softmax"


def test_linear_parameter_count():
    assert build_linear_model((32, 32, 3), 10).count_params() == 3072 * 10 + 10


@pytest.mark.parametrize("hidden", [(100,), (256, 64), (50, 40, 30)])
def test_mlp_parameter_count(hidden):
    sizes = [3072, *hidden, 10]
    expected = sum(fan_in * fan_out + fan_out for fan_in, fan_out in zip(sizes, sizes[1:]))
    assert build_mlp((32, 32, 3), 10, hidden_units=hidden).count_params() == expected


def _cnn_count(in_channels, widths, convs, batch_norm, head_inputs, dense_units=0, classes=10):
    count, c_in = 0, in_channels
    for width in widths:
        for _ in range(convs):
            count += 9 * c_in * width + (4 * width if batch_norm else width)  # BN: gamma, beta, 2 moving stats
            c_in = width
    if dense_units:
        count += head_inputs * dense_units + dense_units
        head_inputs = dense_units
    return count + head_inputs * classes + classes


@pytest.mark.parametrize("options,head_inputs", [
    (dict(widths=(8, 16), convs_per_stage=1, batch_norm=True, head="gap"), 16),
    (dict(widths=(8, 16), convs_per_stage=2, batch_norm=False, head="gap"), 16),
    (dict(widths=(8, 16, 32), convs_per_stage=1, batch_norm=True, head="flatten"), 4 * 4 * 32),
    (dict(widths=(8,), convs_per_stage=2, batch_norm=False, head="flatten", dense_units=20,
          downsample="stride"), 16 * 16 * 8),
])
def test_cnn_parameter_count(options, head_inputs):
    model = build_cnn((32, 32, 3), 10, **options)
    expected = _cnn_count(3, options["widths"], options["convs_per_stage"], options["batch_norm"], head_inputs,
                          options.get("dense_units", 0))
    assert model.count_params() == expected


@pytest.mark.parametrize("size", [32, 28, 27])
@pytest.mark.parametrize("downsample", ["pool", "stride"])
def test_downsampled_feature_map_sizes(size, downsample):
    def out_size(n, kernel, stride, pad):  # the convolution handout's formula
        return (n + 2 * pad - kernel) // stride + 1

    model = build_cnn((size, size, 3), 10, widths=(4, 4, 4), convs_per_stage=2, downsample=downsample)
    expected = size
    for stage in (1, 2, 3):
        if downsample == "pool":
            expected = out_size(expected, kernel=2, stride=2, pad=0)
            layer = model.get_layer(f"stage{stage}_pool")
        else:
            expected = out_size(expected, kernel=3, stride=2, pad=1)
            layer = model.get_layer(f"stage{stage}_conv2")
        assert layer.output.shape[1:3] == (expected, expected), f"stage {stage}"


# ----------------------------------------------------------------------------- batch norm and dropout
def _bn_model():
    model = build_cnn((8, 8, 3), 10, widths=(6,), convs_per_stage=1, batch_norm=True)
    conv, bn = model.get_layer("stage1_conv1"), model.get_layer("stage1_conv1_bn")
    return keras.Model(model.input, [conv.output, bn.output]), bn


def test_batch_norm_normalises_each_channel_in_training():
    probe, _ = _bn_model()
    _, normalised = probe(_images((8, 8, 3), batch=32) * 3 + 1, training=True)
    per_channel = normalised.numpy().reshape(-1, 6)
    np.testing.assert_allclose(per_channel.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(per_channel.var(axis=0), 1, atol=2e-3)


def test_batch_norm_moving_statistics_change_only_in_training():
    probe, bn = _bn_model()
    x = _images((8, 8, 3), batch=16) * 2 + 5
    probe(x, training=False)
    np.testing.assert_array_equal(bn.moving_mean.numpy(), 0)
    np.testing.assert_array_equal(bn.moving_variance.numpy(), 1)
    conv_out, _ = probe(x, training=True)
    batch_mean = conv_out.numpy().reshape(-1, 6).mean(axis=0)
    np.testing.assert_allclose(bn.moving_mean.numpy(), (1 - bn.momentum) * batch_mean, rtol=1e-4, atol=1e-6)
    assert (bn.moving_variance.numpy() != 1).all()


def test_batch_norm_inference_treats_examples_independently():
    probe, _ = _bn_model()
    for _ in range(3):  # move the statistics away from their initial values
        probe(_images((8, 8, 3), batch=16, seed=1) + 2, training=True)
    a, b = _images((8, 8, 3), batch=8, seed=2), _images((8, 8, 3), batch=8, seed=3) * 5
    out_a = probe(a, training=False)[1].numpy()
    out_mixed = probe(tf.concat([a[:1], b[1:]], axis=0), training=False)[1].numpy()
    np.testing.assert_allclose(out_a[0], out_mixed[0], rtol=1e-5, atol=1e-5)
    in_training = probe(tf.concat([a[:1], b[1:]], axis=0), training=True)[1].numpy()
    assert not np.allclose(out_a[0], in_training[0], atol=1e-3), "training mode must use batch statistics"


def test_fused_batch_norm_matches_keras_batch_normalization():
    x = _images((8, 8, 5), batch=16) * 2 + 3
    fused = FusedBatchNorm(momentum=0.9, epsilon=1e-3)
    reference = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-3)
    np.testing.assert_allclose(fused(x, training=True), reference(x, training=True), atol=1e-4)
    for layer in (fused, reference):  # same moving statistics, up to Bessel's correction of the variance
        layer.moving_variance.assign(tf.ones(5) * 2.0)
        layer.moving_mean.assign(tf.ones(5) * 3.0)
    np.testing.assert_allclose(fused(x, training=False), reference(x, training=False), atol=1e-5)


def test_dropout_is_identity_at_inference_and_scales_kept_units_in_training():
    rate = 0.3
    model = build_mlp((4, 4, 1), 10, hidden_units=(2000,), dropout=rate)
    dropout = model.get_layer("dropout1")
    h = tf.ones((50, 2000)) * 2.0
    np.testing.assert_array_equal(dropout(h, training=False), h)
    out = dropout(h, training=True).numpy()
    kept = out != 0
    assert abs(kept.mean() - (1 - rate)) < 0.01, f"kept fraction {kept.mean():.3f}, expected {1 - rate}"
    np.testing.assert_allclose(out[kept], 2.0 / (1 - rate), rtol=1e-6)


# ----------------------------------------------------------------------------- initialisation and penalty
@pytest.mark.parametrize("layer_name,fan_in", [("hidden1", 3072), ("hidden2", 512)])
def test_he_normal_std(layer_name, fan_in):
    model = build_mlp((32, 32, 3), 10, hidden_units=(512, 256), initializer="he_normal")
    weights = model.get_layer(layer_name).kernel.numpy()
    tolerance = 4 / math.sqrt(2 * weights.size)  # four standard errors of a sample std
    assert abs(weights.std() / math.sqrt(2 / fan_in) - 1) < tolerance


def test_conv_kernels_are_he_normal():
    model = build_cnn((32, 32, 3), 10, widths=(64, 128), convs_per_stage=1)
    weights = model.get_layer("stage2_conv1").kernel.numpy()
    assert abs(weights.std() / math.sqrt(2 / (9 * 64)) - 1) < 0.02


@pytest.mark.parametrize("initializer,scale,expected_std,bound", [
    ("glorot_uniform", None, math.sqrt(2 / (3072 + 512)), math.sqrt(6 / (3072 + 512))),
    ("normal", 0.05, 0.05, None),
    ("uniform", 0.1, 0.1 / math.sqrt(3), 0.1),
])
def test_chosen_initializer_is_applied(initializer, scale, expected_std, bound):
    options = {"init_scale": scale} if scale else {}
    model = build_mlp((32, 32, 3), 10, hidden_units=(512,), initializer=initializer, **options)
    weights = model.get_layer("hidden1").kernel.numpy()
    assert abs(weights.std() / expected_std - 1) < 0.01
    if bound:
        assert np.abs(weights).max() <= bound


def test_weight_penalty_is_the_sum_of_squared_kernels():
    model = build_cnn((16, 16, 3), 10, widths=(4, 8), head="flatten", dense_units=12, weight_decay=1e-3)
    by_hand = sum(np.sum(w.numpy().astype(np.float64) ** 2) for w in model.weights if w.name == "kernel")
    assert float(weight_penalty(model)) == pytest.approx(by_hand, rel=1e-5)
    model(_images((16, 16, 3)), training=False)
    assert float(sum(model.losses)) == pytest.approx(1e-3 * by_hand, rel=1e-5), "L2 losses = strength * penalty"


def test_l1_regularizer():
    model = build_mlp((8, 8, 3), 10, hidden_units=(16,), regularizer="l1", weight_decay=0.01)
    model(_images((8, 8, 3)), training=False)
    by_hand = 0.01 * sum(np.abs(w.numpy()).sum() for w in model.weights if w.name == "kernel")
    assert float(sum(model.losses)) == pytest.approx(by_hand, rel=1e-5)


@pytest.mark.parametrize("bad", [dict(activation="swish"), dict(initializer="zeros"), dict(dropout=1.0),
                                 dict(regularizer="l3", weight_decay=0.1), dict(weight_decay=-1)])
def test_bad_mlp_options_name_the_problem(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        build_mlp((8, 8, 3), 10, **bad)


# ----------------------------------------------------------------------------- on real images
@pytest.fixture(scope="module")
def real_images(mini_dir):
    """512 normalised real training images and their labels."""
    images, labels = ci.load_split(mini_dir, "train")
    mean, std = ci.channel_stats(images)
    return ((images[:512] / 255.0 - mean) / std).astype(np.float32), labels[:512]


@pytest.mark.parametrize("name", list(BUILDERS))
def test_initial_loss_is_ln10(name, real_images):
    keras.utils.set_random_seed(0)
    x, y = real_images
    logits = BUILDERS[name]((32, 32, 3), 10)(x, training=False)
    loss = float(keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, logits))
    assert abs(loss - math.log(10)) < 0.05, f"initial loss {loss:.3f}, expected about ln(10) = 2.303"


# Steps to 100% on 64 images, with margin: the slowest of seeds 0-4 needed 10 (linear), 8 (MLP)
# and 46 (the default CNN) steps, at most half of these.
OVERFIT = {"linear": (dict(), 1e-2, 20), "mlp": (dict(), 1e-3, 20), "cnn": (dict(), 3e-3, 100)}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "cnn" else n for n in OVERFIT])
def test_overfits_64_real_images(name, real_images):
    options, learning_rate, steps = OVERFIT[name]
    keras.utils.set_random_seed(0)
    x, y = real_images[0][:64], real_images[1][:64]
    build = {"linear": build_linear_model, "mlp": build_mlp, "cnn": build_cnn}[name]
    model = build((32, 32, 3), 10, **options)
    model.compile(keras.optimizers.Adam(learning_rate), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=64, epochs=steps, verbose=0)
    accuracy = np.mean(np.argmax(model.predict(x, verbose=0), axis=1) == y)
    assert accuracy == 1.0, f"{name} reached {accuracy:.0%} on 64 images after {steps} steps"


# ----------------------------------------------------------------------------- gradient check
def test_linear_gradients_match_finite_differences():
    keras.config.set_dtype_policy("float64")
    try:
        keras.utils.set_random_seed(1)
        model = build_linear_model((4, 4, 3), 10, weight_decay=0.1)
        x = tf.random.stateless_normal((6, 4, 4, 3), [1, 2], dtype=tf.float64)
        y = tf.constant([0, 3, 9, 1, 1, 7])

        def loss():  # mean softmax cross-entropy + L2 penalty, all in float64
            logits = model(x, training=True)
            assert logits.dtype == tf.float64
            return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits)) + tf.add_n(model.losses)

        with tf.GradientTape() as tape:
            value = loss()
        grads = tape.gradient(value, model.trainable_weights)
        for weight, grad in zip(model.trainable_weights, grads):
            flat = weight.numpy().reshape(-1)
            for i in np.random.default_rng(0).choice(flat.size, size=min(20, flat.size), replace=False):
                h = 1e-6
                original = flat[i]
                estimates = []
                for step in (h, -h):
                    flat[i] = original + step
                    weight.assign(flat.reshape(weight.shape))
                    estimates.append(float(loss()))
                flat[i] = original
                weight.assign(flat.reshape(weight.shape))
                numeric = (estimates[0] - estimates[1]) / (2 * h)
                analytic = float(tf.reshape(grad, [-1])[i])
                rel_error = abs(numeric - analytic) / max(abs(numeric) + abs(analytic), 1e-12)
                assert rel_error < 1e-7, f"{weight.name}[{i}]: analytic {analytic}, numeric {numeric}"
    finally:
        keras.config.set_dtype_policy("float32")
