"""Compare runs in one picture and one table: `python compare.py RUN_OR_SWEEP ... [--metric M]`.

Each argument is a run folder (runs/NAME) or a folder of runs (a sweep). The picture shows the
chosen metric per epoch (left) and the training loss as training goes (right, from each run's
steps.csv), both against the epoch, one colour per run, with one legend below the panels naming
what differs: the options, or for runs of several presets the preset and what differs among its
runs. When the runs differ only in the number of training examples (and the seed), a third panel
draws accuracy against it on a log axis (the "more data" curve). The table (CSV and Markdown) has
a row per run, or per setting with mean +- std when runs differ only in their seed: the differing
options, best validation accuracy and its epoch, test accuracy, epochs, training seconds and
parameters. A sweep (train.py --sweep) ends by writing these into its folder.
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
import sys
from pathlib import Path

import plots
from plumbing import entry, files, runs, steplog, sweep
from plumbing.errors import DataError, OneLineParser, UsageError

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
    """Every run named, as {name, folder, options, rows, results, diverged}; a sweep folder gives
    all its runs. A run that cannot be read (a damaged file) is left out with a one-line note; the
    others are compared. A run not finished yet (only config.json, say: a sweep stopped early) has
    no results."""
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
    """One run's options, metrics.csv rows and metrics.json results (DataError: a damaged file)."""
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
    """The results in metrics.json ({} before the run finished). Raises DataError if the file is
    damaged: not JSON, or not the numbers train.py writes."""
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


def option(run: dict, key: str):
    """A run's value of an option; for num_train_examples None ("all"), the count it trained on."""
    value = run["options"].get(key)
    if key == "num_train_examples" and value is None:
        return run["results"].get("train_examples") or "all"
    return value


def differing(all_runs: list[dict]) -> list[str]:
    """The options whose values are not the same in every run (the seed last)."""
    keys = {key for run in all_runs for key in run["options"]} - IGNORED
    keys = sorted(keys, key=lambda key: (key == "seed", key))
    return [key for key in keys if len({repr(option(run, key)) for run in all_runs}) > 1]


def show(value) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


def label(run: dict, keys: list[str]) -> str:
    """key=value for each of `keys` (the run's folder name if there are none)."""
    text = ", ".join(f"{key.replace('_', '-')}={show(option(run, key))}" for key in keys)
    return text or run["name"]


def short_labels(all_runs: list[dict], keys: list[str]) -> list[str]:
    """A legend entry per run. Runs of several presets (a linear model beside an MLP sweep) differ
    in every option the preset sets: their entry is the preset, then what differs among its runs;
    a preset's only run is named by its folder (linear-1122-101500, or the --name given)."""
    presets = [run["options"].get("preset") or run["options"].get("model") for run in all_runs]
    if len(set(presets)) == 1:
        return [label(run, keys) for run in all_runs]
    labels = []
    for run, preset in zip(all_runs, presets):
        same = [other for other, p in zip(all_runs, presets) if p == preset]
        if len(same) == 1:
            labels.append(run["name"])
        else:
            labels.append(f"{preset}, {label(run, differing(same))}")
    return labels


def step_losses(folder: Path) -> tuple[list[float], list[float]]:
    """The training loss as training went, from the run's steps.csv: (epochs, losses) or nothing."""
    rows = steplog.read_steps(folder / "steps.csv")
    return [row["epoch"] for row in rows], [row["loss"] for row in rows]


def table(all_runs: list[dict], keys: list[str]) -> list[dict]:
    """A row per run, or per setting (mean +- std over seeds) when runs differ only in the seed."""
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
    """A table cell: the value, or mean +- std over several runs; "diverged" or "unfinished" when
    there is none; "(1 diverged)" after it when some runs diverged."""
    values = [scale * v for v in values if v is not None]
    if not values:
        return "diverged" if diverged else "unfinished"
    if len(set(values)) == 1:
        text = f"{values[0]:,.{digits}f}"
    else:
        text = f"{statistics.mean(values):,.{digits}f} +- {statistics.stdev(values):,.{digits}f}"
    return f"{text} ({diverged} diverged)" if diverged else text


