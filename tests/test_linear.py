"""Tests of the given linear classifier (linear_model.py), not graded: it is the course's starting
point.

Shapes and logits, the parameter count from the formula, the initial loss ln(10), over-fitting 64
real images, and a float64 check of TensorFlow's gradients against finite differences.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import check_initial_loss, check_logits, check_overfits
from linear_model import build_linear_model


@pytest.mark.parametrize("input_shape", [(32, 32, 3), (24, 24, 3), (28, 28, 1)])
def test_output_is_logits_of_the_right_shape(input_shape):
    check_logits(build_linear_model(input_shape, 10), input_shape)


def test_parameter_count():
    assert build_linear_model((32, 32, 3), 10).count_params() == 3072 * 10 + 10, (
        "W is 3072 x 10, b is 10"
    )


def test_initial_loss_is_ln10(real_images):
    check_initial_loss(build_linear_model, real_images)


# Steps to 100% on 64 sample images: the slowest of seeds 0-4 needed 9; the test allows 20.
def test_overfits_64_real_images(real_images):
    check_overfits(build_linear_model, real_images, learning_rate=1e-2, steps=20)


def test_gradients_match_finite_differences():
    keras.config.set_dtype_policy("float64")
    try:
        keras.utils.set_random_seed(1)
        model = build_linear_model((4, 4, 3), 10, weight_decay=0.1)
        x = tf.random.stateless_normal((6, 4, 4, 3), [1, 2], dtype=tf.float64)
        y = tf.constant([0, 3, 9, 1, 1, 7])

        def loss():  # mean softmax cross-entropy + L2 penalty, all in float64
            logits = model(x, training=True)
            assert logits.dtype == tf.float64
            data_loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
            return data_loss + tf.add_n(model.losses)

        with tf.GradientTape() as tape:
            value = loss()
        grads = tape.gradient(value, model.trainable_weights)
        for weight, grad in zip(model.trainable_weights, grads):
            flat = weight.numpy().reshape(-1)
            for i in np.random.default_rng(0).choice(
                flat.size, size=min(20, flat.size), replace=False
            ):
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
                assert rel_error < 1e-7, (
                    f"{weight.name}[{i}]: analytic {analytic}, numeric {numeric}"
                )
    finally:
        keras.config.set_dtype_policy("float32")
