"""Sweeps: `python train.py [flags] --sweep KEY=V1,V2 [--sweep KEY2=...]` trains the grid of every
combination, one run after another, each a normal run folder inside a sweep folder, named by its
values:

    runs/sweep-mlp-lr/lr=0.0001/ ...  runs/sweep-mlp-lr/sweep.json  runs/sweep-mlp-lr/comparison.png

The sweep folder's name comes from the command (preset and keys; or --name), so the same command run
again continues the sweep: finished runs are skipped, an interrupted one is resumed. A run whose
loss diverges (a learning rate far too high) is a result, not a failure: it is recorded as diverged
(diverged.json in its folder), the sweep goes on, and the comparison says "diverged". Values are
parsed by the flag's own type and checked, for every point of the grid, before anything runs (those
checks that need the data too). A value with several numbers (--hidden-units, --widths) is written
with ':' between them: hidden-units=512,512:256."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from plumbing import files, options, runs
from plumbing.errors import DataError, DivergedError, UsageError

FIXED = (
    "resume",
    "eval_only",
    "name",
    "run_dir",
    "list_presets",
    "sweep",
)  # what names the sweep itself
WHERE = ("data_dir", "data_url")  # where the data is: compare.py compares runs on the same data


def parse(texts: list[str], parse_flags) -> dict[str, list]:
    """{key: [values]} from the --sweep texts; parse_flags(argv) parses flags as train.py does."""
    sweeps = {}
    for text in texts:
        key, _, values = text.partition("=")
        key = key.strip().removeprefix("--").replace("-", "_")
        if not values or not key:
            raise UsageError(f"--sweep {text!r}: write KEY=V1,V2,..., e.g. --sweep lr=0.001,0.01")
        if key in sweeps:
            raise UsageError(f"--sweep {key} is given twice; list all its values in one --sweep")
        if key in FIXED:
            raise UsageError(f"--sweep {key}: that option cannot vary in a sweep")
        if key in WHERE:
            raise UsageError(
                f"--sweep {options.flag_name(key)[2:]}: where the data comes from cannot vary in a "
                f"sweep (its runs would not compare); run one sweep per data source, each with "
                f"its own --name"
            )
        if key in ("device", "deterministic"):  # TensorFlow sets them once per process
            raise UsageError(
                f"--sweep {key}: that option cannot vary in a sweep; give it as --{key} "
                f"(or run one sweep per value)"
            )
        sweeps[key] = [
            _value(key, value.replace(":", ","), parse_flags) for value in values.split(",")
        ]
    return sweeps


def _value(key: str, text: str, parse_flags):
    """One value, parsed by the flag itself (its type and choices); booleans as true/false."""
    flag = options.flag_name(key)
    if text.lower() in ("true", "false", "on", "off", "yes", "no"):
        argv = [flag if text.lower() in ("true", "on", "yes") else "--no-" + flag[2:]]
    else:
        argv = [flag, text]
    try:
        parsed = parse_flags(argv)
    except UsageError as err:
        raise UsageError(f"--sweep {key}={text}: {err}") from None
    if key not in parsed:
        raise UsageError(f"--sweep {key}: no such option (see python train.py --help)")
    return parsed[key]


def points(sweeps: dict[str, list]) -> list[dict]:
    """Every combination of the values, in the order given."""
    return [dict(zip(sweeps, values)) for values in itertools.product(*sweeps.values())]


def point_name(point: dict) -> str:
    """The run folder of a grid point: lr=0.001_dropout=0.2 (several numbers joined by x:
    512x256)."""

    def show(value):
        return str(value).lower() if isinstance(value, bool) else options.show(value, sep="x")

    return "_".join(f"{options.flag_name(key)[2:]}={show(value)}" for key, value in point.items())


def folder(run_root: str, name: str | None, preset: str, sweeps: dict[str, list]) -> Path:
    return Path(run_root) / (
        name or f"sweep-{preset}-{'-'.join(options.flag_name(key)[2:] for key in sweeps)}"
    )


def claim(sweep_dir: Path, command: dict, names: list[str]) -> None:
    """Makes `sweep_dir` this sweep's folder (sweep.json holds its flags), or checks that it is. A
    folder without sweep.json that holds only runs of this grid (and their comparison) is taken
    over."""
    record = sweep_dir / "sweep.json"
    if record.is_file():
        try:
            saved = json.loads(record.read_text())
            if not isinstance(saved, dict) or set(saved) != set(command):
                raise ValueError("not a sweep's record")
        except (OSError, ValueError):
            raise DataError(
                f"{record} is damaged (not the JSON train.py writes); if this folder is this "
                f"command's sweep, delete {record.name} and run the command again (it takes the "
                f"folder over, keeping its runs); else pass --name for a new sweep"
            ) from None
        if saved != json.loads(json.dumps(command, default=str)):
            raise UsageError(
                f"{sweep_dir} holds a sweep with other options; run that sweep's own command to "
                f"continue it, or pass --name for a new sweep"
            )
        return
    ours = {*names, "comparison.png", "comparison.csv", "comparison.md"}
    others = sweep_dir.exists() and any(
        not f.name.startswith(".") and f.name not in ours  # hidden: locks
        for f in sweep_dir.iterdir()
    )
    if others:
        raise UsageError(f"{sweep_dir} exists and is not a sweep folder; choose another --name")
    sweep_dir.mkdir(parents=True, exist_ok=True)
    files.write_json(record, command)


def diverged(run_dir: Path) -> dict | None:
    """What diverged.json records (loss, epoch, step, message) for a run that diverged, else
    None."""
    try:
        record = json.loads((Path(run_dir) / "diverged.json").read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def done(run_dir: Path) -> bool:
    """A point is done when its run finished or diverged: the sweep does not train it again."""
    return runs.finished(run_dir) or diverged(run_dir) is not None


def run(plan: dict, train_one, compare, check_data=None) -> int:
    """Trains each point of the plan not yet done (train_one(config, resume) -> exit code) and
    compares the runs at the end (compare(argv)); stops at a run that does not end with 0 and says
    how to continue. check_data(config), if given, checks every point still to train against its
    data before the first one trains.

    The same command started in several terminals shares the work: each job takes the next point no
    other job holds (a lock per point), and the job that finishes last draws the comparison."""
    sweep_dir, grid = plan["folder"], plan["grid"]
    names = [point_name(point) for point, _ in grid]
    if check_data:  # a finished sweep draws its comparison again without the data
        for (_, config), name in zip(grid, names):
            if not done(sweep_dir / name):
                check_data(config)
    claim(sweep_dir, plan["command"], names)
    for number, ((_, config), name) in enumerate(zip(grid, names), start=1):
        print(f"\n=== sweep {sweep_dir.name}: run {number}/{len(grid)}: {name}", flush=True)
        try:
            with files.locked(sweep_dir / f".{name}.lock", wait=False):
                code = _train_point(
                    sweep_dir / name, {**config, "run_dir": str(sweep_dir), "name": name}, train_one
                )
        except files.BusyError:
            print(f"{sweep_dir / name} is being trained by another job: on to the next run")
            continue
        if code != 0:
            print(
                f"the sweep stopped at {sweep_dir / name}; "
                f"run the same command again to continue it"
            )
            return code
    busy = [name for name in names if not done(sweep_dir / name)]
    if busy:
        print(
            f"\n{len(busy)} run(s) of {sweep_dir} were taken by another job; "
            f"the last job to finish draws the comparison "
            f"(if that job stopped, run the same command again to continue)"
        )
        return 0
    lost = [name for name in names if diverged(sweep_dir / name)]
    if lost:
        print(f'\n{len(lost)} run(s) diverged: {", ".join(lost)} ("diverged" in the comparison)')
    return compare([str(sweep_dir), "--out", str(sweep_dir / "comparison.png")])


def _train_point(run_dir: Path, config: dict, train_one) -> int:
    """One point, its lock held: skipped when done, resumed when started, else trained; a divergence
    is recorded in diverged.json (the run folder keeps its last good checkpoint) and counts as
    done."""
    if runs.finished(run_dir):
        print(f"{run_dir} is finished: {runs.summary(run_dir)}")
        return 0
    if diverged(run_dir):
        print(f"{run_dir} diverged: {diverged(run_dir).get('message')}")
        return 0
    try:
        return train_one(config, run_dir if (run_dir / "config.json").is_file() else None)
    except DivergedError as err:
        message = f"the loss became {err.loss:.4g} at epoch {err.epoch}, step {err.step}"
        files.write_json(
            run_dir / "diverged.json",
            dict(loss=f"{err.loss:.4g}", epoch=err.epoch, step=err.step, message=message),
        )
        print(
            f"{run_dir} diverged: {message}; recorded as diverged, on to the next run", flush=True
        )
        return 0
