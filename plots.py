"""The plots a training run leaves behind (matplotlib PNG files), for reading a run at a glance.

learning_curves:    loss and accuracy per epoch, training vs validation (over-fitting shows here)
confusion_matrix:   which classes are taken for which, as counts and as % of each row (and CSV)
per_class_accuracy: one bar per class, with its value and number of test images
confident_mistakes: for each true class, the wrong predictions the model was surest of
weights:            what the first layer learnt (templates, hidden units, or filters)
sample_grid:        example images of every class (python cifar10_input.py --show)
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # files only, no window: works on servers and in tests
import matplotlib.pyplot as plt
import numpy as np

from plumbing import files, runs


def save(fig, path: Path, dpi: int = 100) -> None:
    """Writes the figure atomically (a run killed while plotting leaves no half-written PNG)."""
    files.atomic_write(Path(path), lambda tmp: fig.savefig(tmp, dpi=dpi))
    plt.close(fig)


def save_all(
    run_dir: Path,
    rows: list[dict],
    matrix: np.ndarray,
    class_names,
    images: np.ndarray,
    labels: np.ndarray,
    probabilities: np.ndarray,
    mean_std=None,
) -> None:
    """Every plot of a finished run, into its folder; weights.png from the run's best.keras.

    mean_std: the training mean and std the pipeline normalised with (for the feature maps of one
    test image); None normalises that image with its own."""
    name, accuracy = run_name(run_dir), np.trace(matrix) / max(matrix.sum(), 1)
    learning_curves(rows, run_dir / "learning_curves.png", f"{name}: test accuracy {accuracy:.1%}")
    save_confusion_matrix(
        matrix, class_names, run_dir / "confusion_matrix.png", run_dir / "confusion_matrix.csv"
    )
    per_class_accuracy(matrix, class_names, run_dir / "per_class_accuracy.png")
    confident_mistakes(
        images, labels, probabilities, class_names, run_dir / "confident_mistakes.png"
    )
    model = runs.load_model(run_dir / "best.keras")  # the plain way: keras.models.load_model
    weights(model, class_names, run_dir / "weights.png", images[0], mean_std)


def run_name(run_dir: Path) -> str:
    """The run's path under the runs folder: sweep-mlp-lr/lr=0.001 for a sweep's run, else NAME."""
    run_dir = Path(run_dir)
    if (run_dir.parent / "sweep.json").is_file():
        return f"{run_dir.parent.name}/{run_dir.name}"
    return run_dir.name


def whole_epochs(ax) -> None:
    """Ticks at whole epochs only (a short run would otherwise get 1.25, 1.5, ...)."""
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True, min_n_ticks=1))


def best_epoch(rows: list[dict]) -> int | None:
    """The epoch that was tested: the first with the highest validation accuracy (training accuracy
    without a validation set), as train.py chooses it."""
    key = "train_accuracy"
    if any(row.get("val_accuracy") is not None for row in rows):
        key = "val_accuracy"
    scored = [row for row in rows if row.get(key) is not None]
    return max(scored, key=lambda row: row[key])["epoch"] if scored else None


def learning_curves(rows: list[dict], path: Path, title: str = "") -> None:
    """Training and validation loss and accuracy against the epoch number, a line at the best epoch.

    Validation far below training: over-fitting (more data, augmentation or weight decay help)."""
    epochs, best = [row["epoch"] for row in rows], best_epoch(rows)
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4.3))
    for key, label in (("train", "training"), ("val", "validation")):
        if any(row.get(f"{key}_loss") is not None for row in rows):
            loss_ax.plot(epochs, [row[f"{key}_loss"] for row in rows], marker="o", label=label)
            accuracy = [100 * row[f"{key}_accuracy"] for row in rows]
            acc_ax.plot(epochs, accuracy, marker="o", label=label)
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy loss", title="Loss")
    acc_ax.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy")
    for ax in (loss_ax, acc_ax):
        if best is not None:
            ax.axvline(best, color="grey", linestyle=":", label=f"best epoch ({best}): tested")
        whole_epochs(ax)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=9)
    fig.suptitle(title or "Learning curves")
    fig.tight_layout()
    save(fig, path)


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts [true class, predicted class]."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


def save_confusion_matrix(matrix: np.ndarray, class_names, png_path: Path, csv_path: Path) -> None:
    """The matrix as CSV (rows: true class, columns: predicted) and as two labelled heat maps: the
    counts, and each row divided by its total (the fraction of a class taken for each class)."""
    rows = [["true\\predicted", *class_names]]
    rows += [[name, *map(int, row)] for name, row in zip(class_names, matrix)]
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    files.write_text(csv_path, text.getvalue())
    fractions = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig, axes = plt.subplots(1, 2, figsize=(15, 6.5))
    heat_map(axes[0], matrix, class_names, "{:d}", "test images")
    heat_map(axes[1], 100 * fractions, class_names, "{:.0f}", "% of the true class (row)")
    axes[0].set_title("Counts: row = true class, column = prediction")
    axes[1].set_title("Each row as %: the diagonal is the per-class accuracy")
    fig.suptitle("Confusion matrix (test set): bright cells off the diagonal are confused pairs")
    fig.tight_layout()
    save(fig, png_path)


def heat_map(ax, values: np.ndarray, class_names, form: str, unit: str) -> None:
    """One heat map with its value in every cell (8 pt) and a labelled colour bar."""
    image = ax.imshow(values, cmap="Blues")
    for (i, j), value in np.ndenumerate(values):
        colour = "white" if value > values.max() / 2 else "black"
        number = form.format(int(value) if form == "{:d}" else value)
        ax.text(j, i, number, ha="center", va="center", fontsize=8, color=colour)
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set(xlabel="predicted class", ylabel="true class")
    ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04).set_label(unit)


def class_accuracy(matrix: np.ndarray) -> np.ndarray:
    """Each class's accuracy from the confusion matrix: its diagonal cell over its row (0 if empty).

    The one place this is computed: metrics.json's per_class_accuracy and the bars use it."""
    return np.diag(matrix) / np.maximum(matrix.sum(axis=1), 1)


