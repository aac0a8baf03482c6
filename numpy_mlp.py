"""A neural network by hand, in NumPy only: forward pass, loss, backpropagation, gradient check,
SGD.

This is what TensorFlow automates. Read it before the model files:
  NumpyMLP.loss:     forward through ReLU layers, softmax cross-entropy + L2, then backpropagation
  numerical_gradient and relative_error: the check that the backward pass is right
  NumpyMLP.train:    minibatch SGD with momentum and learning-rate decay
Convolution and pooling by hand are in numpy_conv.py, batch normalisation in numpy_batch_norm.py.

    python numpy_mlp.py [--dataset D] [--data-dir D] [--plot numpy_mlp.png] [--iterations N]

checks the loss and gradients on the handout's toy problem, then trains the handout's two-layer
network on CIFAR-10 with its defaults and with a tuned setting.
Dense weights are W [fan_in, fan_out], as in Keras, so every result here can be compared with it.
"""

from __future__ import annotations

import argparse
import sys
import textwrap

import numpy as np

from plumbing import entry
from plumbing.errors import OneLineParser
from plumbing.files import picture_path

# The handout's defaults for the two-layer network on CIFAR-10.
HANDOUT_DEFAULTS = dict(
    hidden_size=100,
    weight_scale=1e-4,
    learning_rate=2e-3,
    learning_rate_decay=1.0,
    momentum=0.0,
    reg=0.0,
    num_iters=1500,
    batch_size=200,
)
# A tuned setting (chosen on validation): wider, He-scaled initialisation, momentum, decay and
# weight decay.
TUNED = dict(
    hidden_size=200,
    weight_scale=None,
    learning_rate=2e-3,
    learning_rate_decay=0.95,
    momentum=0.9,
    reg=1e-3,
    num_iters=1500,
    batch_size=200,
)


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
    def from_params(cls, params: dict[str, np.ndarray]) -> NumpyMLP:
        """A network with the given parameters (W1, b1, W2, b2, ...): to reproduce a handout."""
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
        # BEGIN SOLUTION [NumPy net]: hidden layers relu(h @ W + b) appended to activations; scores
        # STUB: scores = None  # [N, C]: the last layer's h @ W + b, without the ReLU
        for layer in range(1, self.num_layers):
            hidden = activations[-1] @ self.params[f"W{layer}"] + self.params[f"b{layer}"]
            activations.append(np.maximum(hidden, 0))  # ReLU
        scores = activations[-1] @ self.params[f"W{last}"] + self.params[f"b{last}"]
        # END SOLUTION
        if y is None:
            return scores

        # Softmax cross-entropy, stable: subtracting the row maximum does not change the softmax.
        num_examples = X.shape[0]
        # BEGIN SOLUTION [NumPy net]: mean softmax cross-entropy + reg * sum ||W||^2; backprop
        # STUB: data_loss, reg_loss, grads = 0.0, 0.0, {}
        shifted = scores - scores.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        data_loss = -log_probs[np.arange(num_examples), y].mean()
        reg_loss = reg * sum(np.sum(self.params[f"W{layer}"] ** 2) for layer in range(1, last + 1))

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

    def train(
        self,
        X: np.ndarray,
        y: np.ndarray,
        X_val: np.ndarray,
        y_val: np.ndarray,
        *,
        learning_rate: float = 1e-3,
        learning_rate_decay: float = 0.95,
        momentum: float = 0.0,
        reg: float = 0.0,
        num_iters: int = 100,
        batch_size: int = 200,
        check_every: int = 100,
        seed: int = 0,
        verbose: bool = False,
    ) -> dict[str, list[float]]:
        """Minibatch SGD with momentum; each epoch multiplies the learning rate by
        `learning_rate_decay`.

        Returns:
            loss_history (every iteration), and train_acc_history / val_acc_history (every
            `check_every` iterations and at the end; training accuracy on the current batch, as the
            handout does).
        """
        rng = np.random.default_rng(seed)
        velocity = {key: np.zeros_like(value) for key, value in self.params.items()}
        iterations_per_epoch = max(X.shape[0] // batch_size, 1)
        history = {
            "loss_history": [],
            "train_acc_history": [],
            "val_acc_history": [],
            "iterations": [],
        }
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
                    print(
                        f"iteration {it:5d}/{num_iters}: loss {loss:.4f}, "
                        f"train accuracy {100 * train_acc:.1f}%, "
                        f"validation accuracy {100 * val_acc:.1f}%"
                    )
        return history


# ----------------------------------------------------------------------------- the gradient check
def numerical_gradient(f, x: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Central differences (f(x + h) - f(x - h)) / 2h for every entry of x (changed in place, then
    restored)."""
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


def min_abs_preactivation(net: NumpyMLP, X: np.ndarray) -> float:
    """The hidden pre-activation closest to 0. Central differences are only valid away from ReLU's
    kink at 0: a step h that crosses it measures a different linear piece."""
    hidden, closest = X, np.inf
    for layer in range(1, net.num_layers):
        pre = hidden @ net.params[f"W{layer}"] + net.params[f"b{layer}"]
        closest, hidden = min(closest, float(np.abs(pre).min())), np.maximum(pre, 0)
    return closest


def handout_toy():
    """The handout's toy problem, drawn exactly as it does: (net 4-10-3, X [5, 4], y [5])."""
    np.random.seed(0)
    params = {
        "W1": 0.1 * np.random.randn(4, 10),
        "b1": np.zeros(10),
        "W2": 0.1 * np.random.randn(10, 3),
        "b2": np.zeros(3),
    }
    np.random.seed(1)
    X = 10 * np.random.randn(5, 4)
    return NumpyMLP.from_params(params), X, np.array([0, 1, 2, 2, 1])


def check_on_the_toy_problem() -> None:
    """Prints the toy loss (the handout's: 1.30378789133) and each gradient's relative error."""
    net, X, y = handout_toy()
    loss, grads = net.loss(X, y, reg=0.05)
    print(f"toy problem: loss {loss:.11f} (the handout's: 1.30378789133)")
    for key, param in net.params.items():
        numeric = numerical_gradient(lambda: net.loss(X, y, reg=0.05)[0], param)
        print(
            f"  {key}: relative error of the gradient {relative_error(grads[key], numeric):.2e} "
            f"(below 1e-8 when right)"
        )


# ----------------------------------------------------------------------------- on real images
def load_flat(folder, seed: int = 0):
    """Training, validation and test sets as float32 [N, H * W * C] rows, normalised like the rest
    of the course (the training set's per-channel mean and std); 10% of the training files held
    out. Float32 halves the memory (CIFAR-10's training rows take 0.55 GB); each batch meets float64
    weights."""
    import cifar10_input  # here, not at the top: the network itself needs nothing but NumPy

    images, labels = cifar10_input.load_any(folder, "train")
    train_idx, val_idx = cifar10_input.split_indices(
        len(labels), val_size=len(labels) // 10, num_train_examples=None, seed=seed
    )
    mean, std = cifar10_input.channel_stats(images[train_idx])

    def flat(x):
        return ((x.astype(np.float32) / 255 - mean) / std).reshape(len(x), -1)

    test_images, test_labels = cifar10_input.load_any(folder, "test")
    return (
        flat(images[train_idx]),
        labels[train_idx],
        flat(images[val_idx]),
        labels[val_idx],
        flat(test_images),
        test_labels,
    )


def train_setting(data, setting: dict, seed: int = 0, verbose: bool = False):
    """Trains a two-layer net with one of the settings above; returns (net, history)."""
    X, y, X_val, y_val = data[:4]
    sizes = [X.shape[1], setting["hidden_size"], int(y.max()) + 1]
    net = NumpyMLP(sizes, weight_scale=setting["weight_scale"], seed=seed)
    options = {
        k: setting[k]
        for k in (
            "learning_rate",
            "learning_rate_decay",
            "momentum",
            "reg",
            "num_iters",
            "batch_size",
        )
    }
    return net, net.train(X, y, X_val, y_val, seed=seed, verbose=verbose, **options)


def positive_int(text: str) -> int:
    """An argparse type: a whole number above 0 (--iterations)."""
    if not text.strip().isdigit() or int(text) == 0:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, not {text}")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    """python numpy_mlp.py: the toy check, then the handout's defaults and the tuned setting on real
    images; curves in numpy_mlp.png. A mistake or an unwritten stub is one line
    (plumbing/errors.py)."""
    return entry.main(train_and_plot, argv)


def make_parser() -> OneLineParser:
    """numpy_mlp.py's command line: the data, the picture's file and the number of iterations."""
    parser = OneLineParser(prog="numpy_mlp.py", description="Train the two-layer NumPy network.")
    parser.add_argument(
        "--dataset",
        choices=("cifar10", "mnist", "fashion-mnist"),
        default="cifar10",
        help="(default: cifar10)",
    )
    parser.add_argument("--data-dir", default=None, help="(default: $CIFAR10_DATA_DIR or ./data)")
    parser.add_argument(
        "--data-url", default=None, help="where to get the data: URL, file:// or path"
    )
    parser.add_argument(
        "--plot",
        type=picture_path,
        default="numpy_mlp.png",
        help="the curves' file (default: numpy_mlp.png)",
    )
    parser.add_argument(
        "--iterations", type=positive_int, default=None, help="override num_iters of both settings"
    )
    return parser


def train_and_plot(argv: list[str] | None) -> int:
    """The work of main: the flags (checked first), the toy check, both settings trained, the curves
    and the tuned network's first layer (W1) in one picture."""
    args = make_parser().parse_args(argv)
    import cifar10_input  # the data and the pictures: only for this command, not for the network
    import plots

    check_on_the_toy_problem()
    data = load_flat(cifar10_input.prepare(args.dataset, args.data_dir, args.data_url))
    fig, (loss_ax, acc_ax, w1_ax) = plots.plt.subplots(
        1, 3, figsize=(16, 4.4), width_ratios=(1, 1, 0.8)
    )
    settings = (("handout defaults", HANDOUT_DEFAULTS, "C0"), ("tuned", TUNED, "C1"))
    for label, setting, colour in settings:  # one colour per setting, in both panels
        if args.iterations is not None:
            setting = {**setting, "num_iters": args.iterations}
        print(
            textwrap.fill(
                f"-- {label}: " + ", ".join(f"{k} {v}" for k, v in setting.items()),
                80,
                subsequent_indent="   ",
            )
        )
        net, history = train_setting(data, setting, verbose=True)
        test_accuracy = np.mean(net.predict(data[4]) == data[5])
        validation = history["val_acc_history"][-1]
        print(f"-- {label}: validation {100 * validation:.1f}%, test {100 * test_accuracy:.1f}%")
        plot_history(loss_ax, acc_ax, history, label, colour)
    loss_ax.set(xlabel="iteration", ylabel="loss", title="Training loss")
    acc_ax.set(
        xlabel="iteration", ylabel="accuracy (%)", title="Accuracy (dashed: on the training batch)"
    )
    for ax in (loss_ax, acc_ax):
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    show_first_layer(w1_ax, net.params["W1"])
    fig.tight_layout()
    plots.save(fig, args.plot)
    print(f"saved the curves and W1 to {args.plot}")
    return 0


def plot_history(loss_ax, acc_ax, history: dict, label: str, colour: str) -> None:
    """One setting's curves: its loss in the left panel; its validation accuracy (solid) and its
    training-batch accuracy (dashed) in the right one, in one colour."""
    loss_ax.plot(history["loss_history"], color=colour, label=label, alpha=0.7)
    iterations = history["iterations"]
    acc_ax.plot(
        iterations,
        [100 * a for a in history["val_acc_history"]],
        color=colour,
        marker="o",
        label=f"{label}, validation",
    )
    acc_ax.plot(
        iterations,
        [100 * a for a in history["train_acc_history"]],
        color=colour,
        linestyle="--",
        label=f"{label}, training batch",
    )


IMAGE_SHAPES = {32 * 32 * 3: (32, 32, 3), 28 * 28: (28, 28, 1)}  # an input row's length: its image


def show_first_layer(ax, W1: np.ndarray, count: int = 32, columns: int = 8) -> None:
    """The tuned network's W1 as a grid: each hidden unit's input weights (a column of W1) shown as
    an image, scaled to [0, 1] on its own, with a white line between units."""
    side, _, channels = IMAGE_SHAPES[W1.shape[0]]
    units = W1.T[:count].reshape(-1, side, side, channels)
    low = units.min(axis=(1, 2, 3), keepdims=True)
    units = (units - low) / np.maximum(units.max(axis=(1, 2, 3), keepdims=True) - low, 1e-12)
    rows = -(-len(units) // columns)
    grid = np.ones((rows * (side + 1) + 1, columns * (side + 1) + 1, channels))
    for i, unit in enumerate(units):
        top, left = 1 + (i // columns) * (side + 1), 1 + (i % columns) * (side + 1)
        grid[top : top + side, left : left + side] = unit
    ax.imshow(grid[..., 0] if channels == 1 else grid, cmap="gray", interpolation="nearest")
    ax.axis("off")
    ax.set_title(
        f"Tuned W1: {len(units)} of {W1.shape[1]} hidden units' input weights\n"
        "(look for colour blobs and edges; noise means too little training)",
        fontsize=9,
    )


if __name__ == "__main__":
    sys.exit(main())
