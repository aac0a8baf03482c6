"""Stage 2: a multi-layer perceptron, z_i = f(W_i z_{i-1} + b_i), then the linear classifier.

What this stage teaches: non-linear activations make stacked layers more expressive than one linear
layer; the initialisation must match the activation (He-normal for ReLU keeps the activations'
scale from layer to layer); weight decay and dropout fight over-fitting.
"""

from __future__ import annotations

import keras
from keras import layers

from linear_model import classifier_head, make_regularizer

# The values each option takes (train.py's command line offers these).
CHOICES = {
    "activation": ("relu", "elu", "tanh", "sigmoid"),
    "initializer": ("he_normal", "glorot_uniform", "normal", "uniform"),
    "regularizer": ("l2", "l1"),
}


def make_initializer(name: str, scale: float = 1e-2, seed: int | None = None):
    """The weight initialiser called `name`.

    he_normal: normal with std sqrt(2 / fan_in), which keeps ReLU activations' variance constant;
    glorot_uniform: uniform in +-sqrt(6 / (fan_in + fan_out)), suited to tanh and sigmoid;
    normal: std `scale`; uniform: in [-scale, scale].
    """
    if name not in CHOICES["initializer"]:
        raise ValueError(
            f"initializer must be one of {', '.join(CHOICES['initializer'])}, not {name!r}"
        )
    # BEGIN SOLUTION [MLP]: keras.initializers.HeNormal, GlorotUniform, RandomNormal, RandomUniform
    if name == "he_normal":
        return keras.initializers.HeNormal(seed=seed)
    if name == "glorot_uniform":
        return keras.initializers.GlorotUniform(seed=seed)
    if name == "normal":
        return keras.initializers.RandomNormal(stddev=scale, seed=seed)
    return keras.initializers.RandomUniform(-scale, scale, seed=seed)
    # END SOLUTION


def build_mlp(
    input_shape: tuple[int, ...] = (32, 32, 3),
    num_classes: int = 10,
    *,
    hidden_units: tuple[int, ...] = (512,),
    activation: str = "relu",
    initializer: str = "he_normal",
    init_scale: float = 1e-2,
    regularizer: str = "l2",
    weight_decay: float = 0.0,
    dropout: float = 0.0,
) -> keras.Model:
    """Builds an MLP: flatten, hidden dense layers with an activation, then the linear classifier.

    Args:
        input_shape: (height, width, channels) of the normalised float32 images.
        num_classes: number of classes.
        hidden_units: width of each hidden layer (Dense layers named hidden1, hidden2, ...); (512,)
            is the one-hidden-layer MLP of the course.
        activation: one of relu, elu, tanh, sigmoid.
        initializer: one of he_normal (the default, for ReLU), glorot_uniform, normal, uniform.
        init_scale: std of "normal", half-width of "uniform".
        regularizer: "l2" or "l1" penalty on every kernel (make_regularizer).
        weight_decay: strength of that penalty (0: none).
        dropout: fraction of hidden units dropped during training, by a Dropout layer after each
            hidden layer (named dropout1, dropout2, ...); 0: none.

    Returns:
        An uncompiled keras.Model mapping images [B, H, W, C] to logits [B, num_classes].
    """
    if activation not in CHOICES["activation"]:
        raise ValueError(
            f"activation must be one of {', '.join(CHOICES['activation'])}, not {activation!r}"
        )
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), not {dropout}")
    inputs = keras.Input(shape=input_shape, name="images")
    x = layers.Flatten(name="flatten")(inputs)
    for i, units in enumerate(hidden_units, start=1):
        # BEGIN SOLUTION [MLP]: Dense hidden{i}: the activation, make_initializer, make_regularizer
        x = layers.Dense(
            units,
            activation=activation,
            kernel_initializer=make_initializer(initializer, init_scale),
            kernel_regularizer=make_regularizer(weight_decay, regularizer),
            name=f"hidden{i}",
        )(x)
        # END SOLUTION
        if dropout:
            # BEGIN SOLUTION [MLP]: a Dropout layer named dropout{i}
            x = layers.Dropout(dropout, name=f"dropout{i}")(x)
            # END SOLUTION
    logits = classifier_head(num_classes, weight_decay=weight_decay, regularizer=regularizer)(x)
    return keras.Model(inputs, logits, name="mlp")