def per_class_accuracy(matrix: np.ndarray, class_names, path: Path) -> None:
    """One bar per class: the fraction of its test images classified correctly, with its value and
    the number of test images of the class (n) under its name."""
    counts, accuracy = matrix.sum(axis=1), 100 * class_accuracy(matrix)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    names = [f"{name}\nn={n}" for name, n in zip(class_names, counts)]
    bars = ax.bar(names, accuracy, color="tab:blue")
    ax.bar_label(bars, [f"{a:.0f}%" for a in accuracy], fontsize=9)
    overall = 100 * np.trace(matrix) / max(matrix.sum(), 1)
    ax.axhline(overall, color="black", linestyle="--", label=f"overall {overall:.1f}%")
    ax.set(ylabel="accuracy (%)", ylim=(0, 105))
    ax.set_title("Per-class accuracy (test set): the classes below the line are the hard ones")
    ax.tick_params(axis="x", labelsize=9)
    ax.legend(fontsize=9, loc="lower right")
    fig.tight_layout()
    save(fig, path)


def _rgb(images: np.ndarray) -> np.ndarray:
    """uint8 [N, H, W, 3] from colour or grey ([N, H, W, 1]) images."""
    return np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images


def confident_mistakes(
    images: np.ndarray,
    labels: np.ndarray,
    probabilities: np.ndarray,
    class_names,
    path: Path,
    per_class: int = 8,
) -> None:
    """For each true class (a row), the misclassified images with the highest wrong probability.

    Drawn as one mosaic image (much faster than a grid of subplots), each tile captioned with the
    prediction and its probability, and the probability the model gave the true class:
    "pred: cat 75%" over "(true: dog 10%)". A class without mistakes says so in its row.

    Args:
        images: uint8 [N, H, W, C] test images, as stored (not normalised).
        labels: [N] true classes.
        probabilities: [N, classes] softmax outputs.
    """
    images, predictions = _rgb(images), probabilities.argmax(axis=1)
    height, width = images.shape[1:3]
    caption, cell_w = 13, width + 22  # pixels of the mosaic: two caption lines above each tile
    cell_h = height + caption + 2
    mosaic = np.full((len(class_names) * cell_h, per_class * cell_w, 3), 255, dtype=np.uint8)
    inch = 1.45 / cell_w  # a cell 1.45 inches wide: room for the captions at 8 pt
    fig, ax = plt.subplots(figsize=(mosaic.shape[1] * inch + 1.3, mosaic.shape[0] * inch + 0.5))
    for class_id, name in enumerate(class_names):
        wrong = np.flatnonzero((labels == class_id) & (predictions != class_id))
        wrong = wrong[np.argsort(-probabilities[wrong, predictions[wrong]])][:per_class]
        if not len(wrong):
            note = f"no {name} image was misclassified"
            centre = class_id * cell_h + caption + height / 2
            ax.text(4, centre, note, va="center", fontsize=9, style="italic")
        for col, i in enumerate(wrong):
            top, left = class_id * cell_h + caption, col * cell_w + 11
            mosaic[top : top + height, left : left + width] = images[i]
            predicted = predictions[i]
            text = f"pred: {class_names[predicted]} {probabilities[i, predicted]:.0%}\n"
            text += f"(true: {name} {probabilities[i, class_id]:.0%})"
            ax.text(
                left + width / 2,
                top - 1,
                text,
                ha="center",
                va="bottom",
                fontsize=8,
                linespacing=1.0,
            )
    ax.imshow(mosaic, interpolation="nearest")
    centres = [c * cell_h + caption + height / 2 for c in range(len(class_names))]
    ax.set_yticks(centres, class_names, fontsize=9)
    ax.set_xticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title("Most confident mistakes: row = true class, caption = prediction", fontsize=10)
    fig.tight_layout()
    save(fig, path, dpi=100)


