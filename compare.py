"""Compare runs in one picture and one table: `python compare.py RUN_OR_SWEEP ... [--metric val_accuracy]`.

Each argument is a run folder (runs/NAME) or a folder of runs (a sweep). The picture shows the chosen
metric per epoch (left) and the training loss per step (right, from the TensorBoard logs), one colour per
run, with a legend that names only the options that differ. When the runs differ in the number of
training examples, a third panel draws accuracy against it on a log axis (the "more data" curve).
The table (CSV and Markdown) has a row per run, or per setting with mean +- std when runs differ only
in their seed: the differing options, best validation accuracy and its epoch, test accuracy, epochs,
training seconds and parameters. A sweep (train.py --sweep) ends by writing these into its folder.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from pathlib import Path

import plots
from plumbing import entry, files, runs, sweep
from plumbing.errors import DataError, OneLineParser, UsageError
from plumbing.quiet import tensorflow_start_up

METRICS = (
    "val_accuracy",
    "val_loss",
    "train_accuracy",
    "train_loss",
    "learning_rate",
    "weight_penalty",
)
IGNORED = {
    "name",
    "run_dir",
    "data_dir",
    "data_url",
    "data_folder",
}  # where, not what: never "differs"
NUMBERS = (
    "test_accuracy",
    "best_val_accuracy",
    "best_epoch",
    "train_seconds",
    "parameters",
    "train_examples",
)  # the results read from metrics.json: numbers, or absent


def load_runs(paths: list[str]) -> list[dict]:
    """Every run named, as {name, folder, options, rows, results, diverged}; a sweep folder gives all its
    runs. A run that cannot be read (a damaged file) is left out with a one-line note; the others are
    compared. A run not finished yet (only config.json, say: a sweep stopped early) has no results."""
    found, problems = [], []
    for path in map(Path, paths):
        own = path / "config.json"
        configs = [own] if own.is_file() else sorted(path.glob("*/config.json"), key=started)
        folders = [config.parent for config in configs]  # a sweep's runs in the order they began
        if not folders:
            raise UsageError(
                f"{path} is not a run folder (no config.json) nor a folder of runs; "
                f"pass runs/NAME or a sweep's folder"
            )
        for folder in folders:
            try:
                found.append(load_run(folder))
            except (DataError, UsageError) as err:
                problems.append(err)
                print(f"note: {folder} is left out: {err}", file=sys.stderr)
    if not found:
        raise DataError(f"no run could be read ({problems[-1]})")
    return found


def started(config: Path) -> float:
    """When a run began (its config.json's time); 0 for one that vanished meanwhile."""
    try:
        return config.stat().st_mtime
    except OSError:
        return 0.0


def load_run(folder: Path) -> dict:
    """One run's options, metrics.csv rows and metrics.json results; DataError if a file is damaged."""
    rows = folder / "metrics.csv"
    return dict(
        name=folder.name,
        folder=folder,
        options=runs.read_config(folder),
        rows=runs.read_metrics_csv(rows) if rows.exists() else [],
        results=read_results(folder / "metrics.json"),
        diverged=sweep.diverged(folder),
    )


def read_results(path: Path) -> dict:
    """The results in metrics.json ({} before the run finished). Raises DataError if the file is damaged:
    not JSON, or not the numbers train.py writes."""
    if not path.exists():
        return {}
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"{path} is damaged ({type(err).__name__}: {err})") from None
    if not isinstance(results, dict) or not all(number(results.get(key)) for key in NUMBERS):
        raise DataError(f"{path} is damaged (not the results train.py writes)")
    return results


def number(value) -> bool:
    """A finite number, or None (a value the run has not written, or has none of)."""
    return value is None or (
        isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    )


def differing(all_runs: list[dict]) -> list[str]:
    """The options whose values are not the same in every run (the seed last)."""
    keys = {key for run in all_runs for key in run["options"]} - IGNORED
    keys = sorted(keys, key=lambda key: (key == "seed", key))
    return [key for key in keys if len({repr(run["options"].get(key)) for run in all_runs}) > 1]


