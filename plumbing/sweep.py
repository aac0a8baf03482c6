"""Sweeps: `python train.py [flags] --sweep KEY=V1,V2 [--sweep KEY2=...]` trains the grid of every
combination, one run after another, each a normal run folder inside a sweep folder, named by its values:

    runs/sweep-mlp-lr/lr=0.0001/ ...    runs/sweep-mlp-lr/sweep.json    runs/sweep-mlp-lr/comparison.png

The sweep folder's name comes from the command (preset and keys; or --name), so the same command run
again continues the sweep: finished runs are skipped, an interrupted one is resumed. Values are parsed
by the flag's own type and checked, for every point of the grid, before anything runs. A value with
several numbers (--hidden-units, --widths) is written with ':' between them: hidden-units=512,512:256.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from plumbing import files, runs
from plumbing.errors import UsageError


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
        if key in ("resume", "eval_only", "name", "run_dir", "list_presets", "sweep"):
            raise UsageError(f"--sweep {key}: that option cannot vary in a sweep")
        if key in ("device", "deterministic"):  # TensorFlow sets them once per process
            raise UsageError(f"--sweep {key}: that option cannot vary in a sweep; give it as --{key} "
                             f"(or run one sweep per value)")
        sweeps[key] = [_value(key, value.replace(":", ","), parse_flags) for value in values.split(",")]
    return sweeps


def _value(key: str, text: str, parse_flags):
    """One value, parsed by the flag itself (its type and choices); booleans as true/false."""
    flag = "--" + key.replace("_", "-")
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
    """The run folder of a grid point: lr=0.001_dropout=0.2 (several numbers joined by x: 512x256)."""
    def show(value):
        return "x".join(map(str, value)) if isinstance(value, tuple) else str(value).lower() \
            if isinstance(value, bool) else str(value)
    return "_".join(f"{key.replace('_', '-')}={show(value)}" for key, value in point.items())


def folder(run_root: str, name: str | None, preset: str, sweeps: dict[str, list]) -> Path:
    return Path(run_root) / (name or f"sweep-{preset}-{'-'.join(k.replace('_', '-') for k in sweeps)}")


def claim(sweep_dir: Path, command: dict) -> None:
    """Makes `sweep_dir` this sweep's folder (sweep.json holds its flags), or checks that it is."""
    record = sweep_dir / "sweep.json"
    others = sweep_dir.exists() and any(not f.name.startswith(".") for f in sweep_dir.iterdir())
    if others and not record.is_file():  # hidden files: another job's locks and temporaries
        raise UsageError(f"{sweep_dir} exists and is not a sweep folder; choose another --name")
    if record.is_file():
        try:
            saved = json.loads(record.read_text())
        except ValueError:
            saved = None
        if saved != json.loads(json.dumps(command, default=str)):
            raise UsageError(f"{sweep_dir} holds a sweep with other options; run that sweep's own command to "
                             f"continue it, or pass --name for a new sweep")
        return
    sweep_dir.mkdir(parents=True, exist_ok=True)
    files.write_json(record, command)


def run(plan: dict, train_one, compare) -> int:
    """Trains each point of the plan not yet finished (train_one(config, resume) -> exit code) and compares
    the runs at the end (compare(argv)); stops at a run that does not end with 0 and says how to continue.

    The same command started in several terminals shares the work: each job takes the next point no other
    job holds (a lock per point), and the job that finishes last draws the comparison."""
    sweep_dir, grid = plan["folder"], plan["grid"]
    claim(sweep_dir, plan["command"])
    for number, (point, config) in enumerate(grid, start=1):
        run_dir = sweep_dir / point_name(point)
        print(f"\n=== sweep {sweep_dir.name}: run {number}/{len(grid)}: {point_name(point)}", flush=True)
        try:
            with files.locked(sweep_dir / f".{point_name(point)}.lock", wait=False):
                if runs.finished(run_dir):
                    print(f"{run_dir} is finished: {runs.summary(run_dir)}")
                    continue
                resume = run_dir if (run_dir / "config.json").is_file() else None
                code = train_one({**config, "run_dir": str(sweep_dir), "name": point_name(point)}, resume)
        except files.BusyError:
            print(f"{run_dir} is being trained by another job: on to the next run")
            continue
        if code != 0:
            print(f"the sweep stopped at {run_dir}; run the same command again to continue it")
            return code
    busy = [p for p, _ in grid if not runs.finished(sweep_dir / point_name(p))]
    if busy:
        print(f"\n{len(busy)} run(s) of {sweep_dir} were taken by another job; the last job to finish draws "
              f"the comparison (if that job stopped, run the same command again to continue)")
        return 0
    return compare([str(sweep_dir), "--out", str(sweep_dir / "comparison.png")])
