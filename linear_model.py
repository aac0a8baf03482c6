"""Stage 0 (given, ready to run): a linear classifier, q(x) = W x + b, on the flattened image.

Every later model ends with this same classifier: the MLP puts hidden layers in front of it, the
CNN puts convolutional features in front of it. So `classifier_head` and `weight_penalty` live here.
"""

from __future__ import annotations

import keras
from keras import layers

# A small classifier initialisation makes the first predictions nearly uniform, so the initial
# loss is ln(10) = 2.303: the sanity check to run before any training.
CLASSIFIER_INIT_SCALE = 1e-2


def make_regularizer(
    weight_decay: float, kind: str = "l2"
) -> keras.regularizers.Regularizer | None:
    """An L2 (or L1) kernel penalty with strength `weight_decay`, or None when it is 0."""
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, not {weight_decay}")
    if not weight_decay:
        return None
    if kind not in ("l1", "l2"):
        raise ValueError(f"regularizer must be 'l1' or 'l2', not {kind!r}")
    return (
        keras.regularizers.L1(weight_decay) if kind == "l1" else keras.regularizers.L2(weight_decay)
    )


def classifier_head(
    num_classes: int,
    *,
    weight_decay: float = 0.0,
    regularizer: str = "l2",
    regularize_bias: bool = False,
    name: str = "logits",
) -> layers.Dense:
    """The final linear layer producing logits (no softmax: losses use from_logits=True)."""
    initializer = keras.initializers.VarianceScaling(
        CLASSIFIER_INIT_SCALE, mode="fan_in", distribution="truncated_normal"
    )
    penalty = make_regularizer(weight_decay, regularizer)
    return layers.Dense(
        num_classes,
        kernel_initializer=initializer,
        kernel_regularizer=penalty,
        bias_regularizer=penalty if regularize_bias else None,
        name=name,
    )


def weight_penalty(model: keras.Model):
    """Sum of squared weights over every dense and convolutional kernel, and over the biases that
    are regularised too (batch-norm parameters excluded): the L2 penalty *without* its strength,
    worth logging during training to see what weight decay does."""
    weights = [layer.kernel for layer in model.layers if hasattr(layer, "kernel")]
    weights += [
        layer.bias for layer in model.layers if getattr(layer, "bias_regularizer", None) is not None
    ]
    return sum(keras.ops.sum(keras.ops.square(w)) for w in weights)


def build_linear_model(
    input_shape: tuple[int, ...] = (32, 32, 3), num_classes: int = 10, *, weight_decay: float = 0.0
) -> keras.Model:
    """Builds the linear classifier: flatten, then one dense layer.

    Teaches: a model is a function from pixels to class scores (logits); softmax and
    cross-entropy turn scores into a loss. A linear model can only draw straight class boundaries in
    pixel space, which is why it plateaus near 35-40% on CIFAR-10.

    Args:
        input_shape: (height, width, channels) of the normalised float32 images.
        num_classes: number of classes (logits per image).
        weight_decay: L2 strength on W (0: none).

    Returns:
        An uncompiled keras.Model mapping images [B, H, W, C] to logits [B, num_classes].
    """
    inputs = keras.Input(shape=input_shape, name="images")
    x = layers.Flatten(name="flatten")(inputs)
    logits = classifier_head(num_classes, weight_decay=weight_decay)(x)
    return keras.Model(inputs, logits, name="linear")
