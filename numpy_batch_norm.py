"""Batch normalisation by hand, in NumPy only: the forward pass and its backward pass.

This is what keras.layers.BatchNormalization (cnn.py's conv blocks) computes, written out as CS231n
does. Each feature (the last axis: a Dense layer's unit, or a convolution's channel) is normalised
over all the other axes, that is over the batch (and, for images, over every position):

    training:   x_hat = (x - mean) / sqrt(variance + epsilon), with the batch's mean and variance
                moving averages: moving = momentum * moving + (1 - momentum) * batch statistic
    inference:  the same with the moving averages: an example's output does not depend on its batch
    output:     gamma * x_hat + beta (gamma and beta are learned, one per feature)

The layouts are Keras': x is [N, D] or [N, H, W, D]; gamma, beta and the statistics are [D]; the
defaults are Keras' epsilon (1e-3) and cnn.py's momentum (0.9), so the results compare with Keras.
tests/test_batch_norm.py checks the gradients against central differences (numpy_mlp.py's
numerical_gradient) and the outputs and moving statistics against Keras.
"""

from __future__ import annotations

import numpy as np


def new_state(features: int) -> dict[str, np.ndarray]:
    """The moving statistics a batch-norm layer starts with: mean 0 and variance 1 (as in Keras)."""
    return {"moving_mean": np.zeros(features), "moving_variance": np.ones(features)}


def batch_norm_forward(
    x: np.ndarray,
    gamma: np.ndarray,
    beta: np.ndarray,
    state: dict[str, np.ndarray],
    *,
    training: bool,
    momentum: float = 0.9,
    epsilon: float = 1e-3,
):
    """Normalises each feature (last axis) of x, then scales it by gamma and shifts it by beta.

    Args:
        x: [N, D] or [N, H, W, D].
        gamma, beta: [D].
        state: the moving statistics, {"moving_mean": [D], "moving_variance": [D]} (new_state);
            in training, replaced by their updated values.
        training: normalise with the batch's mean and (biased, divided by the count) variance and
            update the moving averages; otherwise normalise with the moving averages.
        momentum: the share of the old moving average that each training step keeps.
        epsilon: added to the variance, so that a constant feature does not divide by 0.

    Returns:
        (out, cache): out has x's shape; cache holds what batch_norm_backward needs.
    """
    axes = tuple(range(x.ndim - 1))  # every axis but the features'
    # BEGIN SOLUTION [batch norm]: the batch's mean, variance (update state); at inference, state's
    # STUB: mean, variance = None, None  # [D] each
    if training:
        mean, variance = x.mean(axis=axes), x.var(axis=axes)
        for name, statistic in (("moving_mean", mean), ("moving_variance", variance)):
            state[name] = momentum * state[name] + (1 - momentum) * statistic
    else:
        mean, variance = state["moving_mean"], state["moving_variance"]
    # END SOLUTION
    inverse_std = 1 / np.sqrt(variance + epsilon)
    x_hat = (x - mean) * inverse_std
    return gamma * x_hat + beta, (x_hat, gamma, inverse_std)


def batch_norm_backward(d_out: np.ndarray, cache):
    """Gradients of batch_norm_forward in training mode: returns (dx, dgamma, dbeta).

    The batch's mean and variance depend on every x, so dx has three paths: through x_hat directly,
    through the mean and through the variance. Summed over a feature's m = N (* H * W) values, they
    simplify to
        dx = inverse_std / m * (m * dx_hat - sum(dx_hat) - x_hat * sum(dx_hat * x_hat))
    with dx_hat = d_out * gamma (derive it: CS231n's assignment 2 does).
    """
    x_hat, gamma, inverse_std = cache
    axes = tuple(range(x_hat.ndim - 1))
    m = x_hat.size // x_hat.shape[-1]  # values per feature
    # BEGIN SOLUTION [batch norm]: dbeta, dgamma (sums over axes), then dx by the formula above
    # STUB: dx, dgamma, dbeta = None, None, None
    dbeta = d_out.sum(axis=axes)
    dgamma = (d_out * x_hat).sum(axis=axes)
    dx_hat = d_out * gamma
    sum_dx_hat = dx_hat.sum(axis=axes)
    sum_dx_hat_x_hat = (dx_hat * x_hat).sum(axis=axes)
    dx = inverse_std / m * (m * dx_hat - sum_dx_hat - x_hat * sum_dx_hat_x_hat)
    # END SOLUTION
    return dx, dgamma, dbeta
