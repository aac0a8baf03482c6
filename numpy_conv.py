"""Convolution and pooling by hand, in NumPy only: forward and backward, naive and vectorised.

  conv2d_forward_naive / conv2d_backward_naive: loops over output positions (write these)
  conv2d_forward / conv2d_backward: the same with window views and einsum (read these)
  max_pool_* and avg_pool_*: pooling, the same way

Array layouts follow TensorFlow's, so every result can be compared with tf.nn.conv2d and friends:
images NHWC [N, H, W, C], kernels [KH, KW, C_in, C_out].

    python numpy_conv.py

checks each backward pass's gradient with respect to its input (dx) against central differences
(numpy_mlp.numerical_gradient) and prints the relative errors: below 1e-8 when a backward pass is
right.
The tests also check the weight and bias gradients and compare everything with TensorFlow.
"""

from __future__ import annotations

import sys

import numpy as np

from numpy_mlp import numerical_gradient, relative_error
from plumbing import entry
from plumbing.errors import OneLineParser


def _pad(x: np.ndarray, pad: int) -> np.ndarray:
    return np.pad(x, [(0, 0), (pad, pad), (pad, pad), (0, 0)])


def _out_size(size: int, kernel: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - kernel) // stride + 1  # the handout's formula


def conv2d_forward_naive(x, w, b, stride: int = 1, pad: int = 0):
    """Convolution (really cross-correlation, as in every framework), looping over output positions.

    Args:
        x: [N, H, W, C]; w: [KH, KW, C, F]; b: [F]. Returns [N, OH, OW, F].
    """
    kh, kw, _, filters = w.shape
    xp = _pad(x, pad)
    oh, ow = _out_size(x.shape[1], kh, stride, pad), _out_size(x.shape[2], kw, stride, pad)
    out = np.zeros((x.shape[0], oh, ow, filters))
    # BEGIN SOLUTION [NumPy conv]: each output position: its window of xp times w, summed, plus b
    for i in range(oh):
        for j in range(ow):
            window = xp[
                :, i * stride : i * stride + kh, j * stride : j * stride + kw, :
            ]  # [N, KH, KW, C]
            out[:, i, j, :] = np.tensordot(window, w, axes=([1, 2, 3], [0, 1, 2])) + b
    # END SOLUTION
    return out


def conv2d_backward_naive(d_out, x, w, stride: int = 1, pad: int = 0):
    """Gradients of conv2d_forward_naive: returns (dx, dw, db), looping over output positions."""
    kh, kw = w.shape[:2]
    xp = _pad(x, pad)
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    # BEGIN SOLUTION [NumPy conv]: each output position: window x d_out into dw, d_out x w into dxp
    for i in range(d_out.shape[1]):
        for j in range(d_out.shape[2]):
            rows, cols = slice(i * stride, i * stride + kh), slice(j * stride, j * stride + kw)
            dw += np.tensordot(
                xp[:, rows, cols, :], d_out[:, i, j, :], axes=([0], [0])
            )  # [KH, KW, C, F]
            dxp[:, rows, cols, :] += np.tensordot(
                d_out[:, i, j, :], w, axes=([1], [3])
            )  # [N, KH, KW, C]
    # END SOLUTION
    dx = dxp[:, pad : pad + x.shape[1], pad : pad + x.shape[2], :]
    return dx, dw, d_out.sum(axis=(0, 1, 2))


def _windows(xp: np.ndarray, kh: int, kw: int, stride: int) -> np.ndarray:
    """All kh x kw windows as a view [N, OH, OW, C, KH, KW] (no copy: im2col without the memory)."""
    view = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(1, 2))
    return view[:, ::stride, ::stride]


def conv2d_forward(x, w, b, stride: int = 1, pad: int = 0):
    """Vectorised convolution: one tensordot over every window at once; the naive one's result."""
    kh, kw = w.shape[:2]
    windows = _windows(_pad(x, pad), kh, kw, stride)  # [N, OH, OW, C, KH, KW]
    return np.einsum("nhwcij,ijcf->nhwf", windows, w, optimize=True) + b


