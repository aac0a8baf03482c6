"""Full-size Fashion-MNIST: our recipe's time-to-accuracy frontier against the classic Keras CNN.

    python bench/fashion_mnist.py [--seeds 0 1 2] [--setting NAME=FLAGS ...] [--log FILE]
                                  [--data-url FOLDER]

The data: the complete Fashion-MNIST (60,000 training and 10,000 test images), e.g. from Debian's
package dataset-fashion-mnist (apt-get install dataset-fashion-mnist). The reference is Keras'
classic MNIST CNN (conv32-conv64-pool-dropout-dense128-dropout), the two-convolution network of
Zalando's benchmark table, trained as published: Adadelta at 1.0, batch 128, 12 epochs on all
60,000 images scaled to [0, 1], with model.fit. Each setting of ours is `python train.py --dataset
fashion-mnist FLAGS` as a student runs it (10% of the training images held out to choose the best
epoch), in a subprocess. Seed by seed, the reference and then every setting run in turn, so a change
in the machine's speed hits all alike; time ratios are per seed, against that seed's reference.

The table gives, for each setting, test accuracy and best validation accuracy (mean +- std over
the seeds), training time and its ratio to the reference's. Settings are to be chosen on the
validation column. Targets: the default (no flags) at least 94.5% at no more than 1.0x the
reference's time, and some setting at no more than 0.5x its time with at least the reference's
accuracy + 1 point.

A run takes hours (a seed of the reference: 16 minutes on 2 cores of a Zen 3, 27 on a Zen 1):
every finished run is appended to the --log file (JSON lines) at once, and a bench started again
with the same log skips the runs it holds, so an interrupted bench resumes where it stopped.
"""

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import machine_summary, mean_std, train_py  # first: puts the repository on the path

# isort: split
import mnist_input

DEFAULT_URL = "/usr/share/datasets/fashion-mnist"  # apt-get install dataset-fashion-mnist
REFERENCE = "reference"
# The default recipe, a shorter and a longer one, for the frontier (more: --setting NAME="FLAGS").
# Half: 0.49x the reference on a Zen 3 (float32); long: 1.0-1.2x on a Xeon with AMX (bfloat16).
SETTINGS = {"default": "", "half": "--epochs 8", "long": "--epochs 24"}
TARGET_ACCURACY = 0.945
TARGET_GAIN = 0.01  # over the reference, at no more than half its time


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


def reference_run(folder: Path, seed: int) -> dict:
    """The classic Keras CNN as published: its test accuracy and training seconds."""
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
    probabilities = model.predict(x_test.astype("float32") / 255, batch_size=1000, verbose=0)
    accuracy = float(np.mean(probabilities.argmax(1) == y_test))
    return dict(test_accuracy=accuracy, train_seconds=seconds, best_val_accuracy=None)


def our_run(data_dir: Path, seed: int, flags: str) -> dict:
    """Runs train.py with the setting's flags: its test and best validation accuracy, training
    seconds (as its metrics.json reports them) and epochs."""
    dataset = ["--dataset", "fashion-mnist", "--data-dir", str(data_dir)]
    results = train_py([*dataset, *flags.split()], seed)
    keys = ("test_accuracy", "train_seconds", "best_val_accuracy", "epochs_run")
    return {key: results.get(key) for key in keys}


def read_log(path: Path) -> dict:
    """The runs a previous bench finished, keyed by (flags, seed): a renamed setting keeps them."""
    done = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a crash: that run is done again
            done[row["flags"], row["seed"]] = row
    return done


def run_all(settings: dict, seeds: list[int], folder: Path, data_dir: Path, log: Path) -> dict:
    """Every run, seed by seed (the reference first), each logged as it finishes."""
    done = read_log(log)
    for seed in seeds:
        for name, flags in {REFERENCE: None, **settings}.items():
            key = (flags, seed)
            if key not in done:
                start = time.time()
                if flags is None:
                    row = reference_run(folder, seed)
                else:
                    row = our_run(data_dir, seed, flags)
                row.update(setting=name, flags=flags, seed=seed, wall=time.time() - start)
                with log.open("a") as file:
                    file.write(json.dumps(row) + "\n")
                done[key] = row
            row = done[key]
            print(
                f"  seed {seed} {name}: {100 * row['test_accuracy']:.2f}% test, "
                f"{row['train_seconds']:.0f} s",
                file=sys.stderr,
                flush=True,
            )
    return done


