"""Checks of the model code that students do not write: option validation and the fused batch norm."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import random_images
from linear_model import make_regularizer
from mlp import build_mlp, make_initializer
from plumbing.fused_batch_norm import FusedBatchNorm


@pytest.mark.parametrize("bad", [dict(activation="swish"), dict(dropout=1.0)])
def test_bad_mlp_options_name_the_problem(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        build_mlp((8, 8, 3), 10, **bad)


def test_bad_initializer_or_regularizer_names_the_problem():
    with pytest.raises(ValueError, match="initializer must be one of .* not 'zeros'"):
        make_initializer("zeros")
    with pytest.raises(ValueError, match="regularizer must be 'l1' or 'l2', not 'l3'"):
        make_regularizer(0.1, "l3")
    with pytest.raises(ValueError, match="weight_decay must be >= 0"):
        make_regularizer(-1)
    assert make_regularizer(0.0) is None


def test_fused_batch_norm_matches_keras_batch_normalization():
    x = random_images((8, 8, 5), batch=16) * 2 + 3
    fused = FusedBatchNorm(momentum=0.9, epsilon=1e-3)
    reference = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-3)
    np.testing.assert_allclose(fused(x, training=True), reference(x, training=True), atol=1e-4)
    for layer in (
        fused,
        reference,
    ):  # same moving statistics, up to Bessel's correction of the variance
        layer.moving_variance.assign(tf.ones(5) * 2.0)
        layer.moving_mean.assign(tf.ones(5) * 3.0)
    np.testing.assert_allclose(fused(x, training=False), reference(x, training=False), atol=1e-5)