def conv2d_backward(d_out, x, w, stride: int = 1, pad: int = 0):
    """Vectorised gradients of conv2d_forward: returns (dx, dw, db).

    dw correlates the input windows with d_out; dx scatters d_out back through the kernel
    (the 'full convolution with the 180-degree rotated kernel' of the lecture), here by adding each
    kernel tap's contribution to a strided slice.
    """
    kh, kw = w.shape[:2]
    xp = _pad(x, pad)
    windows = _windows(xp, kh, kw, stride)
    dw = np.einsum("nhwcij,nhwf->ijcf", windows, d_out, optimize=True)
    dxp = np.zeros_like(xp)
    oh, ow = d_out.shape[1:3]
    for i in range(kh):
        for j in range(kw):  # each tap touches a strided grid of input positions
            dxp[:, i : i + stride * oh : stride, j : j + stride * ow : stride, :] += (
                d_out @ w[i, j].T
            )
    dx = dxp[:, pad : pad + x.shape[1], pad : pad + x.shape[2], :]
    return dx, dw, d_out.sum(axis=(0, 1, 2))


def _pool_forward_naive(x, size: int, stride: int, reduce):
    """Applies `reduce` (np.max or np.mean) to each size x size window, looping over output
    positions."""
    oh, ow = _out_size(x.shape[1], size, stride, 0), _out_size(x.shape[2], size, stride, 0)
    out = np.zeros((x.shape[0], oh, ow, x.shape[3]))
    # BEGIN SOLUTION [NumPy conv]: each output position: reduce its window over axes (1, 2)
    for i in range(oh):
        for j in range(ow):
            window = x[:, i * stride : i * stride + size, j * stride : j * stride + size, :]
            out[:, i, j, :] = reduce(window, axis=(1, 2))
    # END SOLUTION
    return out


def max_pool_forward_naive(x, size: int = 2, stride: int = 2):
    """Max over each size x size window (no padding). x: [N, H, W, C]."""
    return _pool_forward_naive(x, size, stride, np.max)


def max_pool_backward_naive(d_out, x, size: int = 2, stride: int = 2):
    """The gradient flows only to each window's maximum (the first one, on ties, as TensorFlow
    does). Windows may overlap (stride < size): an input then adds up the gradients of every window
    it is in."""
    dx = np.zeros_like(x)
    # BEGIN SOLUTION [NumPy conv]: for each window, route d_out to the position of its first maximum
    for i in range(d_out.shape[1]):
        for j in range(d_out.shape[2]):
            window = x[:, i * stride : i * stride + size, j * stride : j * stride + size, :]
            flat = window.reshape(x.shape[0], -1, x.shape[3])
            first_max = flat.argmax(axis=1)  # [N, C]
            mask = np.zeros_like(flat)
            np.put_along_axis(mask, first_max[:, None, :], 1.0, axis=1)
            dx[:, i * stride : i * stride + size, j * stride : j * stride + size, :] += (
                mask.reshape(window.shape) * d_out[:, i : i + 1, j : j + 1, :]
            )
    # END SOLUTION
    return dx


def max_pool_forward(x, size: int = 2, stride: int = 2):
    """Vectorised max pooling over a window view."""
    return _windows(x, size, size, stride).max(axis=(4, 5))


def max_pool_backward(d_out, x, size: int = 2, stride: int = 2):
    """Vectorised: find each window's (first) maximum, then scatter d_out there with np.add.at."""
    windows = _windows(x, size, size, stride)  # [N, OH, OW, C, S, S]
    n, oh, ow, c = windows.shape[:4]
    first_max = windows.reshape(n, oh, ow, c, -1).argmax(axis=-1)
    rows = np.arange(oh)[None, :, None, None] * stride + first_max // size
    cols = np.arange(ow)[None, None, :, None] * stride + first_max % size
    dx = np.zeros_like(x)
    np.add.at(
        dx,
        (np.arange(n)[:, None, None, None], rows, cols, np.arange(c)[None, None, None, :]),
        d_out,
    )
    return dx


