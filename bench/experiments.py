"""The course's questions as commands: each handout experiment as one sweep, measured on the mini
archive.

    python bench/experiments.py [--only NAME ...] [--seeds 0,1,2] [--runs DIR] > table.md

Each experiment is the train.py sweep a student runs (with the seeds as one more axis, for the
spread); here it runs on the mini archive (5,085 real CIFAR-10 images, of which 4,500 train). The
output is the Markdown of docs/experiments.md's tables: per experiment, its command and compare.py's
table (mean +- std over the seeds). Interrupted, the same command continues (the sweeps continue
where they stopped)."""

import argparse
import subprocess
import sys
from pathlib import Path

from common import machine_summary, mini_batches_dir

REPO = Path(__file__).resolve().parent.parent
MLP = ["--model", "mlp", "--epochs", "20", "--num-train-examples", "4500"]
CNN = ["--epochs", "10", "--num-train-examples", "4500"]
EXPERIMENTS = {  # name: (the question, the handout it comes from, train.py flags)
    "mlp-init": (
        "How does the initialisation change what an MLP learns?",
        "000, 001",
        [*MLP, "--sweep", "initializer=he_normal,glorot_uniform,normal"],
    ),
    "mlp-weight-decay": (
        "Does weight decay help the MLP?",
        "000, 001, 002",
        [*MLP, "--sweep", "weight-decay=0,0.0001,0.001,0.01"],
    ),
    "learning-rate": (
        "Which learning rate? (a curve per rate)",
        "002, 003",
        [*MLP, "--sweep", "lr=0.0001,0.001,0.01"],
    ),
    "dropout": ("Which dropout rate?", "000, 003", [*MLP, "--sweep", "dropout=0,0.2,0.5"]),
    "optimizer": (
        "Which optimizer?",
        "001",
        [*MLP, "--sweep", "optimizer=sgd,momentum,adam,rmsprop"],
    ),
    "mlp-depth": (
        "Do more hidden layers help an MLP?",
        "002",
        [*MLP, "--sweep", "hidden-units=512,512:512,512:512:512,512:512:512:512"],
    ),
    "data-size": (
        "How much does more data help?",
        "000",
        [
            "--preset",
            "cnn-bn",
            "--epochs",
            "10",
            "--sweep",
            "num-train-examples=500,1000,2000,4500",
        ],
    ),
    "batch-norm": (
        "Does batch norm help the CNN?",
        "000, 003",
        ["--preset", "cnn", *CNN, "--sweep", "batch-norm=false,true"],
    ),
    "strided": (
        "Pooling or strided convolutions?",
        "000",
        ["--preset", "cnn-bn", *CNN, "--sweep", "downsample=pool,stride"],
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(EXPERIMENTS), default=list(EXPERIMENTS))
    parser.add_argument(
        "--seeds", default="0,1,2", help="the seed axis of every sweep (default: 0,1,2)"
    )
    parser.add_argument(
        "--runs", type=Path, default=Path("runs-experiments"), help="where the sweeps go"
    )
    args = parser.parse_args()
    data = ["--data-dir", str(mini_batches_dir().parent)]
    print(f"Machine: {machine_summary()}\n")
    for name in args.only:
        question, handouts, flags = EXPERIMENTS[name]
        command = [
            *flags,
            "--sweep",
            f"seed={args.seeds}",
            "--run-dir",
            str(args.runs),
            "--name",
            name,
        ]
        result = subprocess.run(
            [sys.executable, str(REPO / "train.py"), *data, *command],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            sys.exit(f"{name} failed ({result.returncode}):\n{result.stderr[-3000:]}")
        shown = " ".join(f"'{f}'" if ":" in f else f for f in flags)
        command = f"python train.py {shown} --sweep seed={args.seeds}"
        print(f"### {question}\n\nHandouts {handouts}. `{command}`\n")
        print((args.runs / name / "comparison.md").read_text())
        print(file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
