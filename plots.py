"""The plots a training run leaves behind (matplotlib PNG files), for reading a run at a glance.

learning_curves:    loss and accuracy per epoch, training vs validation (over-fitting shows here)
confusion_matrix:   which classes are taken for which (also written as CSV)
per_class_accuracy: one bar per class
confident_mistakes: for each true class, the wrong predictions the model was surest of
sample_grid:        example images of every class (python cifar10_input.py --show)
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no window: works on servers and in tests
import matplotlib.pyplot as plt
import numpy as np

from plumbing import files


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
) -> None:
    """Every plot of a finished run, into its folder."""
    learning_curves(rows, run_dir / "learning_curves.png")
    save_confusion_matrix(
        matrix, class_names, run_dir / "confusion_matrix.png", run_dir / "confusion_matrix.csv"
    )
    per_class_accuracy(matrix, class_names, run_dir / "per_class_accuracy.png")
    confident_mistakes(
        images, labels, probabilities, class_names, run_dir / "confident_mistakes.png"
    )


def learning_curves(rows: list[dict], path: Path) -> None:
    """Training and validation loss and accuracy against the epoch number."""
    epochs = [row["epoch"] for row in rows]
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("train", "training"), ("val", "validation")):
        if any(row.get(f"{key}_loss") is not None for row in rows):
            loss_ax.plot(epochs, [row[f"{key}_loss"] for row in rows], marker="o", label=label)
            acc_ax.plot(
                epochs, [100 * row[f"{key}_accuracy"] for row in rows], marker="o", label=label
            )
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy loss", title="Loss")
    acc_ax.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy")
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    save(fig, path)


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts [true class, predicted class]."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


def save_confusion_matrix(matrix: np.ndarray, class_names, png_path: Path, csv_path: Path) -> None:
    """The matrix as a labelled heat map (PNG) and as CSV (rows: true class, columns: predicted)."""
    header = "true\\predicted," + ",".join(class_names)
    rows = [f"{name}," + ",".join(str(v) for v in row) for name, row in zip(class_names, matrix)]
    files.write_text(csv_path, "\n".join([header, *rows]) + "\n")
    fig, ax = plt.subplots(figsize=(7, 6))
    image = ax.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(
            j,
            i,
            count,
            ha="center",
            va="center",
            fontsize=7,
            color="white" if count > matrix.max() / 2 else "black",
        )
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set(xlabel="predicted class", ylabel="true class", title="Confusion matrix (test set)")
    fig.colorbar(image)
    fig.tight_layout()
    save(fig, png_path)


def per_class_accuracy(matrix: np.ndarray, class_names, path: Path) -> None:
    """One bar per class: the fraction of its test images classified correctly."""
    accuracy = 100 * np.diag(matrix) / np.maximum(matrix.sum(axis=1), 1)
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar(class_names, accuracy, color="tab:blue")
    ax.axhline(
        100 * np.trace(matrix) / matrix.sum(), color="black", linestyle="--", label="overall"
    )
    ax.set(ylabel="accuracy (%)", ylim=(0, 100), title="Per-class accuracy (test set)")
    ax.tick_params(axis="x", rotation=45)
    ax.legend()
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
    predicted class and its probability.

    Args:
        images: uint8 [N, H, W, C] test images, as stored (not normalised).
        labels: [N] true classes.
        probabilities: [N, classes] softmax outputs.
    """
    images, predictions = _rgb(images), probabilities.argmax(axis=1)
    height, width = images.shape[1:3]
    cell_h, cell_w = height + 12, width + 4  # room for a caption above each tile
    mosaic = np.full((len(class_names) * cell_h, per_class * cell_w, 3), 255, dtype=np.uint8)
    fig, ax = plt.subplots(figsize=(per_class * 1.2 + 1.2, len(class_names) * 1.3))
    for class_id in range(len(class_names)):
        wrong = np.flatnonzero((labels == class_id) & (predictions != class_id))
        wrong = wrong[np.argsort(-probabilities[wrong, predictions[wrong]])][:per_class]
        for col, i in enumerate(wrong):
            top, left = class_id * cell_h + 10, col * cell_w + 2
            mosaic[top : top + height, left : left + width] = images[i]
            caption = f"{class_names[predictions[i]]} {probabilities[i, predictions[i]]:.0%}"
            ax.text(left + width / 2, top - 1, caption, ha="center", va="bottom", fontsize=6)
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_yticks(
        [c * cell_h + 10 + height / 2 for c in range(len(class_names))], class_names, fontsize=8
    )
    ax.set_xticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title("Most confident mistakes: row = true class, caption = prediction", fontsize=9)
    fig.tight_layout()
    save(fig, path, dpi=120)


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