def table(settings: dict, seeds: list[int], done: dict) -> dict:
    """Prints the frontier table; returns, by setting name (REFERENCE for the reference), the mean
    test accuracy and the largest per-seed time ratio (a target holds only if every seed is within
    it)."""
    reference = [done[None, seed] for seed in seeds]
    print("| setting | train.py flags | test accuracy (%) | best validation (%) |", end="")
    print(" training time (s) | time vs reference |\n|---|---|---:|---:|---:|---:|")
    summary = {}
    for name, flags in {REFERENCE: None, **settings}.items():
        runs = [done[flags, seed] for seed in seeds]
        ratios = [r["train_seconds"] / ref["train_seconds"] for r, ref in zip(runs, reference)]
        validation = [r["best_val_accuracy"] for r in runs]
        shown = "-" if flags is None else f"`{flags or '(none)'}`"
        label = name
        if flags is None:
            label = "classic Keras CNN as published (Adadelta 1.0, batch 128, 12 epochs)"
        print(
            f"| {label} | {shown} | {mean_std([r['test_accuracy'] for r in runs], 100, 2)} | "
            f"{'-' if None in validation else mean_std(validation, 100, 2)} | "
            f"{mean_std([r['train_seconds'] for r in runs], digits=0)} | "
            f"{statistics.mean(ratios):.2f}x |"
        )
        summary[name] = (statistics.mean(r["test_accuracy"] for r in runs), max(ratios))
    return summary


def verdicts(summary: dict) -> None:
    """The two targets, met or missed."""
    reference = summary[REFERENCE][0]
    accuracy, ratio = summary["default"]
    met = accuracy >= TARGET_ACCURACY and ratio <= 1.0
    print(
        f"\ndefault: {100 * accuracy:.2f}% at {ratio:.2f}x the reference's time "
        f"({'meets' if met else 'MISSES'} the target: >= {100 * TARGET_ACCURACY:.1f}% at <= 1.0x)"
    )
    ours = {name: result for name, result in summary.items() if name not in (REFERENCE, "default")}
    fast = [(a, name) for name, (a, r) in ours.items() if r <= 0.5]
    best, name = max(fast, default=(0.0, "none"))
    met = best >= reference + TARGET_GAIN
    print(
        f"best setting at <= 0.5x the time: {name}, {100 * best:.2f}% vs the reference's "
        f"{100 * reference:.2f}% ({'meets' if met else 'MISSES'} the target: +1 point)"
    )


def epochs_within(settings: dict, seeds: list[int], done: dict, budget: float) -> None:
    """Says how many epochs of the default recipe fit `budget` times the reference's time on this
    machine (from the measured seconds per epoch): a faster CPU can buy accuracy with them."""
    flags = settings["default"]
    per_epoch = statistics.mean(
        done[flags, seed]["train_seconds"] / done[flags, seed]["epochs_run"] for seed in seeds
    )
    reference = statistics.mean(done[None, seed]["train_seconds"] for seed in seeds)
    epochs = math.floor(budget * reference / per_epoch)
    print(
        f"{budget:g}x the reference's time on this machine: {epochs} epochs of the default "
        f"recipe ({per_epoch:.0f} s each): train.py --dataset fashion-mnist --epochs {epochs}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar='NAME="FLAGS"',
        help=f"another setting: train.py flags (default settings: {SETTINGS})",
    )
    parser.add_argument("--only", action="store_true", help="run only the --setting ones")
    parser.add_argument(
        "--log",
        type=Path,
        default=Path("fashion_mnist_bench.jsonl"),
        help="finished runs, kept to resume an interrupted bench (default: %(default)s)",
    )
    parser.add_argument("--data-url", default=DEFAULT_URL, help=f"(default: {DEFAULT_URL})")
    args = parser.parse_args()
    settings = {} if args.only else dict(SETTINGS)
    for setting in args.setting:
        name, separator, flags = setting.partition("=")
        if not separator:
            parser.error(f'--setting {setting!r}: write NAME="FLAGS", e.g. long="--epochs 30"')
        settings[name] = flags
    with tempfile.TemporaryDirectory(prefix="bench-fashion-") as data:
        folder = mnist_input.maybe_download(Path(data), "fashion-mnist", args.data_url)
        done = run_all(settings, args.seeds, folder, Path(data), args.log)
    print(f"\nFashion-MNIST, full data (60,000 + 10,000), seeds {args.seeds}, mean +- std")
    print(f"Machine: {machine_summary()}\n")
    summary = table(settings, args.seeds, done)
    if "default" in summary:
        verdicts(summary)
        for budget in (0.5, 1.0):
            epochs_within(settings, args.seeds, done, budget)


if __name__ == "__main__":
    main()