def weights(model, class_names, path: Path, image: np.ndarray | None = None, mean_std=None):
    """weights.png: what the model's first layer learnt.

    The linear classifier: one template per class (its weights as an image); an MLP: the input
    weights of its first hidden units; a CNN: its first-layer filters and the feature maps they give
    for one test image (uint8 `image`, normalised with `mean_std`, or with its own mean and std)."""
    import keras  # here: compare.py imports this file without TensorFlow

    first = next(
        layer
        for layer in model.layers
        if isinstance(layer, (keras.layers.Dense, keras.layers.Conv2D))
    )
    kernel = keras.ops.convert_to_numpy(first.kernel)
    shape = tuple(model.input_shape[1:])
    if isinstance(first, keras.layers.Conv2D):
        fig = conv_filters(model, first, kernel, image, mean_std)
    elif first.units == len(class_names):  # the linear model: straight to the logits
        fig = image_grid(kernel.T.reshape(-1, *shape), class_names, columns=5, size=1.8)
        fig.suptitle(
            "Linear classifier: one template per class (its weights as an image).\nLook for"
            " a class's shapes and colours: a car's front, a horse, blue sea under a ship.",
            fontsize=11,
        )
    else:
        count = min(first.units, 32)
        fig = image_grid(kernel.T[:count].reshape(-1, *shape), [], columns=8)
        fig.suptitle(
            f"MLP, first layer: the input weights of {count} of its {first.units} hidden units."
            "\nLook for colour blobs and edge-like stripes (noise: too little training)."
        )
    fig.tight_layout()
    save(fig, path)


def stretched(weights: np.ndarray) -> np.ndarray:
    """Each image's values scaled to [0, 1] on its own (weights have no natural colour scale)."""
    axes = tuple(range(1, weights.ndim))
    low, high = weights.min(axis=axes, keepdims=True), weights.max(axis=axes, keepdims=True)
    return (weights - low) / np.maximum(high - low, 1e-12)


