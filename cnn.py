"""Stages 3-6: convolutional networks built from two generic blocks.

  conv_block: convolution (3x3 by default), optional batch norm, activation; stride 1 or 2.
  pool_block: max or average pooling.

`build_cnn` stacks them in stages: each stage has `convs_per_stage` conv blocks of one width, then
halves the feature map, by a pool block or by a strided conv block. The course stages are the
entries of CNN_STAGES: plain CNN -> + batch norm -> strided convolutions -> larger with dropout.

Feature-map size after a conv or pool with kernel k, stride s and padding p (the handout's formula):
    out = floor((in + 2p - k) / s) + 1
With 'same' padding (p = 1 for k = 3), a stride-2 conv gives ceil(in / 2); a 2x2 pool with stride 2
gives floor(in / 2). From 32x32: 16x16, 8x8, 4x4 either way.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers

from linear_model import classifier_head, make_regularizer

BATCH_NORM_MOMENTUM = 0.9  # Keras' 0.99 adapts too slowly with the few steps per epoch of small data
BATCH_NORM_EPSILON = 1e-3


@keras.saving.register_keras_serializable(package="cifar10")
class FusedBatchNorm(layers.Layer):
    """Batch normalisation over the last (channel) axis, using TensorFlow's fused kernel.

    It computes what keras.layers.BatchNormalization computes: in training, each channel is
    normalised with the batch's mean and variance, then scaled by gamma and shifted by beta, and
    moving averages of the statistics are updated; at inference, the moving averages are used, so an
    example's output does not depend on the rest of its batch. Speed trick: the fused kernel does all
    of it in one pass, which made CPU training 2x faster than Keras' layer (bench/train_speed.py).
    """

    def __init__(self, momentum: float = BATCH_NORM_MOMENTUM, epsilon: float = BATCH_NORM_EPSILON, **kwargs):
        super().__init__(**kwargs)
        self.momentum, self.epsilon = momentum, epsilon

    def build(self, input_shape):
        channels = (input_shape[-1],)
        self.gamma = self.add_weight(shape=channels, initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=channels, initializer="zeros", name="beta")
        self.moving_mean = self.add_weight(shape=channels, initializer="zeros", trainable=False,
                                           name="moving_mean")
        self.moving_variance = self.add_weight(shape=channels, initializer="ones", trainable=False,
                                               name="moving_variance")

    def call(self, x, training=False):
        gamma, beta = tf.cast(self.gamma, tf.float32), tf.cast(self.beta, tf.float32)
        if not training:
            y, _, _ = tf.compat.v1.nn.fused_batch_norm(x, gamma, beta, mean=self.moving_mean,
                                                       variance=self.moving_variance,
                                                       epsilon=self.epsilon, is_training=False)
            return y
        y, mean, variance = tf.compat.v1.nn.fused_batch_norm(x, gamma, beta, epsilon=self.epsilon,
                                                             is_training=True)
        self.moving_mean.assign(self.momentum * self.moving_mean + (1 - self.momentum) * mean)
        self.moving_variance.assign(self.momentum * self.moving_variance + (1 - self.momentum) * variance)
        return y

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "epsilon": self.epsilon}


def conv_block(x, filters: int, *, kernel_size: int = 3, stride: int = 1, batch_norm: bool = False,
               activation: str = "relu", weight_decay: float = 0.0, name: str = "conv"):
    """Convolution -> (batch norm) -> activation, with 'same' padding.

    With batch norm the convolution has no bias: batch norm subtracts the mean anyway and its own
    offset (beta) plays the bias's role.

    Args:
        x: input feature map [B, H, W, C].
        filters: output channels.
        kernel_size: side of the square kernel.
        stride: 1 keeps the size; 2 halves it (a learned alternative to pooling).
        batch_norm: normalise each channel over the batch (training) or with moving statistics (inference).
        activation: any Keras activation name.
        weight_decay: L2 strength on the kernel.
        name: prefix of the layer names.

    Returns:
        The output feature map [B, ceil(H / stride), ceil(W / stride), filters].
    """
    # BEGIN SOLUTION: a Conv2D layer named `name`: the stride, 'same' padding, he_normal, no bias with batch norm
    x = layers.Conv2D(filters, kernel_size, strides=stride, padding="same", use_bias=not batch_norm,
                      kernel_initializer="he_normal", kernel_regularizer=make_regularizer(weight_decay),
                      name=name)(x)
    # END SOLUTION
    if batch_norm:
        # BEGIN SOLUTION: batch norm: a FusedBatchNorm layer named f"{name}_bn"
        x = FusedBatchNorm(name=f"{name}_bn")(x)
        # END SOLUTION
    return layers.Activation(activation, name=f"{name}_{activation}")(x)


def pool_block(x, *, kind: str = "max", pool_size: int = 2, stride: int = 2, name: str = "pool"):
    """Max or average pooling; the default 2x2 window with stride 2 halves height and width."""
    if kind not in ("max", "avg"):
        raise ValueError(f"pooling must be 'max' or 'avg', not {kind!r}")
    # BEGIN SOLUTION: a MaxPooling2D or AveragePooling2D layer named `name` ('valid' padding)
    pool = layers.MaxPooling2D if kind == "max" else layers.AveragePooling2D
    return pool(pool_size, strides=stride, padding="valid", name=name)(x)
    # END SOLUTION


def build_cnn(input_shape: tuple[int, ...] = (32, 32, 3), num_classes: int = 10, *,
              widths: tuple[int, ...] = (32, 64, 128), convs_per_stage: int = 2, batch_norm: bool = True,
              downsample: str = "pool", pooling: str = "max", dropout: float = 0.0, head: str = "flatten",
              dense_units: int = 0, activation: str = "relu", weight_decay: float = 0.0) -> keras.Model:
    """Builds a CNN: stages of conv blocks, each stage ending in a downsampling step, then a head.

    Teaches: convolutions share weights across positions, so a CNN has far fewer parameters than an
    MLP yet sees local patterns anywhere; pooling or strided convolutions trade resolution for
    channels; batch norm lets deeper networks train fast; dropout and weight decay regularise.

    Args:
        input_shape: (height, width, channels) of the normalised float32 images.
        num_classes: number of classes.
        widths: channels of each stage; its length is the number of stages.
        convs_per_stage: conv blocks per stage.
        batch_norm: batch norm after every convolution.
        downsample: "pool" (a pool block after each stage) or "stride" (the stage's last conv block
            uses stride 2 instead), or "none".
        pooling: "max" or "avg", for downsample="pool".
        dropout: dropout rate after each stage and before the classifier (0: none).
        head: "flatten" (flatten, an optional dense layer of `dense_units`, then the classifier) or
            "gap" (global average pooling, then the classifier: fewer parameters).
        dense_units: width of the hidden dense layer of the "flatten" head (0: none).
        activation: activation after every conv block and the dense layer.
        weight_decay: L2 strength on every kernel.

    Returns:
        An uncompiled keras.Model mapping images [B, H, W, C] to logits [B, num_classes].
    """
    if downsample not in ("pool", "stride", "none"):
        raise ValueError(f"downsample must be 'pool', 'stride' or 'none', not {downsample!r}")
    if head not in ("gap", "flatten"):
        raise ValueError(f"head must be 'gap' or 'flatten', not {head!r}")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), not {dropout}")
    block = dict(batch_norm=batch_norm, activation=activation, weight_decay=weight_decay)
    inputs = keras.Input(shape=input_shape, name="images")
    x = inputs
    for stage, width in enumerate(widths, start=1):
        # BEGIN SOLUTION: conv blocks stage{stage}_conv1, ... (the last with stride 2 for downsample="stride"), then stage{stage}_pool or stage{stage}_dropout as asked
        for i in range(1, convs_per_stage + 1):
            strided = downsample == "stride" and i == convs_per_stage
            x = conv_block(x, width, stride=2 if strided else 1, name=f"stage{stage}_conv{i}", **block)
        if downsample == "pool":
            x = pool_block(x, kind=pooling, name=f"stage{stage}_pool")
        if dropout:
            x = layers.Dropout(dropout, name=f"stage{stage}_dropout")(x)
        # END SOLUTION
    if head == "gap":
        x = layers.GlobalAveragePooling2D(name="global_avg_pool")(x)
    else:
        x = layers.Flatten(name="flatten")(x)
        if dense_units:
            x = layers.Dense(dense_units, activation=activation, kernel_initializer="he_normal",
                             kernel_regularizer=make_regularizer(weight_decay), name="dense")(x)
            if dropout:
                x = layers.Dropout(dropout, name="dense_dropout")(x)
    logits = classifier_head(num_classes, weight_decay=weight_decay)(x)
    return keras.Model(inputs, logits, name="cnn")


# The course's CNN stages, each a set of build_cnn options; "tuned" is build_cnn's defaults.
CNN_STAGES: dict[str, dict] = {
    # Stage 3: generic conv and pool blocks, a flatten + dense head, no normalisation.
    "cnn": dict(widths=(32, 64), batch_norm=False, head="flatten", dense_units=256),
    # Stage 4: the same network with batch norm after every convolution.
    "cnn-bn": dict(widths=(32, 64), batch_norm=True, head="flatten", dense_units=256),
    # Stage 5: strided convolutions instead of pooling.
    "cnn-strided": dict(widths=(32, 64), batch_norm=True, downsample="stride", head="flatten", dense_units=256),
    # Stage 6: more data, a larger network (wider, one stage deeper), dropout as regulariser.
    "cnn-large": dict(widths=(64, 128, 256), batch_norm=True, dropout=0.25, head="flatten", dense_units=512),
    # The tuned recipe, train.py's default (bench/accuracy.py compares it with the classic Keras CNN).
    "tuned": dict(),
}