def write_tables(rows: list[dict], out: Path) -> None:
    """The table as CSV (the csv module quotes cells with commas) and as Markdown."""
    columns = list(rows[0])
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    files.write_text(out.with_suffix(".csv"), text.getvalue())
    markdown = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    markdown += ["| " + " | ".join(str(row[c]) for c in columns) + " |" for row in rows]
    files.write_text(out.with_suffix(".md"), "\n".join(markdown) + "\n")


def draw(all_runs: list[dict], keys: list[str], metric: str, out: Path) -> None:
    """The picture: the metric per epoch, the training loss as training goes, and (when the runs
    differ only in the amount of data, and the seed) accuracy against the number of examples."""
    sizes = set(keys) - {"seed"} == {"num_train_examples"}
    fig, axes = plots.plt.subplots(1, 3 if sizes else 2, figsize=(16 if sizes else 11, 4.5))
    names = short_labels(all_runs, keys)
    for colour, (run, name) in enumerate(zip(all_runs, names)):
        style = dict(
            color=f"C{colour % 10}", label=name + (" (diverged)" if run["diverged"] else "")
        )
        metric_curve(axes[0], run, metric, style)
        epochs, losses = step_losses(run["folder"])
        axes[1].plot(epochs, losses, alpha=0.8, **style)
    title = metric.replace("_", " ")
    unit = " (%)" if metric.endswith("accuracy") else ""
    axes[0].set(xlabel="epoch", ylabel=title + unit, title=f"{title} per epoch")
    axes[1].set(xlabel="epoch", ylabel="training loss", title="training loss as training goes")
    if sizes:
        size_panel(axes[2], all_runs)
    for ax in axes[:2]:
        plots.whole_epochs(ax)
    for ax in axes:
        ax.grid(alpha=0.3)
    handles, texts = axes[0].get_legend_handles_labels()
    columns = min(len(texts), 3)
    fig.legend(handles, texts, loc="lower center", ncol=columns, fontsize=9, frameon=False)
    rows = -(-len(texts) // columns) if texts else 0
    fig.tight_layout(rect=(0, min(0.06 * rows + 0.02, 0.5), 1, 1))  # room for the legend below
    plots.save(fig, out)


def metric_curve(ax, run: dict, metric: str, style: dict) -> None:
    """One run's metric per epoch (accuracies in %)."""
    values = [(row["epoch"], row.get(metric)) for row in run["rows"] if row.get(metric) is not None]
    scale = 100 if metric.endswith("accuracy") else 1
    ax.plot([e for e, _ in values], [scale * v for _, v in values], marker="o", **style)


def size_panel(ax, all_runs: list[dict]) -> None:
    """Best validation and test accuracy against the number of training examples (log axis): a line
    through the mean over seeds, a dot per run."""
    done = [
        (run["results"]["train_examples"], run["results"])
        for run in all_runs
        if run["results"].get("train_examples")
    ]
    done.sort(key=lambda pair: pair[0])  # by size only: two seeds of one size must not compare
    sizes = []
    for key, marker in (("best_val_accuracy", "o"), ("test_accuracy", "s")):
        points = [
            (n, 100 * r[key]) for n, r in done if r.get(key) is not None
        ]  # none: --val-size 0
        by_size = {}
        for n, value in points:
            by_size.setdefault(n, []).append(value)
        means = [statistics.mean(values) for values in by_size.values()]
        (line,) = ax.plot(list(by_size), means, marker=marker, label=key.replace("_", " "))
        if points:
            ax.scatter(*zip(*points), s=12, alpha=0.5, color=line.get_color())
        sizes = sorted(set(sizes) | set(by_size))
    ax.set(xscale="log", xlabel="training examples", ylabel="accuracy (%)", title="more data")
    ax.set_xticks(sizes, [f"{n:,}" for n in sizes])
    ax.minorticks_off()
    ax.legend(fontsize=8)


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