def image_grid(pictures: np.ndarray, titles, columns: int, size: float = 1.3):
    """A figure with one small picture per [H, W, C] array (each stretched), titled when given."""
    rows = -(-len(pictures) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(columns * size, rows * size + 0.9))
    for i, ax in enumerate(np.ravel(axes)):
        ax.axis("off")
        if i < len(pictures):
            picture = stretched(pictures[i : i + 1])[0]
            grey = picture.shape[-1] == 1
            ax.imshow(
                picture[..., 0] if grey else picture,
                cmap="gray" if grey else None,
                interpolation="nearest",
            )
            if i < len(titles):
                ax.set_title(titles[i], fontsize=9)
    return fig


def conv_filters(model, conv, kernel: np.ndarray, image, mean_std):
    """The first convolution's filters (left), one test image (middle) and its feature maps: what
    each filter gives for it (right)."""
    import keras

    filters = np.moveaxis(kernel, -1, 0)  # [F, k, k, C]
    count = min(len(filters), 32)
    if image is None:
        image = np.zeros(model.input_shape[1:], np.uint8)
    pixels = image.astype(np.float32) / 255.0
    mean, std = mean_std if mean_std is not None else (pixels.mean((0, 1)), pixels.std((0, 1)))
    x = (pixels - mean) / np.maximum(std, 1e-6)
    x = keras.ops.image.resize(x[None], model.input_shape[1:3])
    maps = keras.ops.convert_to_numpy(keras.Model(model.inputs, conv.output)(x))[0]
    fig = plt.figure(figsize=(15, 5.2))
    left, middle, right = fig.subfigures(1, 3, width_ratios=(8, 2.5, 8))
    columns = min(count, 8)
    rows = -(-count // columns)
    for i, ax in enumerate(left.subplots(rows, columns, squeeze=False).ravel()):
        ax.axis("off")
        if i < count:
            picture = stretched(filters[i : i + 1])[0]
            grey = picture.shape[-1] == 1
            ax.imshow(picture[..., 0] if grey else picture, cmap="gray" if grey else None)
    size = f"{kernel.shape[0]}x{kernel.shape[1]}"
    left.suptitle(
        f"First layer: {count} of its {len(filters)} {size} filters\n(look for edges at"
        " several angles, and colour blobs)",
        fontsize=10,
    )
    ax = middle.subplots()
    ax.imshow(_rgb(image[None])[0], interpolation="nearest")
    ax.axis("off")
    middle.suptitle("one test image", fontsize=10)
    for i, ax in enumerate(right.subplots(rows, columns, squeeze=False).ravel()):
        ax.axis("off")
        if i < count:
            ax.imshow(maps[..., i], cmap="viridis", interpolation="nearest")
    right.suptitle(
        "what each filter gives for it: its feature map\n(bright where the filter's pattern is)",
        fontsize=10,
    )
    return fig


def sample_grid(
    images: np.ndarray, labels: np.ndarray, class_names, path: Path, per_class: int = 10
) -> None:
    """A grid with one row per class and `per_class` example images in each."""
    images = _rgb(images)
    fig, axes = plt.subplots(
        len(class_names), per_class, figsize=(per_class * 0.9, len(class_names) * 0.9)
    )
    for class_id, name in enumerate(class_names):
        examples = np.flatnonzero(labels == class_id)[:per_class]
        for col, ax in enumerate(axes[class_id]):
            ax.axis("off")
            if col < len(examples):
                ax.imshow(images[examples[col]], interpolation="nearest")
        axes[class_id][0].text(-4, images.shape[1] / 2, name, ha="right", va="center", fontsize=9)
    fig.subplots_adjust(left=0.14, right=0.99, top=0.99, bottom=0.01, wspace=0.05, hspace=0.05)
    save(fig, path)
