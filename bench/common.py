"""Helpers shared by the benchmarks: the data, the machine, interleaved timing, the ratio table.

These machines' speed can change by ~2x from one minute to the next, so variants are timed in
interleaved rounds (A, B, C, A, B, C, ...) and compared by the median of per-round ratios.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cifar10_input
from plumbing.quiet import tensorflow_start_up

REPO = Path(__file__).resolve().parent.parent


def train_py(flags: list[str], seed: int) -> dict:
    """Runs `python train.py FLAGS --seed SEED` as a student would, in a subprocess and a
    temporary run folder; returns its metrics.json, with `wall` (the whole process's seconds) and
    `rows` (metrics.csv, one dict an epoch). A failed run stops the bench with train.py's error."""
    with tempfile.TemporaryDirectory() as runs:
        command = [sys.executable, str(REPO / "train.py"), *flags, "--seed", str(seed)]
        start = time.perf_counter()
        finished = subprocess.run(
            [*command, "--run-dir", runs, "--name", "run"], capture_output=True, text=True
        )
        wall = time.perf_counter() - start
        if finished.returncode != 0:
            error = finished.stderr.strip().splitlines()[-1:] or ["(no output)"]
            sys.exit(f"{' '.join(command)} failed (exit {finished.returncode}): {error[0]}")
        folder = Path(runs) / "run"
        results = json.loads((folder / "metrics.json").read_text())
        with open(folder / "metrics.csv", newline="") as file:
            results["rows"] = list(csv.DictReader(file))
    return {**results, "wall": wall}


def mini_batches_dir() -> Path:
    """Extracts $CIFAR10_MINI_ARCHIVE (default: ../shared/data/...) into a temporary folder."""
    default = Path(__file__).resolve().parents[2] / "shared/data/cifar-10-mini-binary.tar.gz"
    archive = Path(os.environ.get("CIFAR10_MINI_ARCHIVE", default))
    if not archive.is_file():
        sys.exit(f"error: no mini archive at {archive}; set CIFAR10_MINI_ARCHIVE to its path")
    return cifar10_input.maybe_download_and_extract(tempfile.mkdtemp(prefix="bench-"), str(archive))


def classic_cnn():
    """The classic Keras CIFAR-10 example: conv32-conv32-pool-conv64-conv64-pool-dense512, with
    dropout."""
    import keras
    from keras import layers

    return keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            layers.Conv2D(32, 3, padding="same", activation="relu"),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Dropout(0.25),
            layers.Conv2D(64, 3, padding="same", activation="relu"),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Dropout(0.25),
            layers.Flatten(),
            layers.Dense(512, activation="relu"),
            layers.Dropout(0.5),
            layers.Dense(10),
        ],
        name="classic_cnn",
    )


def machine_summary() -> str:
    """One line: CPU model, cores, GPU if any, Python, TensorFlow and Keras versions."""
    import keras
    import tensorflow as tf

    cpu = platform.processor() or platform.machine()
    try:
        info = open("/proc/cpuinfo").read()
        fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        flags = fields.get("flags", "").split()
        widest = next(
            (
                name
                for flag, name in (
                    ("avx512_bf16", "AVX-512 with BF16"),
                    ("avx512f", "AVX-512"),
                    ("avx2", "AVX2"),
                )
                if flag in flags
            ),
            "no AVX2",
        )
        family = f"family {fields['cpu family']}, model {fields['model']}"
        cpu = f"{fields['model name']} ({family}, {widest}, {float(fields['cpu MHz']):.0f} MHz)"
    except (OSError, KeyError, ValueError):
        pass
    with tensorflow_start_up():
        devices = tf.config.list_physical_devices("GPU")
    gpus = [
        tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in devices
    ]
    return (
        f"{cpu}, {os.cpu_count()} cores, GPU: {', '.join(gpus) or 'none'}; "
        f"Python {platform.python_version()}, "
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}"
    )


def interleaved(variants: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Runs each variant once per round, in turn; each call returns its own rate (units/s)."""
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for round_index in range(rounds):
        for name, run in variants.items():
            rates[name].append(run())
        print(
            f"  round {round_index + 1}/{rounds}: "
            + ", ".join(f"{n} {r[-1]:,.0f}" for n, r in rates.items()),
            file=sys.stderr,
        )
    return rates


def ratio_table(rates: dict[str, list[float]], reference: str, unit: str) -> str:
    """Markdown table: median rate of each variant and the median of its per-round ratios."""
    lines = [
        f"| variant | median {unit} | ratio vs {reference} (median of per-round ratios) |",
        "|---|---:|---:|",
    ]
    for name, values in rates.items():
        ratios = [v / r for v, r in zip(values, rates[reference])]
        lines.append(
            f"| {name} | {statistics.median(values):,.0f} | {statistics.median(ratios):.2f}x |"
        )
    return "\n".join(lines)


def mean_std(values: list[float], scale: float = 1.0, digits: int = 1) -> str:
    """'mean +- std' of the values (times `scale`), the std over runs (0 for a single run)."""
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{scale * statistics.mean(values):.{digits}f} +- {scale * std:.{digits}f}"


def timed(run: Callable[[], int]) -> float:
    """Calls `run` (which returns how many items it processed) and returns items per second."""
    start = time.perf_counter()
    count = run()
    return count / (time.perf_counter() - start)
