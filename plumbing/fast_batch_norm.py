"""Keras' own BatchNormalization, computed by TensorFlow's fused batch-norm kernel where it applies.

Students write `keras.layers.BatchNormalization`. Keras 3 computes it in several operations (the
batch's mean and variance, then the normalisation); TensorFlow's fused kernel does the same in one
pass, forward and backward. `use_fused_kernel()`, called once by train.py's start-up
(plumbing/machine.start), makes every BatchNormalization layer of the process use that kernel for
4-D inputs normalised over the last axis: the conv blocks' case. Any other case (a mask, renorm,
another axis, float64) keeps Keras' own computation.

Nothing else changes: the layer is still keras.layers.BatchNormalization, with the same weights,
outputs, moving statistics and gradients (tests/test_fast_batch_norm.py), so a saved model holds a
plain BatchNormalization and loads with keras.models.load_model in any Python, without this module.

Why: bench/train_speed.py measured the fused kernel at 1.05x the Keras layer in train.py's step on
an AMD Zen 1 CPU (AVX2) and 1.38x on a Zen 4 (AVX-512).
"""

from __future__ import annotations

import tensorflow as tf
from keras import backend, layers, ops

# Keras' own computation, for what the kernel cannot do. (Imported again while the kernel is on,
# this module finds Keras' call where fused_call keeps it.)
KERAS_CALL = getattr(layers.BatchNormalization.call, "keras_call", layers.BatchNormalization.call)
SMALLEST_EPSILON = 1.001e-5  # the fused kernel refuses a smaller epsilon
FLOAT_TYPES = ("float16", "bfloat16", "float32")  # computed in float32, as Keras does


def use_fused_kernel(on: bool = True) -> None:
    """Makes keras.layers.BatchNormalization use the fused kernel (on) or Keras' computation (off).

    It takes effect when a layer next traces its computation: for layers already inside a compiled
    tf.function, make a new step function."""
    layers.BatchNormalization.call = fused_call if on else KERAS_CALL


def kernel_applies(layer: layers.BatchNormalization, inputs, mask) -> bool:
    """Whether the fused kernel computes exactly what this call of the layer asks for."""
    return (
        mask is None
        and len(inputs.shape) == 4
        and layer.axis in (-1, 3)
        and backend.standardize_dtype(inputs.dtype) in FLOAT_TYPES
        and layer.center
        and layer.scale
        and not layer.renorm
        and not layer.synchronized
        and layer.epsilon >= SMALLEST_EPSILON
    )


def fused_call(self, inputs, training=None, mask=None):
    """BatchNormalization.call through tf.compat.v1.nn.fused_batch_norm (NHWC, float32).

    As in Keras: the statistics and the normalisation are float32 even under mixed precision; in
    training (when the layer is trainable) the batch's statistics normalise and update the moving
    averages; otherwise the moving averages normalise."""
    if not kernel_applies(self, inputs, mask):
        return KERAS_CALL(self, inputs, training=training, mask=mask)
    x = ops.cast(inputs, "float32")
    if not (training and self.trainable):
        y, _, _ = tf.compat.v1.nn.fused_batch_norm(
            x,
            self.gamma,
            self.beta,
            mean=self.moving_mean,
            variance=self.moving_variance,
            epsilon=self.epsilon,
            is_training=False,
        )
        return ops.cast(y, self.compute_dtype)
    y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
        x, self.gamma, self.beta, epsilon=self.epsilon, is_training=True
    )
    # The kernel returns the unbiased variance (divided by n - 1); Keras averages the batch's own
    # variance (divided by n), which the normalisation used.
    count = tf.cast(tf.size(x) // tf.shape(x)[-1], "float32")
    variance = variance * ((count - 1) / count)
    self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
    self.moving_variance.assign(
        self.moving_variance * self.momentum + variance * (1.0 - self.momentum)
    )
    return ops.cast(y, self.compute_dtype)


fused_call.keras_call = KERAS_CALL
