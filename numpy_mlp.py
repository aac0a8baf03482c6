"""A neural network by hand, in NumPy only: forward pass, loss, backpropagation, gradient check, SGD.

This is what TensorFlow automates. Read it before the model files:
  NumpyMLP.loss:     forward through ReLU layers, softmax cross-entropy + L2, then backpropagation
  numerical_gradient and relative_error: the check that the backward pass is right
  NumpyMLP.train:    minibatch SGD with momentum and learning-rate decay
  conv2d_* and *_pool_*: convolution and pooling, forward and backward, naive and vectorised

    python numpy_mlp.py [--data-dir D] [--plot numpy_mlp.png]

trains the handout's two-layer network on CIFAR-10 with its defaults and with a tuned setting.
Array layouts follow TensorFlow's, so every result here can be compared with it: images NHWC,
convolution kernels [KH, KW, C_in, C_out], dense weights W [fan_in, fan_out].
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

# The handout's defaults for the two-layer network on CIFAR-10.
HANDOUT_DEFAULTS = dict(hidden_size=100, weight_scale=1e-4, learning_rate=2e-3, learning_rate_decay=1.0,
                        momentum=0.0, reg=0.0, num_iters=1500, batch_size=200)
# A tuned setting: wider, He-scaled initialisation, momentum, decay and weight decay (chosen on validation).
TUNED = dict(hidden_size=200, weight_scale=None, learning_rate=2e-3, learning_rate_decay=0.95,
             momentum=0.9, reg=1e-3, num_iters=1500, batch_size=200)


class NumpyMLP:
    """A fully connected ReLU network with a softmax cross-entropy loss and L2 weight decay.

    Parameters live in `self.params` as W1, b1, W2, b2, ...; W_l has shape (fan_in, fan_out).
    """

    def __init__(self, layer_sizes: list[int], weight_scale: float | None = 1e-4, seed: int = 0):
        """Args:
            layer_sizes: [input, hidden..., classes]; [3072, 100, 10] is the handout's two-layer net.
            weight_scale: std of the Gaussian initial weights; None for He scaling sqrt(2 / fan_in).
            seed: for the initial weights.
        """
        rng = np.random.default_rng(seed)
        self.params = {}
        for layer, (fan_in, fan_out) in enumerate(zip(layer_sizes, layer_sizes[1:]), start=1):
            scale = np.sqrt(2.0 / fan_in) if weight_scale is None else weight_scale
            self.params[f"W{layer}"] = scale * rng.standard_normal((fan_in, fan_out))
            self.params[f"b{layer}"] = np.zeros(fan_out)

    @classmethod
    def from_params(cls, params: dict[str, np.ndarray]) -> "NumpyMLP":
        """A network with the given parameters (W1, b1, W2, b2, ...), e.g. to reproduce a handout."""
        net = cls.__new__(cls)
        net.params = {key: np.array(value, dtype=np.float64) for key, value in params.items()}
        return net

    @property
    def num_layers(self) -> int:
        return len(self.params) // 2

    def loss(self, X: np.ndarray, y: np.ndarray | None = None, reg: float = 0.0):
        """Class scores, or the loss and its gradients.

        Args:
            X: [N, D] inputs.
            y: [N] integer labels; None to get the scores only.
            reg: L2 strength: loss += reg * sum_l ||W_l||^2 (biases are not penalised).

        Returns:
            scores [N, C] when y is None, else (loss, grads) with grads keyed like self.params.
        """
        # Forward: keep each layer's input for the backward pass.
        activations = [X]
        last = self.num_layers
        # BEGIN SOLUTION: forward pass: hidden layers relu(h @ W + b), appended to activations; scores = h @ W_last + b_last
        for layer in range(1, self.num_layers):
            hidden = activations[-1] @ self.params[f"W{layer}"] + self.params[f"b{layer}"]
            activations.append(np.maximum(hidden, 0))  # ReLU
        scores = activations[-1] @ self.params[f"W{last}"] + self.params[f"b{last}"]
        # END SOLUTION
        if y is None:
            return scores

        # Softmax cross-entropy, stable: subtracting the row maximum does not change the softmax.
        num_examples = X.shape[0]
        # BEGIN SOLUTION: the mean softmax cross-entropy + reg * sum ||W||^2, then backprop into grads
        # STUB: grads = {}
        shifted = scores - scores.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        data_loss = -log_probs[np.arange(num_examples), y].mean()
        reg_loss = reg * sum(np.sum(self.params[f"W{l}"] ** 2) for l in range(1, last + 1))

        # Backward: d(loss)/d(scores) = (softmax - one_hot) / N, then the chain rule layer by layer.
        grads = {}
        d_out = np.exp(log_probs)
        d_out[np.arange(num_examples), y] -= 1
        d_out /= num_examples
        for layer in range(last, 0, -1):
            layer_input = activations[layer - 1]
            grads[f"W{layer}"] = layer_input.T @ d_out + 2 * reg * self.params[f"W{layer}"]
            grads[f"b{layer}"] = d_out.sum(axis=0)
            if layer > 1:
                d_out = (d_out @ self.params[f"W{layer}"].T) * (layer_input > 0)  # through the ReLU
        # END SOLUTION
        return data_loss + reg_loss, grads

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted class of each row of X."""
        return np.argmax(self.loss(X), axis=1)

    def train(self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray, y_val: np.ndarray, *,
              learning_rate: float = 1e-3, learning_rate_decay: float = 0.95, momentum: float = 0.0,
              reg: float = 0.0, num_iters: int = 100, batch_size: int = 200, check_every: int = 100,
              seed: int = 0, verbose: bool = False) -> dict[str, list[float]]:
        """Minibatch SGD with momentum; the learning rate is multiplied by `learning_rate_decay` each epoch.

        Returns:
            loss_history (every iteration), and train_acc_history / val_acc_history (every `check_every`
            iterations and at the end; training accuracy on the current batch, as the handout does).
        """
        rng = np.random.default_rng(seed)
        velocity = {key: np.zeros_like(value) for key, value in self.params.items()}
        iterations_per_epoch = max(X.shape[0] // batch_size, 1)
        history = {"loss_history": [], "train_acc_history": [], "val_acc_history": [], "iterations": []}
        for it in range(1, num_iters + 1):
            batch = rng.choice(X.shape[0], batch_size, replace=True)
            loss, grads = self.loss(X[batch], y[batch], reg=reg)
            history["loss_history"].append(float(loss))
            for key in self.params:  # v = mu * v - lr * grad; theta += v
                velocity[key] = momentum * velocity[key] - learning_rate * grads[key]
                self.params[key] += velocity[key]
            if it % iterations_per_epoch == 0:
                learning_rate *= learning_rate_decay
            if it % check_every == 0 or it == num_iters:
                train_acc = float(np.mean(self.predict(X[batch]) == y[batch]))
                val_acc = float(np.mean(self.predict(X_val) == y_val))
                history["train_acc_history"].append(train_acc)
                history["val_acc_history"].append(val_acc)
                history["iterations"].append(it)
                if verbose:
                    print(f"iteration {it:5d}/{num_iters}: loss {loss:.4f}, train accuracy {100 * train_acc:.1f}%, "
                          f"validation accuracy {100 * val_acc:.1f}%")
        return history


# ----------------------------------------------------------------------------- the gradient check
def numerical_gradient(f, x: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Central differences (f(x + h) - f(x - h)) / 2h for every entry of x (changed in place, then restored)."""
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        original = x[index]
        x[index] = original + h
        plus = f()
        x[index] = original - h
        minus = f()
        x[index] = original
        grad[index] = (plus - minus) / (2 * h)
    return grad


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """||a - b|| / (||a|| + ||b||): below about 1e-8 when two float64 gradients agree.

    A norm-based error, because an entry-by-entry ratio is dominated by entries that are almost zero
    in both (a saturated softmax, a bias whose gradients cancel), where rounding alone exceeds 1e-8.
    """
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-300))


def min_abs_preactivation(net: "NumpyMLP", X: np.ndarray) -> float:
    """The hidden pre-activation closest to 0. Central differences are only valid away from ReLU's kink
    at 0: a step h that crosses it measures a different linear piece."""
    hidden, closest = X, np.inf
    for layer in range(1, net.num_layers):
        pre = hidden @ net.params[f"W{layer}"] + net.params[f"b{layer}"]
        closest, hidden = min(closest, float(np.abs(pre).min())), np.maximum(pre, 0)
    return closest


# ----------------------------------------------------------------------------- convolution and pooling
def _pad(x: np.ndarray, pad: int) -> np.ndarray:
    return np.pad(x, [(0, 0), (pad, pad), (pad, pad), (0, 0)])


def _out_size(size: int, kernel: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - kernel) // stride + 1  # the handout's formula


def conv2d_forward_naive(x, w, b, stride: int = 1, pad: int = 0):
    """Convolution (really cross-correlation, as in every framework) with loops over output positions.

    Args:
        x: [N, H, W, C]; w: [KH, KW, C, F]; b: [F]. Returns [N, OH, OW, F].
    """
    kh, kw, _, filters = w.shape
    xp = _pad(x, pad)
    oh, ow = _out_size(x.shape[1], kh, stride, pad), _out_size(x.shape[2], kw, stride, pad)
    out = np.zeros((x.shape[0], oh, ow, filters))
    # BEGIN SOLUTION: for each output position, the window of xp times w summed over KH, KW, C, plus b
    for i in range(oh):
        for j in range(ow):
            window = xp[:, i * stride:i * stride + kh, j * stride:j * stride + kw, :]  # [N, KH, KW, C]
            out[:, i, j, :] = np.tensordot(window, w, axes=([1, 2, 3], [0, 1, 2])) + b
    # END SOLUTION
    return out


def conv2d_backward_naive(d_out, x, w, stride: int = 1, pad: int = 0):
    """Gradients of conv2d_forward_naive: returns (dx, dw, db), looping over output positions."""
    kh, kw = w.shape[:2]
    xp = _pad(x, pad)
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    # BEGIN SOLUTION: for each output position, add its share to dw (window x d_out) and to dxp (d_out x w)
    for i in range(d_out.shape[1]):
        for j in range(d_out.shape[2]):
            rows, cols = slice(i * stride, i * stride + kh), slice(j * stride, j * stride + kw)
            dw += np.tensordot(xp[:, rows, cols, :], d_out[:, i, j, :], axes=([0], [0]))  # [KH, KW, C, F]
            dxp[:, rows, cols, :] += np.tensordot(d_out[:, i, j, :], w, axes=([1], [3]))  # [N, KH, KW, C]
    # END SOLUTION
    dx = dxp[:, pad:pad + x.shape[1], pad:pad + x.shape[2], :]
    return dx, dw, d_out.sum(axis=(0, 1, 2))


def _windows(xp: np.ndarray, kh: int, kw: int, stride: int) -> np.ndarray:
    """All kh x kw windows as a view [N, OH, OW, C, KH, KW] (no copy: im2col without the memory)."""
    view = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(1, 2))
    return view[:, ::stride, ::stride]


def conv2d_forward(x, w, b, stride: int = 1, pad: int = 0):
    """Vectorised convolution: one tensordot over every window at once. Same result as the naive one."""
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
            dxp[:, i:i + stride * oh:stride, j:j + stride * ow:stride, :] += d_out @ w[i, j].T
    dx = dxp[:, pad:pad + x.shape[1], pad:pad + x.shape[2], :]
    return dx, dw, d_out.sum(axis=(0, 1, 2))


def _pool_forward_naive(x, size: int, stride: int, reduce):
    """Applies `reduce` (np.max or np.mean) to each size x size window, looping over output positions."""
    oh, ow = _out_size(x.shape[1], size, stride, 0), _out_size(x.shape[2], size, stride, 0)
    out = np.zeros((x.shape[0], oh, ow, x.shape[3]))
    # BEGIN SOLUTION: for each output position, reduce its size x size window over axes (1, 2)
    for i in range(oh):
        for j in range(ow):
            out[:, i, j, :] = reduce(x[:, i * stride:i * stride + size, j * stride:j * stride + size, :], axis=(1, 2))
    # END SOLUTION
    return out


def max_pool_forward_naive(x, size: int = 2, stride: int = 2):
    """Max over each size x size window (no padding). x: [N, H, W, C]."""
    return _pool_forward_naive(x, size, stride, np.max)


def max_pool_backward_naive(d_out, x, size: int = 2, stride: int = 2):
    """The gradient flows only to each window's maximum (the first one, on ties, as TensorFlow does)."""
    dx = np.zeros_like(x)
    # BEGIN SOLUTION: for each window, route d_out to the position of its first maximum
    for i in range(d_out.shape[1]):
        for j in range(d_out.shape[2]):
            window = x[:, i * stride:i * stride + size, j * stride:j * stride + size, :]
            flat = window.reshape(x.shape[0], -1, x.shape[3])
            first_max = flat.argmax(axis=1)  # [N, C]
            mask = np.zeros_like(flat)
            np.put_along_axis(mask, first_max[:, None, :], 1.0, axis=1)
            dx[:, i * stride:i * stride + size, j * stride:j * stride + size, :] += (
                mask.reshape(window.shape) * d_out[:, i:i + 1, j:j + 1, :])
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
    np.add.at(dx, (np.arange(n)[:, None, None, None], rows, cols, np.arange(c)[None, None, None, :]), d_out)
    return dx


def avg_pool_forward_naive(x, size: int = 2, stride: int = 2):
    """Mean over each size x size window (no padding)."""
    return _pool_forward_naive(x, size, stride, np.mean)


def avg_pool_backward_naive(d_out, x, size: int = 2, stride: int = 2):
    """Each input in a window receives d_out / (size * size)."""
    dx = np.zeros_like(x)
    # BEGIN SOLUTION: spread each d_out entry evenly over its window
    for i in range(d_out.shape[1]):
        for j in range(d_out.shape[2]):
            dx[:, i * stride:i * stride + size, j * stride:j * stride + size, :] += d_out[:, i:i + 1, j:j + 1, :] / size ** 2
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
            dx[:, i:i + stride * oh:stride, j:j + stride * ow:stride, :] += d_out / size ** 2
    return dx


# ----------------------------------------------------------------------------- CIFAR-10
def load_cifar10_flat(batches_dir, seed: int = 0):
    """Training, validation and test sets as float64 [N, 3072] rows, normalised like the rest of the course."""
    import cifar10_input

    images, labels = cifar10_input.load_split(batches_dir, "train")
    train_idx, val_idx = cifar10_input.split_indices(len(labels), val_size=len(labels) // 10,
                                                     num_train_examples=None, seed=seed)
    mean, std = cifar10_input.channel_stats(images[train_idx])

    def flat(x):
        return ((x / 255.0 - mean) / std).reshape(len(x), -1)
    test_images, test_labels = cifar10_input.load_split(batches_dir, "test")
    return (flat(images[train_idx]), labels[train_idx], flat(images[val_idx]), labels[val_idx],
            flat(test_images), test_labels)


def train_setting(data, setting: dict, seed: int = 0, verbose: bool = False):
    """Trains a two-layer net with one of the settings above; returns (net, history)."""
    X, y, X_val, y_val = data[:4]
    net = NumpyMLP([X.shape[1], setting["hidden_size"], 10], weight_scale=setting["weight_scale"], seed=seed)
    options = {k: setting[k] for k in ("learning_rate", "learning_rate_decay", "momentum", "reg", "num_iters",
                                       "batch_size")}
    return net, net.train(X, y, X_val, y_val, seed=seed, verbose=verbose, **options)


def main(argv: list[str] | None = None) -> int:
    import cifar10_input
    import plots  # noqa: F401  (sets the headless matplotlib backend)
    import matplotlib.pyplot as plt

    parser = argparse.ArgumentParser(description="Train the two-layer NumPy network on CIFAR-10.")
    parser.add_argument("--data-dir", type=Path, default=None, help="(default: $CIFAR10_DATA_DIR or ./data)")
    parser.add_argument("--data-url", default=None, help="archive URL, file:// URL or local path")
    parser.add_argument("--plot", default="numpy_mlp.png", help="where to save the curves (PNG)")
    parser.add_argument("--iterations", type=int, default=None, help="override num_iters of both settings")
    args = parser.parse_args(argv)
    try:
        batches_dir = cifar10_input.maybe_download_and_extract(args.data_dir or cifar10_input.default_data_dir(),
                                                               args.data_url or cifar10_input.default_data_url())
    except cifar10_input.DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    data = load_cifar10_flat(batches_dir)
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for label, setting in (("handout defaults", HANDOUT_DEFAULTS), ("tuned", TUNED)):
        if args.iterations:
            setting = {**setting, "num_iters": args.iterations}
        print(f"-- {label}: {setting}")
        net, history = train_setting(data, setting, verbose=True)
        test_accuracy = np.mean(net.predict(data[4]) == data[5])
        print(f"-- {label}: validation {100 * history['val_acc_history'][-1]:.1f}%, test {100 * test_accuracy:.1f}%")
        loss_ax.plot(history["loss_history"], label=label, alpha=0.7)
        acc_ax.plot(history["iterations"], [100 * a for a in history["val_acc_history"]], marker="o",
                    label=f"{label}, validation")
        acc_ax.plot(history["iterations"], [100 * a for a in history["train_acc_history"]], linestyle="--",
                    label=f"{label}, training batch")
    loss_ax.set(xlabel="iteration", ylabel="loss", title="Training loss")
    acc_ax.set(xlabel="iteration", ylabel="accuracy (%)", title="Accuracy")
    for ax in (loss_ax, acc_ax):
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.plot, dpi=100)
    print(f"saved the curves to {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