def avg_pool_forward_naive(x, size: int = 2, stride: int = 2):
    """Mean over each size x size window (no padding)."""
    return _pool_forward_naive(x, size, stride, np.mean)


def avg_pool_backward_naive(d_out, x, size: int = 2, stride: int = 2):
    """Each input in a window receives d_out / (size * size); where windows overlap (stride < size),
    an input adds up what it receives from each of them."""
    dx = np.zeros_like(x)
    # BEGIN SOLUTION [NumPy conv]: spread each d_out entry evenly over its window
    for i in range(d_out.shape[1]):
        for j in range(d_out.shape[2]):
            rows, cols = slice(i * stride, i * stride + size), slice(j * stride, j * stride + size)
            dx[:, rows, cols, :] += d_out[:, i : i + 1, j : j + 1, :] / size**2
    # END SOLUTION
    return dx


def avg_pool_forward(x, size: int = 2, stride: int = 2):
    """Vectorised average pooling over a window view."""
    return _windows(x, size, size, stride).mean(axis=(4, 5))


def avg_pool_backward(d_out, x, size: int = 2, stride: int = 2):
    """Vectorised: spread d_out / size^2 over each window, one strided slice per window offset."""
    dx = np.zeros_like(x)
    oh, ow = d_out.shape[1:3]
    for i in range(size):
        for j in range(size):
            dx[:, i : i + stride * oh : stride, j : j + stride * ow : stride, :] += d_out / size**2
    return dx


# ----------------------------------------------------------------------------- the gradient checks
def input_gradient_error(forward, backward, x: np.ndarray, rng: np.random.Generator) -> float:
    """Relative error between backward(d_out) and the central differences of
    sum(forward(x) * d_out)."""
    d_out = rng.standard_normal(forward(x).shape)
    numeric = numerical_gradient(lambda: float(np.sum(forward(x) * d_out)), x)
    return relative_error(backward(d_out, x), numeric)


def main(argv: list[str] | None = None) -> int:
    """python numpy_conv.py: a mistake or an unwritten stub is one line (plumbing/errors.py)."""
    return entry.main(check_backward_passes, argv)


def check_backward_passes(argv: list[str] | None) -> int:
    """Checks each backward pass (its gradient with respect to the input) against central
    differences."""
    OneLineParser(
        prog="numpy_conv.py", description="Check each backward pass against central differences."
    ).parse_args(argv)
    rng = np.random.default_rng(0)
    x, w, b = (
        rng.standard_normal((2, 7, 6, 3)),
        rng.standard_normal((3, 3, 3, 4)),
        rng.standard_normal(4),
    )
    passes = {  # name: (forward(x), backward(d_out, x) -> dx)
        "conv2d_backward_naive": (
            lambda x: conv2d_forward_naive(x, w, b, 2, 1),
            lambda d_out, x: conv2d_backward_naive(d_out, x, w, 2, 1)[0],
        ),
        "conv2d_backward": (
            lambda x: conv2d_forward(x, w, b, 2, 1),
            lambda d_out, x: conv2d_backward(d_out, x, w, 2, 1)[0],
        ),
        "max_pool_backward_naive": (max_pool_forward_naive, max_pool_backward_naive),
        "avg_pool_backward_naive": (avg_pool_forward_naive, avg_pool_backward_naive),
        "max_pool_backward": (max_pool_forward, max_pool_backward),
        "avg_pool_backward": (avg_pool_forward, avg_pool_backward),
    }
    print(f"{'backward pass':<26} relative error of dx (below 1e-8 when right)")
    for name, (forward, backward) in passes.items():
        print(f"{name:<26} {input_gradient_error(forward, backward, x, rng):.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
