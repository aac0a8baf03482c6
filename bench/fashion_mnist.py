"""Full-size Fashion-MNIST: our default recipe against the classic Keras CNN, seed by seed, in one
run.

    python bench/fashion_mnist.py [--seeds 0 1 2] [--data-url FOLDER] [-- flags]

(FOLDER e.g. /usr/share/datasets/fashion-mnist.)

The data: the complete Fashion-MNIST (60,000 training and 10,000 test images), e.g. from Debian's
package dataset-fashion-mnist. The reference is Keras' classic MNIST CNN
(conv32-conv64-pool-dropout- dense128-dropout), the two-convolution network of Zalando's benchmark
table, trained as published: Adadelta at 1.0, batch 128, 12 epochs on all 60,000 images scaled to
[0, 1], with model.fit. Ours is `python train.py --dataset fashion-mnist` as a student runs it (10%
of the training images held out to choose the best epoch; extra flags after --), in a subprocess.
Reference and ours alternate seed by seed, so a change in the machine's speed hits both alike.
Targets: ours at least 94.5% test accuracy in at most 15 minutes of training, and ahead of the
reference in accuracy at equal or lower time."""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import machine_summary, mean_std  # first: puts the repository on the path

# isort: split
import mnist_input

REPO = Path(__file__).resolve().parent.parent
DEFAULT_URL = "/usr/share/datasets/fashion-mnist"  # apt-get install dataset-fashion-mnist


def classic_mnist_cnn():
    """The classic Keras MNIST example's network (softmax output, as published)."""
    import keras
    from keras import layers

    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(32, 3, activation="relu"),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Dropout(0.25),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dropout(0.5),
            layers.Dense(10, activation="softmax"),
        ],
        name="classic_mnist_cnn",
    )


def reference_run(folder: Path, seed: int) -> tuple[float, float]:
    """The classic Keras CNN as published; returns (test accuracy, training seconds)."""
    import keras
    import numpy as np

    keras.utils.set_random_seed(seed)
    (x, y), (x_test, y_test) = (
        mnist_input.load_split(folder, split) for split in ("train", "test")
    )
    model = classic_mnist_cnn()
    model.compile(
        keras.optimizers.Adadelta(learning_rate=1.0, rho=0.95, epsilon=1e-7),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    start = time.perf_counter()
    model.fit(x.astype("float32") / 255, y, batch_size=128, epochs=12, verbose=0)
    seconds = time.perf_counter() - start
    predictions = model.predict(x_test.astype("float32") / 255, batch_size=1000, verbose=0).argmax(
        1
    )
    return float(np.mean(predictions == y_test)), seconds


def our_run(data_dir: Path, seed: int, extra: list[str]) -> tuple[float, float, float]:
    """Runs train.py; returns (test accuracy, training seconds, best validation accuracy)."""
    with tempfile.TemporaryDirectory() as runs:
        subprocess.run(
            [
                sys.executable,
                str(REPO / "train.py"),
                "--dataset",
                "fashion-mnist",
                "--data-dir",
                str(data_dir),
                "--run-dir",
                runs,
                "--name",
                "run",
                "--seed",
                str(seed),
                *extra,
            ],
            check=True,
            capture_output=True,
        )
        results = json.loads((Path(runs) / "run" / "metrics.json").read_text())
    return results["test_accuracy"], results["train_seconds"], results["best_val_accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data-url", default=DEFAULT_URL, help=f"(default: {DEFAULT_URL})")
    parser.add_argument("extra", nargs="*", help="flags passed on to train.py (after --)")
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="bench-fashion-"))
    folder = mnist_input.maybe_download(data_dir, "fashion-mnist", args.data_url)
    reference, ours = [], []
    for seed in args.seeds:
        reference.append(reference_run(folder, seed))
        ours.append(our_run(data_dir, seed, args.extra))
        theirs = f"reference {100 * reference[-1][0]:.2f}% in {reference[-1][1]:.0f} s"
        print(
            f"  seed {seed}: {theirs}; ours {100 * ours[-1][0]:.2f}% in {ours[-1][1]:.0f} s",
            file=sys.stderr,
            flush=True,
        )

    print(f"\nFashion-MNIST, full data (60,000 + 10,000), seeds {args.seeds}, mean +- std")
    print(f"Machine: {machine_summary()}\n")
    print("| recipe | test accuracy (%) | training time (s) |\n|---|---:|---:|")
    print(
        f"| classic Keras MNIST CNN as published: Adadelta 1.0, batch 128, 12 epochs (reference) | "
        f"{mean_std([r[0] for r in reference], 100, 2)} | "
        f"{mean_std([r[1] for r in reference], digits=0)} |"
    )
    print(
        f"| ours: python train.py --dataset fashion-mnist {' '.join(args.extra)} | "
        f"{mean_std([o[0] for o in ours], 100, 2)} | {mean_std([o[1] for o in ours], digits=0)} |"
    )
    accuracy, minutes = (
        statistics.mean(o[0] for o in ours),
        statistics.mean(o[1] for o in ours) / 60,
    )
    gain = 100 * (accuracy - statistics.mean(r[0] for r in reference))
    ratio = statistics.mean(o[1] for o in ours) / statistics.mean(r[1] for r in reference)
    target = "meets" if accuracy >= 0.945 and minutes <= 15 else "MISSES"
    ahead = "ahead" if gain > 0 and ratio <= 1 else "NOT ahead"
    print(
        f"\nours: {100 * accuracy:.2f}% in {minutes:.1f} min of training "
        f"({target} the target: >= 94.5% in <= 15 min); ours - reference: {gain:+.2f} points "
        f"in {ratio:.2f}x its time ({ahead} at equal or lower time)"
    )


if __name__ == "__main__":
    main()
