"""Stages 3-5: convolutional networks built from two generic blocks.

  conv_block: convolution (3x3 by default), optional batch norm, activation; stride 1 or 2.
  pool_block: max or average pooling.

`build_cnn` stacks them in stages: each stage has `convs_per_stage` conv blocks of one width, then
halves the feature map, by a pool block or by a strided conv block. The course's stages are presets
of it (python train.py --list-presets): plain CNN -> + batch norm -> strided convolutions -> larger,
with dropout. Its defaults are the tuned recipe that `python train.py --model cnn` trains.

Feature-map size after a conv or pool with kernel k, stride s and padding p (the handout's formula):
    out = floor((in + 2p - k) / s) + 1
With 'same' padding (p = 1 for k = 3), a stride-2 conv gives ceil(in / 2); a 2x2 pool with stride 2
gives floor(in / 2). From 32x32: 16x16, 8x8, 4x4 either way.
"""

from __future__ import annotations

import keras
from keras import layers

from linear_model import classifier_head, make_regularizer

# Keras' default momentum, 0.99, averages over about 100 steps: on the mini set's 40 steps an epoch,
# the first epochs' validation would use statistics still near their initial values.
BATCH_NORM_MOMENTUM = 0.9

# The values each option takes (train.py's command line offers these).
CHOICES = {
    "activation": ("relu", "elu", "tanh", "sigmoid"),
    "downsample": ("pool", "stride", "none"),
    "pooling": ("max", "avg"),
    "head": ("flatten", "gap"),
}


def conv_block(
    x,
    filters: int,
    *,
    kernel_size: int = 3,
    stride: int = 1,
    batch_norm: bool = False,
    activation: str = "relu",
    weight_decay: float = 0.0,
    name: str = "conv",
):
    """Convolution -> (batch norm) -> activation, with 'same' padding.

    The kernel starts He-normal (right for ReLU) and carries the L2 penalty. With batch norm the
    convolution has no bias: batch norm subtracts the mean anyway, and its own offset (beta) plays
    the bias's role.

    Args:
        x: input feature map [B, H, W, C].
        filters: output channels.
        kernel_size: side of the square kernel.
        stride: 1 keeps the size; 2 halves it (a learned alternative to pooling).
        batch_norm: normalise each channel over the batch (training) or with moving statistics
            (inference).
        activation: any Keras activation name.
        weight_decay: L2 strength on the kernel.
        name: the convolution's layer name, and the prefix of the others (name_bn, name_relu).

    Returns:
        The output feature map [B, ceil(H / stride), ceil(W / stride), filters].
    """
    # BEGIN SOLUTION [CNN]: Conv2D `name`: stride, 'same', he_normal, make_regularizer; BN: no bias
    x = layers.Conv2D(
        filters,
        kernel_size,
        strides=stride,
        padding="same",
        use_bias=not batch_norm,
        kernel_initializer="he_normal",
        kernel_regularizer=make_regularizer(weight_decay),
        name=name,
    )(x)
    # END SOLUTION
    if batch_norm:
        # BEGIN SOLUTION [batch norm]: a layers.BatchNormalization named f"{name}_bn"
        x = layers.BatchNormalization(momentum=BATCH_NORM_MOMENTUM, name=f"{name}_bn")(x)
        # END SOLUTION
    return layers.Activation(activation, name=f"{name}_{activation}")(x)


def pool_block(x, *, kind: str = "max", pool_size: int = 2, stride: int = 2, name: str = "pool"):
    """Max or average pooling; the default 2x2 window with stride 2 halves height and width."""
    if kind not in CHOICES["pooling"]:
        raise ValueError(f"pooling must be 'max' or 'avg', not {kind!r}")
    # BEGIN SOLUTION [CNN]: a MaxPooling2D or AveragePooling2D layer named `name` ('valid' padding)
    pool = layers.MaxPooling2D if kind == "max" else layers.AveragePooling2D
    return pool(pool_size, strides=stride, padding="valid", name=name)(x)
    # END SOLUTION


def conv_stride(index: int, convs_per_stage: int, downsample: str) -> int:
    """The stride of conv block number `index` (1, 2, ...) of a stage: 1, except that with
    downsample="stride" the stage's last block uses stride 2 to halve the feature map."""
    if downsample != "stride":
        return 1
    # BEGIN SOLUTION [strided & dropout]: 2 for the last conv block of the stage, else 1
    return 2 if index == convs_per_stage else 1
    # END SOLUTION


def check_options(dropout: float, **choices: str) -> None:
    """Raises ValueError naming the first option (keyword) whose value is not one of its CHOICES, or
    a dropout rate outside [0, 1)."""
    for option, value in choices.items():
        if value not in CHOICES[option]:
            raise ValueError(f"{option} must be one of {', '.join(CHOICES[option])}, not {value!r}")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), not {dropout}")


