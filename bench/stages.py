"""The README's stage table: each course stage's command, trained on the mini archive, over seeds.

    python bench/stages.py [--seeds 0 1 2] [--stages linear mlp ...] [--epochs N]
                           [--dataset mnist --data-url FOLDER]

For each stage, the command the README gives a student (with --num-train-examples 4500, what the
mini archive holds after the validation split), run as a subprocess, once per seed: best validation
and test accuracy (mean +- std over the seeds), the training time and images/s (median of the epochs
after the first), and the projected time of the same command on this machine with all 45,000
training images. With --dataset mnist (and --data-url, e.g. the course's mini MNIST: 4,000 + 1,000
digits), the same commands train on every training digit not held out for validation. --epochs N
trains every stage N epochs (the README's quick look compares the tuned recipe with cnn-bn so)."""

import argparse
import statistics
import sys
import tempfile

from common import machine_summary, mean_std, mini_batches_dir, train_py

SUBSET = ["--num-train-examples", "4500"]
COMMANDS = {  # stage: the README's command (train.py flags)
    "linear": ["--model", "linear", "--epochs", "20"],
    "linear, flip + crop": ["--model", "linear", "--epochs", "20", "--flip", "--crop", "4"],
    "mlp": ["--model", "mlp", "--epochs", "20"],
    "cnn": ["--preset", "cnn", "--epochs", "10"],
    "cnn, flip + crop": ["--preset", "cnn", "--epochs", "10", "--flip", "--crop", "4"],
    "cnn-bn": ["--preset", "cnn-bn", "--epochs", "10"],
    "cnn-strided": ["--preset", "cnn-strided", "--epochs", "10"],
    "cnn-large": ["--preset", "cnn-large", "--epochs", "10", "--flip", "--crop", "4"],
    "tuned": ["--model", "cnn", "--epochs", "10"],
}


def run(data: list[str], flags: list[str], seed: int) -> dict:
    """One stage's run: train.py's results, with the median images/s of its epochs (the first,
    which includes tracing, left out when there are others)."""
    results = train_py([*flags, *data], seed)
    rows = results["rows"]
    results["images_per_second"] = statistics.median(
        float(r["images_per_second"]) for r in rows[1:] or rows
    )
    return results


def command_of(stage: str, args) -> list[str]:
    """The stage's train.py flags: with --epochs, that many epochs; on 28x28 data without the
    flip and crop flags (the dataset's own augmentation applies)."""
    flags = list(COMMANDS[stage])
    if args.epochs:
        flags[flags.index("--epochs") + 1] = str(args.epochs)
    if args.dataset != "cifar10":
        flags = [f for f in flags if f not in ("--flip", "--crop", "4")]
    return flags


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--stages", nargs="+", default=list(COMMANDS), choices=list(COMMANDS))
    parser.add_argument(
        "--dataset", default="cifar10", choices=("cifar10", "mnist", "fashion-mnist")
    )
    parser.add_argument(
        "--data-url", help="for --dataset mnist or fashion-mnist: the folder of its files"
    )
    parser.add_argument("--epochs", type=int, help="train every stage this many epochs")
    args = parser.parse_args()
    if args.dataset == "cifar10":
        data = ["--data-dir", str(mini_batches_dir().parent), *SUBSET]
    else:
        data = ["--dataset", args.dataset, "--data-dir", tempfile.mkdtemp()]
        data += ["--data-url", args.data_url]
    results = {stage: [] for stage in args.stages}
    # seed by seed, so that a change in machine speed hits every stage alike
    for seed in args.seeds:
        for stage in args.stages:
            results[stage].append(run(data, command_of(stage, args), seed))
            r = results[stage][-1]
            print(
                f"  seed {seed} {stage}: test {100 * r['test_accuracy']:.1f}%, "
                f"val {100 * r['best_val_accuracy']:.1f}%"
                f" in {r['train_seconds']:.0f} s",
                file=sys.stderr,
                flush=True,
            )
    print_table(args, data, results)


def print_table(args, data: list[str], results: dict) -> None:
    """The markdown table: each stage's command, accuracies, time and its projection to 45,000."""
    print(
        f"\nCourse stages on {args.dataset} ({' '.join(data[2:])}), seeds {args.seeds}, mean +- std"
    )
    print(f"Machine: {machine_summary()}\n")
    print(
        "| stage | command (add `--num-train-examples 4500`) | best validation accuracy (%) | "
        "test accuracy (%) | training time (s) | images/s | "
        "all 45,000 images, same epochs (projected) |\n"
        "|---|---|---:|---:|---:|---:|---:|"
    )
    for stage, runs in results.items():
        rate = statistics.median(r["images_per_second"] for r in runs)
        epochs = runs[0]["epochs_run"]
        projected = 45_000 * epochs / rate / 60
        print(
            f"| {stage} | `python train.py {' '.join(command_of(stage, args))}` | "
            f"{mean_std([r['best_val_accuracy'] for r in runs], 100)} | "
            f"{mean_std([r['test_accuracy'] for r in runs], 100)} | "
            f"{mean_std([r['train_seconds'] for r in runs], digits=0)} | {rate:,.0f} | "
            f"{projected:.0f} min |"
        )


if __name__ == "__main__":
    main()
