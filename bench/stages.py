"""The README's results table: every course preset trained on the mini archive, one after another.

    python bench/stages.py [--epochs 20] [--seed 0] [--presets linear mlp ...]

For each preset: test accuracy on the mini test split (500 images), training time, training
images/s (median over epochs after the first, which includes tracing), and the projected time of
30 epochs on full CIFAR-10 (45,000 training images) on this machine from that throughput. Accuracy
on full CIFAR-10 is not projected: it cannot be inferred from the mini archive.
"""

import argparse
import csv
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import machine_summary, mini_batches_dir

REPO = Path(__file__).resolve().parent.parent
FULL_TRAIN_IMAGES = 45_000  # 50,000 minus train.py's default 10% validation split


def main() -> None:
    import train

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--presets", nargs="+", default=list(train.PRESETS))
    args = parser.parse_args()

    batches_dir = mini_batches_dir()
    rows = []
    for preset in args.presets:
        with tempfile.TemporaryDirectory() as runs:
            subprocess.run([sys.executable, str(REPO / "train.py"), "--preset", preset, "--epochs", str(args.epochs),
                            "--seed", str(args.seed), "--data-dir", str(batches_dir.parent), "--run-dir", runs,
                            "--name", "run"], check=True, capture_output=True)
            run_dir = Path(runs) / "run"
            results = json.loads((run_dir / "metrics.json").read_text())
            speeds = [float(r["images_per_second"]) for r in csv.DictReader(open(run_dir / "metrics.csv"))][1:]
        rate = statistics.median(speeds)
        rows.append((preset, results["test_accuracy"], results["train_seconds"], rate))
        print(f"  {preset}: {100 * results['test_accuracy']:.1f}% in {results['train_seconds']:.0f} s", file=sys.stderr)

    print(f"\nCourse presets on the mini archive: {args.epochs} epochs, seed {args.seed}, one run each")
    print(f"Machine: {machine_summary()}\n")
    print("| preset | mini test accuracy (%) | mini training time (s) | training images/s | "
          "full CIFAR-10, 30 epochs, this CPU (projected) |\n|---|---:|---:|---:|---:|")
    for preset, accuracy, seconds, rate in rows:
        hours = FULL_TRAIN_IMAGES * 30 / rate / 3600
        print(f"| `{preset}` | {100 * accuracy:.1f} | {seconds:.0f} | {rate:,.0f} | "
              f"{hours * 60:.0f} min |" if hours < 1 else
              f"| `{preset}` | {100 * accuracy:.1f} | {seconds:.0f} | {rate:,.0f} | {hours:.1f} h |")


if __name__ == "__main__":
    main()