def build_cnn(
    input_shape: tuple[int, ...] = (32, 32, 3),
    num_classes: int = 10,
    *,
    widths: tuple[int, ...] = (32, 64, 128),
    convs_per_stage: int = 2,
    kernel_size: int = 3,
    batch_norm: bool = True,
    downsample: str = "pool",
    pooling: str = "max",
    dropout: float = 0.0,
    head: str = "flatten",
    dense_units: int = 0,
    activation: str = "relu",
    weight_decay: float = 0.0,
    regularize_bias: bool = False,
) -> keras.Model:
    """Builds a CNN: stages of conv blocks, each stage ending in a downsampling step, then a head.

    Teaches: convolutions share weights across positions, so a CNN has far fewer parameters than an
    MLP yet sees local patterns anywhere; pooling or strided convolutions trade resolution for
    channels; batch norm lets deeper networks train fast; dropout and weight decay regularise.

    Args:
        input_shape: (height, width, channels) of the normalised float32 images.
        num_classes: number of classes.
        widths: channels of each stage; its length is the number of stages.
        convs_per_stage: conv blocks per stage (named stage1_conv1, stage1_conv2, ...).
        kernel_size: side of every convolution's square kernel.
        batch_norm: batch norm after every convolution.
        downsample: "pool" (a pool block stageN_pool after each stage), "stride" (the stage's last
            conv block uses stride 2 instead: see conv_stride) or "none".
        pooling: "max" or "avg", for downsample="pool".
        dropout: rate of a Dropout layer after each stage (stageN_dropout) and after the dense layer
            (dense_dropout); 0: none.
        head: "flatten" (flatten, an optional dense layer of `dense_units`, then the classifier) or
            "gap" (global average pooling, then the classifier: fewer parameters); see dense_head.
        dense_units: width of the hidden dense layer of the "flatten" head (0: none).
        activation: activation after every conv block and the dense layer.
        weight_decay: L2 strength on every kernel.
        regularize_bias: the same L2 on the biases of the dense layer and the classifier, as the ETH
            handout does (lambda * (sum W^2 + sum b^2)).

    Returns:
        An uncompiled keras.Model mapping images [B, H, W, C] to logits [B, num_classes].
    """
    check_options(dropout, downsample=downsample, pooling=pooling, head=head, activation=activation)
    block = dict(
        kernel_size=kernel_size,
        batch_norm=batch_norm,
        activation=activation,
        weight_decay=weight_decay,
    )
    inputs = keras.Input(shape=input_shape, name="images")
    x = inputs
    for stage, width in enumerate(widths, start=1):
        # BEGIN SOLUTION [CNN]: conv blocks stage{stage}_conv{i} (conv_stride); stage{stage}_pool
        for i in range(1, convs_per_stage + 1):
            x = conv_block(
                x,
                width,
                stride=conv_stride(i, convs_per_stage, downsample),
                name=f"stage{stage}_conv{i}",
                **block,
            )
        if downsample == "pool":
            x = pool_block(x, kind=pooling, name=f"stage{stage}_pool")
        # END SOLUTION
        if dropout:
            # BEGIN SOLUTION [strided & dropout]: a Dropout layer named stage{stage}_dropout
            x = layers.Dropout(dropout, name=f"stage{stage}_dropout")(x)
            # END SOLUTION
    logits = dense_head(
        x,
        num_classes,
        head=head,
        dense_units=dense_units,
        dropout=dropout,
        activation=activation,
        weight_decay=weight_decay,
        regularize_bias=regularize_bias,
    )
    return keras.Model(inputs, logits, name="cnn")


def dense_head(
    x,
    num_classes: int,
    *,
    head: str,
    dense_units: int,
    dropout: float,
    activation: str,
    weight_decay: float,
    regularize_bias: bool,
):
    """From the last feature map to the logits: "gap" (global average pooling), or "flatten" and
    then an optional dense layer (with dropout after it, if asked); then the linear classifier."""
    if head == "gap":
        x = layers.GlobalAveragePooling2D(name="global_avg_pool")(x)
    else:
        x = layers.Flatten(name="flatten")(x)
    if dense_units and head == "flatten":
        penalty = make_regularizer(weight_decay)
        x = layers.Dense(
            dense_units,
            activation=activation,
            kernel_initializer="he_normal",
            kernel_regularizer=penalty,
            name="dense",
            bias_regularizer=penalty if regularize_bias else None,
        )(x)
        if dropout:
            # BEGIN SOLUTION [strided & dropout]: a Dropout layer named dense_dropout
            x = layers.Dropout(dropout, name="dense_dropout")(x)
            # END SOLUTION
    return classifier_head(num_classes, weight_decay=weight_decay, regularize_bias=regularize_bias)(
        x
    )