def label(run: dict, keys: list[str]) -> str:
    def show(value):
        return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)

    text = ", ".join(f"{key.replace('_', '-')}={show(run['options'].get(key))}" for key in keys)
    return text or run["name"]


def step_losses(folder: Path) -> tuple[list[int], list[float]]:
    """The per-step training loss from a run's TensorBoard logs (tb/train), or nothing."""
    from tensorboard.backend.event_processing.event_accumulator import (
        EventAccumulator,
    )  # slow to import
    from tensorboard.util.tensor_util import make_ndarray

    if not (folder / "tb" / "train").is_dir():  # stopped before its first log
        return [], []
    with tensorflow_start_up():  # reading loads TensorFlow, which is noisy at first
        events = EventAccumulator(
            str(folder / "tb" / "train"), size_guidance={"tensors": 0}
        ).Reload()
    if "step/loss" not in events.Tags().get("tensors", []):
        return [], []
    losses = {
        event.step: float(make_ndarray(event.tensor_proto)) for event in events.Tensors("step/loss")
    }
    points = sorted(losses.items())
    return [step for step, _ in points], [loss for _, loss in points]


def table(all_runs: list[dict], keys: list[str]) -> list[dict]:
    """One row per run, or per setting (mean +- std over seeds) when runs differ only in their seed."""
    settings = {}
    for run in all_runs:
        settings.setdefault(label(run, [k for k in keys if k != "seed"]), []).append(run)
    grouped = "seed" in keys and any(len(group) > 1 for group in settings.values())
    rows = []
    for setting, group in (
        settings.items() if grouped else ((label(run, keys), [run]) for run in all_runs)
    ):
        results = [run["results"] for run in group]
        lost = sum(1 for run in group if run["diverged"])  # the accuracies say how many diverged
        rest = lost if lost == len(group) else 0  # the other cells say "diverged" only if all did
        rows.append(
            {
                "options": setting,
                "runs": f"{len(group)} seeds" if grouped else group[0]["name"],
                "best val accuracy (%)": stat(
                    [r.get("best_val_accuracy") for r in results], 100, diverged=lost
                ),
                "best epoch": stat([r.get("best_epoch") for r in results], digits=0, diverged=rest),
                "test accuracy (%)": stat(
                    [r.get("test_accuracy") for r in results], 100, diverged=lost
                ),
                "epochs": stat([len(run["rows"]) for run in group], digits=0),
                "training seconds": stat(
                    [r.get("train_seconds") for r in results], digits=0, diverged=rest
                ),
                "parameters": stat([r.get("parameters") for r in results], digits=0, diverged=rest),
            }
        )
    return rows


def stat(values: list, scale: float = 1.0, digits: int = 1, diverged: int = 0) -> str:
    """A table cell: the value, or mean +- std over several runs; "diverged" or "unfinished" when there is
    none; "(1 diverged)" after it when some runs diverged."""
    values = [scale * v for v in values if v is not None]
    if not values:
        return "diverged" if diverged else "unfinished"
    if len(set(values)) == 1:
        text = f"{values[0]:,.{digits}f}"
    else:
        text = f"{statistics.mean(values):,.{digits}f} +- {statistics.stdev(values):,.{digits}f}"
    return f"{text} ({diverged} diverged)" if diverged else text


def write_tables(rows: list[dict], out: Path) -> None:
    columns = list(rows[0])
    csv_lines = [",".join(columns)] + [
        ",".join(f'"{row[c]}"' if "," in str(row[c]) else str(row[c]) for c in columns)
        for row in rows
    ]
    files.write_text(out.with_suffix(".csv"), "\n".join(csv_lines) + "\n")
    markdown = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    markdown += ["| " + " | ".join(str(row[c]) for c in columns) + " |" for row in rows]
    files.write_text(out.with_suffix(".md"), "\n".join(markdown) + "\n")


