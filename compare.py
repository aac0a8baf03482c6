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
import statistics
import sys
from pathlib import Path

import plots
from plumbing import files, runs, signals
from plumbing.errors import OneLineParser, UsageError, report
from plumbing.quiet import tensorflow_start_up

METRICS = ("val_accuracy", "val_loss", "train_accuracy", "train_loss", "learning_rate", "weight_penalty")
IGNORED = {"name", "run_dir", "data_dir", "data_url", "data_folder"}  # where, not what: never "differs"


def load_runs(paths: list[str]) -> list[dict]:
    """Every run named, as {name, folder, options, rows, results}; a sweep folder gives all its runs."""
    found = []
    for path in map(Path, paths):
        own = path / "config.json"
        by_start = sorted(path.glob("*/config.json"), key=lambda config: config.stat().st_mtime)
        configs = [own] if own.is_file() else by_start
        folders = [config.parent for config in configs]  # a sweep's runs in the order they began
        if not folders:
            raise UsageError(f"{path} is not a run folder (no config.json) nor a folder of runs; "
                             f"pass runs/NAME or a sweep's folder")
        for folder in folders:
            rows, results = folder / "metrics.csv", folder / "metrics.json"
            found.append(dict(name=folder.name, folder=folder, options=runs.read_config(folder),
                              rows=runs.read_metrics_csv(rows) if rows.exists() else [],
                              results=json.loads(results.read_text()) if results.exists() else {}))
    return found


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
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # slow to import
    from tensorboard.util.tensor_util import make_ndarray

    with tensorflow_start_up():  # reading loads TensorFlow, which is noisy at first
        events = EventAccumulator(str(folder / "tb" / "train"), size_guidance={"tensors": 0}).Reload()
    if "step/loss" not in events.Tags().get("tensors", []):
        return [], []
    losses = {event.step: float(make_ndarray(event.tensor_proto)) for event in events.Tensors("step/loss")}
    points = sorted(losses.items())
    return [step for step, _ in points], [loss for _, loss in points]


def table(all_runs: list[dict], keys: list[str]) -> list[dict]:
    """One row per run, or per setting (mean +- std over seeds) when runs differ only in their seed."""
    settings = {}
    for run in all_runs:
        settings.setdefault(label(run, [k for k in keys if k != "seed"]), []).append(run)
    grouped = "seed" in keys and any(len(group) > 1 for group in settings.values())
    rows = []
    for setting, group in (settings.items() if grouped else ((label(run, keys), [run]) for run in all_runs)):
        results = [run["results"] for run in group]
        rows.append({"options": setting, "runs": f"{len(group)} seeds" if grouped else group[0]["name"],
                     "best val accuracy (%)": stat([r.get("best_val_accuracy") for r in results], 100),
                     "best epoch": stat([r.get("best_epoch") for r in results], digits=0),
                     "test accuracy (%)": stat([r.get("test_accuracy") for r in results], 100),
                     "epochs": stat([len(run["rows"]) for run in group], digits=0),
                     "training seconds": stat([r.get("train_seconds") for r in results], digits=0),
                     "parameters": stat([r.get("parameters") for r in results], digits=0)})
    return rows


def stat(values: list, scale: float = 1.0, digits: int = 1) -> str:
    """A table cell: the value, or mean +- std over several runs; "unfinished" when there is none."""
    values = [scale * v for v in values if v is not None]
    if not values:
        return "unfinished"
    if len(set(values)) == 1:
        return f"{values[0]:,.{digits}f}"
    return f"{statistics.mean(values):,.{digits}f} +- {statistics.stdev(values):,.{digits}f}"


def write_tables(rows: list[dict], out: Path) -> None:
    columns = list(rows[0])
    csv_lines = [",".join(columns)] + [",".join(f'"{row[c]}"' if "," in str(row[c]) else str(row[c])
                                                for c in columns) for row in rows]
    files.write_text(out.with_suffix(".csv"), "\n".join(csv_lines) + "\n")
    markdown = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    markdown += ["| " + " | ".join(str(row[c]) for c in columns) + " |" for row in rows]
    files.write_text(out.with_suffix(".md"), "\n".join(markdown) + "\n")


def draw(all_runs: list[dict], keys: list[str], metric: str, out: Path) -> None:
    sizes = "num_train_examples" in keys
    fig, axes = plots.plt.subplots(1, 3 if sizes else 2, figsize=(16 if sizes else 11, 4.5))
    for colour, run in enumerate(all_runs):
        name, style = label(run, keys), dict(color=f"C{colour % 10}")
        values = [(row["epoch"], row.get(metric)) for row in run["rows"] if row.get(metric) is not None]
        scale = 100 if metric.endswith("accuracy") else 1
        axes[0].plot([e for e, _ in values], [scale * v for _, v in values], marker="o", label=name, **style)
        steps, losses = step_losses(run["folder"])
        axes[1].plot(steps, losses, alpha=0.8, **style)
    name = metric.replace("_", " ")
    axes[0].set(xlabel="epoch", ylabel=name + (" (%)" if metric.endswith("accuracy") else ""),
                title=f"{name} per epoch")
    axes[0].xaxis.get_major_locator().set_params(integer=True)
    axes[1].set(xlabel="step", ylabel="training loss", title="training loss per step")
    if sizes:  # accuracy against the amount of data
        sized = [(run["results"].get("train_examples") or run["options"]["num_train_examples"],
                  run["results"]) for run in all_runs if run["results"]]
        done = sorted((pair for pair in sized if pair[0]), key=lambda pair: pair[0])
        for key, marker in (("best_val_accuracy", "o"), ("test_accuracy", "s")):
            by_size = {}  # the line goes through the mean over seeds; the dots are the runs
            for n, results in done:
                by_size.setdefault(n, []).append(100 * results[key])
            line, = axes[2].plot(list(by_size), [statistics.mean(v) for v in by_size.values()], marker=marker,
                                 label=key.replace("_", " "))
            axes[2].scatter([n for n, _ in done], [100 * r[key] for _, r in done], s=12, alpha=0.5,
                            color=line.get_color())
        axes[2].set(xscale="log", xlabel="training examples", ylabel="accuracy (%)", title="more data")
        axes[2].set_xticks(list(by_size), [f"{n:,}" for n in by_size])
        axes[2].minorticks_off()
        axes[2].legend(fontsize=8)
    axes[0].legend(fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    plots.save(fig, out)


def main(argv: list[str] | None = None) -> int:
    return report(run_command, argv)


def run_command(argv: list[str] | None) -> int:
    parser = OneLineParser(prog="compare.py", description="Compare runs: one picture and one table.")
    parser.add_argument("runs", nargs="+", metavar="RUN_OR_SWEEP", help="run folders, or folders of runs")
    parser.add_argument("--metric", choices=METRICS, default="val_accuracy", help="(default: val_accuracy)")
    parser.add_argument("--out", type=Path, default=Path("comparison.png"),
                        help="the picture; the tables get .csv and .md beside it (default: comparison.png)")
    args = parser.parse_args(argv)
    all_runs = load_runs(args.runs)
    keys = differing(all_runs)
    draw(all_runs, keys, args.metric, args.out)
    rows = table(all_runs, keys)
    write_tables(rows, args.out)
    print(open(args.out.with_suffix(".md")).read(), end="")
    print(f"compared {len(all_runs)} runs: {args.out} and its tables {args.out.with_suffix('.csv')}, "
          f"{args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    with signals.handled():
        sys.exit(main())