def draw(all_runs: list[dict], keys: list[str], metric: str, out: Path) -> None:
    sizes = "num_train_examples" in keys
    fig, axes = plots.plt.subplots(1, 3 if sizes else 2, figsize=(16 if sizes else 11, 4.5))
    for colour, run in enumerate(all_runs):
        name, style = label(run, keys), dict(color=f"C{colour % 10}")
        name += " (diverged)" if run["diverged"] else ""
        values = [
            (row["epoch"], row.get(metric)) for row in run["rows"] if row.get(metric) is not None
        ]
        scale = 100 if metric.endswith("accuracy") else 1
        axes[0].plot(
            [e for e, _ in values], [scale * v for _, v in values], marker="o", label=name, **style
        )
        steps, losses = step_losses(run["folder"])
        axes[1].plot(steps, losses, alpha=0.8, **style)
    name = metric.replace("_", " ")
    axes[0].set(
        xlabel="epoch",
        ylabel=name + (" (%)" if metric.endswith("accuracy") else ""),
        title=f"{name} per epoch",
    )
    axes[0].xaxis.get_major_locator().set_params(integer=True)
    axes[1].set(xlabel="step", ylabel="training loss", title="training loss per step")
    if sizes:  # accuracy against the amount of data
        sized = [
            (
                run["results"].get("train_examples") or run["options"].get("num_train_examples"),
                run["results"],
            )
            for run in all_runs
            if run["results"]
        ]
        done = sorted((pair for pair in sized if pair[0]), key=lambda pair: pair[0])
        for key, marker in (("best_val_accuracy", "o"), ("test_accuracy", "s")):
            by_size = {}  # the line goes through the mean over seeds; the dots are the runs
            for n, results in done:
                if results.get(key) is not None:  # no best validation accuracy with --val-size 0
                    by_size.setdefault(n, []).append(100 * results[key])
            (line,) = axes[2].plot(
                list(by_size),
                [statistics.mean(v) for v in by_size.values()],
                marker=marker,
                label=key.replace("_", " "),
            )
            axes[2].scatter(
                [n for n, r in done if r.get(key) is not None],
                [100 * r[key] for _, r in done if r.get(key) is not None],
                s=12,
                alpha=0.5,
                color=line.get_color(),
            )
        axes[2].set(
            xscale="log", xlabel="training examples", ylabel="accuracy (%)", title="more data"
        )
        axes[2].set_xticks(list(by_size), [f"{n:,}" for n in by_size])
        axes[2].minorticks_off()
        axes[2].legend(fontsize=8)
    axes[0].legend(fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    plots.save(fig, out)


def main(argv: list[str] | None = None) -> int:
    return entry.main(run_command, argv)


def run_command(argv: list[str] | None) -> int:
    parser = OneLineParser(
        prog="compare.py", description="Compare runs: one picture and one table."
    )
    parser.add_argument(
        "runs", nargs="+", metavar="RUN_OR_SWEEP", help="run folders, or folders of runs"
    )
    parser.add_argument(
        "--metric", choices=METRICS, default="val_accuracy", help="(default: val_accuracy)"
    )
    parser.add_argument(
        "--out",
        type=files.picture_path,
        default=Path("comparison.png"),
        help="the picture; the tables get .csv and .md beside it (default: comparison.png)",
    )
    args = parser.parse_args(argv)
    all_runs = load_runs(args.runs)
    keys = differing(all_runs)
    draw(all_runs, keys, args.metric, args.out)
    rows = table(all_runs, keys)
    write_tables(rows, args.out)
    print(open(args.out.with_suffix(".md")).read(), end="")
    print(
        f"compared {len(all_runs)} runs: {args.out} and its tables {args.out.with_suffix('.csv')}, "
        f"{args.out.with_suffix('.md')}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
