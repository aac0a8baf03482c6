"""The run folder: where a training run keeps everything, and the rules that keep it consistent.

    runs/NAME/config.json      every option, the command, versions, device, git commit, data folder
    runs/NAME/checkpoints/     the training state: the one source of truth (plumbing/checkpoint.py)
    runs/NAME/metrics.csv      a row per finished epoch, rewritten from the checkpoint at each save
    runs/NAME/best.keras       the best epoch's model, also rewritten from the checkpoint
    runs/NAME/metrics.json     the final results; the plots and the confusion matrix
    runs/NAME/tb/              TensorBoard logs: tb/train, tb/val (and the run's hyper-parameters)
    runs/NAME/.lock            held by the job training it: a second job on the same run is refused

A folder is always in one of three states: being trained (locked), resumable (config.json; with or
without a checkpoint, since a run that died before its first one starts again from the beginning),
or finished (metrics.json). `python train.py --resume runs/NAME` handles the last two. A folder
holding only the lock and a half-written config.json never started: the same command starts it.
config.json records a checksum of the data, so that a run is never resumed on other data."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from plumbing import files
from plumbing.errors import DataError, Stopped, UsageError, disk_problem, resume_command

METRIC_COLUMNS = [
    "epoch",
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "learning_rate",
    "seconds",
    "images_per_second",
    "weight_penalty",
]


def create(run_root: str | os.PathLike, name: str | None, preset: str) -> Path:
    """Makes a new, empty run folder: runs/NAME, or runs/PRESET-MMDD-HHMMSS (-2, -3 ... when taken,
    as parallel jobs started in the same second find it)."""
    run_root = Path(run_root)
    if run_root.exists() and not run_root.is_dir():
        raise UsageError(f"--run-dir {run_root} is a file, not a folder; choose a folder")
    if run_root.is_symlink() and not run_root.exists():
        raise UsageError(
            f"--run-dir {run_root} is a link to {os.readlink(run_root)}, which does not exist; "
            f"create that folder, or choose another --run-dir"
        )
    try:
        run_root.mkdir(parents=True, exist_ok=True)
        if name:
            path = run_root / name
            if path.exists() and not never_started(path):
                raise UsageError(
                    f"{path} already exists; choose another --name, or continue it with: "
                    f"{resume_command(path)}"
                )
            path.mkdir(exist_ok=True)
            files.remove_stale_temporaries(
                path
            )  # a config.json half-written by a job that was killed
            return path
        stamp = f"{preset}-{time.strftime('%m%d-%H%M%S')}"
        for attempt in range(1, 1000):
            path = run_root / (stamp if attempt == 1 else f"{stamp}-{attempt}")
            try:
                path.mkdir()  # atomic: of two jobs, exactly one creates it
                return path
            except FileExistsError:
                continue
    except PermissionError:
        raise UsageError(
            f"--run-dir {run_root} is not writable; choose a folder you can write to"
        ) from None
    raise UsageError(f"could not find a free run name {stamp}-N in {run_root}; pass --name")


@contextlib.contextmanager
def lock(run_dir: Path):
    """Holds the run's lock, or raises UsageError if another job holds it."""
    try:
        with files.locked(Path(run_dir) / ".lock", wait=False):
            yield
    except files.BusyError:
        raise UsageError(
            f"{run_dir} is being trained by another job right now; wait for it to finish "
            f"(or stop it), then --resume"
        ) from None


def never_started(run_dir: Path) -> bool:
    """A folder a job created but left before its config.json was complete (killed at once, or while
    writing it): free to reuse. It holds nothing but the lock and a temporary
    config.json.tmp-PID."""
    run_dir = Path(run_dir)
    return (
        run_dir.is_dir()
        and not (run_dir / "config.json").exists()
        and all(
            p.name == ".lock" or (p.name.startswith("config.") and files.TEMPORARY.search(p.name))
            for p in run_dir.iterdir()
        )
    )


def read_config(run_dir: Path, defaults: dict | None = None) -> dict:
    """The options of the run in `run_dir`, for --resume and --eval-only; a UsageError says the way
    out.

    With `defaults` (train.DEFAULTS), every option a run has must be there with a value of its type:
    a config.json from an older version, or edited by hand, gives one line instead of a
    traceback."""
    path = Path(run_dir) / "config.json"
    if not Path(run_dir).is_dir():
        what = "a file, not a folder" if Path(run_dir).exists() else "no such folder"
        raise UsageError(
            f"{run_dir} is not a run folder ({what}); pass the run's folder, runs/NAME"
        )
    try:
        saved = json.loads(path.read_text())
        options = saved["options"]
        options.items()  # a dict, not a list or a number
    except FileNotFoundError:
        if never_started(run_dir):
            raise UsageError(
                f"{run_dir} holds no run (it was stopped before it started); start it again "
                f"with the same command and --name {Path(run_dir).name}"
            ) from None
        raise UsageError(
            f"{run_dir} has no config.json: it is not a run folder; check the path"
        ) from None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise DataError(
            f"{path} is damaged (not the JSON train.py writes); the run can be neither "
            f"resumed nor evaluated: start a new one (another --name); delete {run_dir} if you "
            f"do not need it"
        ) from None
    options = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
    if defaults is not None:
        check_saved_options(path, options, defaults)
    if not isinstance(saved.get("data_folder"), (str, type(None))):
        raise DataError(
            f"{path}: data_folder is {saved['data_folder']!r}, not a folder name; {REDO}"
        )
    return {**options, "data_folder": saved.get("data_folder")}


KINDS = {
    int: "a whole number",
    float: "a number",
    bool: "true or false",
    str: "a text",
    tuple: "a list of whole numbers",
}  # what a saved option must be, by the type of its default
REDO = (
    "this run cannot be resumed or evaluated by this version of train.py: "
    "start a new one (another --name)"
)


def check_saved_options(path: Path, saved: dict, defaults: dict) -> None:
    """Raises DataError unless `saved` has every option of a run of its model, each of the right
    type (that of its default) and, where the flag has choices, one of them."""
    from plumbing import options  # here, not at the top: options imports this module's neighbours

    try:
        reference = options.resolve(
            {k: saved[k] for k in ("model", "preset", "dataset") if k in saved}, defaults
        )
    except (UsageError, KeyError, TypeError):
        raise DataError(
            f"{path}: its model, preset or dataset is not one this version knows; {REDO}"
        ) from None
    model = options.model_options(reference["model"])  # may be left out: the builder's defaults
    for key, default in [*reference.items(), *((k, v) for k, v in model.items() if k in saved)]:
        kind = options.kind_of(key, defaults) if key in defaults else type(default)
        if key not in saved:
            raise DataError(f"{path} has no option {key!r} (written by an older version?); {REDO}")
        value, shown = saved[key], json.dumps(saved[key])
        if not (value is None and default is None or _of_kind(value, kind)):
            raise DataError(f"{path}: option {key!r} is {shown}, not {KINDS[kind]}; {REDO}")
        choices = options.choices_of(key, defaults)
        if choices and value not in choices:
            raise DataError(f"{path}: option {key!r} is {shown}, not one of {choices}; {REDO}")
    try:
        options.check({**reference, **saved}, {}, defaults)
    except UsageError as err:
        raise DataError(f"{path}: a saved value is wrong ({err}); {REDO}") from None


def _of_kind(value, kind: type) -> bool:
    """Whether a value read from JSON can stand for an option of type `kind` (an int for a float
    too)."""
    if kind is tuple:
        return isinstance(value, tuple) and all(type(v) is int for v in value)
    if kind is float:
        return type(value) in (int, float)
    return type(value) is kind


def data_fingerprint(folder: Path) -> str:
    """A SHA-256 of the dataset's files in `folder` (the CIFAR-10 batches *.bin, the IDX *.gz
    files): --resume checks that a run goes on with the data it started with, wherever that data now
    lives."""
    digest = hashlib.sha256()
    for path in sorted(Path(folder).iterdir()):
        if path.suffix in (".bin", ".gz") and path.is_file() and not path.name.startswith("."):
            digest.update(f"{path.name}\n".encode())
            with open(path, "rb") as f:
                digest.update(hashlib.file_digest(f, "sha256").digest())
    return digest.hexdigest()


def check_same_data(run_dir: Path, data_folder: Path) -> None:
    """Raises UsageError if `data_folder` holds other data than the run was started with."""
    saved = json.loads((Path(run_dir) / "config.json").read_text())
    recorded, folder = saved.get("data_fingerprint"), Path(data_folder).resolve()
    if recorded == data_fingerprint(folder) or (
        recorded is None and str(folder) == saved.get("data_folder")
    ):
        return
    was = saved.get("data_folder")
    raise UsageError(
        f"{folder} holds other data than {run_dir} was trained on ({was}"
        f"{'' if recorded else ', whose config.json records no checksum to compare'}); "
        f"resume it on its own data (drop --data-dir/--data-url), or start a new run"
    )


def write_config(
    run_dir: Path, config: dict, machine_used: dict, *, data_folder: Path, versions: dict
) -> None:
    """config.json: the options, the command, versions, the device and its compute policy
    (`machine_used`, e.g. {"device": "CPU", "compute": "mixed_bfloat16"}), git commit, the resolved
    data folder."""
    files.write_json(
        run_dir / "config.json",
        dict(
            options={k: v for k, v in config.items() if k != "data_folder"},
            command=" ".join(map(shlex.quote, ["python", *sys.argv])),
            git_commit=git_commit(),
            versions=versions,
            machine=dict(platform=platform.platform(), cpu_count=os.cpu_count(), **machine_used),
            data_folder=str(Path(data_folder).resolve()),
            data_fingerprint=data_fingerprint(data_folder),
            started=time.strftime("%Y-%m-%d %H:%M:%S"),
        ),
    )


def git_commit() -> str | None:
    try:
        return (
            subprocess.run(
                ["git", "rev-parse", "HEAD"],
                capture_output=True,
                text=True,
                timeout=5,
                cwd=Path(__file__).parent,
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        return None


def write_metrics_csv(run_dir: Path, rows: list[dict]) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, METRIC_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    files.write_text(run_dir / "metrics.csv", text.getvalue())


def read_metrics_csv(path: Path) -> list[dict]:
    """The rows of a metrics.csv (numbers as floats, epoch as int). Raises DataError if it is
    damaged."""
    try:
        with open(path, newline="") as f:
            return [
                {
                    k: (float(v) if v not in ("", None) else None) if k != "epoch" else int(v)
                    for k, v in row.items()
                }
                for row in csv.DictReader(f)
            ]
    except (ValueError, TypeError, csv.Error) as err:
        raise DataError(f"{path} is damaged ({err})") from None


@contextlib.contextmanager
def open_run(config: dict, resume: str | None, *, data_folder: Path):
    """The run folder to train in, locked: a new one (with its config.json) or the one to resume.

    Yields None (and says so) for a finished run. A new folder is removed again if the run fails
    before its first checkpoint: it never started, and a usage error must leave nothing behind. An
    OSError (a full disk, a file in the way) becomes one line that says how to go on once it is
    fixed."""
    run_dir = None
    try:
        with _open_run(config, resume, data_folder=data_folder) as run_dir:
            yield run_dir
    except OSError as err:
        resumable = run_dir and (run_dir / "config.json").is_file()  # else the folder was removed
        then = "run the same command again"
        if resumable:
            then = f"continue with: {resume_command(run_dir)}"
        raise DataError(disk_problem(err, then)) from None


@contextlib.contextmanager
def _open_run(config: dict, resume: str | None, *, data_folder: Path):
    from plumbing import machine  # here, not at the top: compare.py reads runs without TensorFlow

    run_dir = (
        Path(resume) if resume else create(config["run_dir"], config["name"], config["preset"])
    )
    with lock(run_dir):
        if resume:
            check_same_data(run_dir, data_folder)
        if finished(run_dir):
            damaged = damaged_outputs(run_dir)
            if not damaged:
                print(f"{run_dir} is finished: {summary(run_dir)}; nothing to resume")
                yield None
                return
            verb = "is" if len(damaged) == 1 else "are"
            print(
                f"{run_dir} is finished, but its {' and '.join(damaged)} {verb} damaged: "
                f"rewriting the run's files from its checkpoint"
            )
        if not resume:
            machine_used = dict(device=machine.device_in_use(), compute=machine.policy_in_use())
            versions = machine.versions()
            write_config(run_dir, config, machine_used, data_folder=data_folder, versions=versions)
        try:
            yield run_dir
        except BaseException as err:
            if not resume and not (run_dir / "checkpoints").exists():
                shutil.rmtree(run_dir, ignore_errors=True)
            elif isinstance(err, Stopped):  # stopped outside the loop (e.g. while plotting)
                err.resume_command = resume_command(run_dir)
            raise


def write_results(run_dir: Path, results: dict) -> None:
    files.write_json(Path(run_dir) / "metrics.json", results)


def finished(run_dir: Path) -> bool:
    """A run is finished once metrics.json is written: its last file, after the plots."""
    return (Path(run_dir) / "metrics.json").is_file()


def damaged_outputs(run_dir: Path) -> list[str]:
    """The files of a finished run that --resume rewrites from the checkpoint: best.keras,
    metrics.csv."""
    damaged = []
    try:
        load_model(Path(run_dir) / "best.keras")
    except (UsageError, DataError):
        damaged.append("best.keras")
    try:
        read_metrics_csv(Path(run_dir) / "metrics.csv")
    except (OSError, DataError):
        damaged.append("metrics.csv")
    return damaged


def summary(run_dir: Path) -> str:
    try:
        results = json.loads((Path(run_dir) / "metrics.json").read_text())
        return (
            f"{results['epochs_run']} epochs, test accuracy {100 * results['test_accuracy']:.2f}% "
            f"(best epoch {results['best_epoch']})"
        )
    except (OSError, ValueError, KeyError, TypeError):
        return "its metrics.json is damaged"


def load_model(path: Path):
    """keras.models.load_model, with one line for a file that is missing, damaged or not .keras."""
    import keras  # here, not at the top: compare.py reads run folders without TensorFlow

    if not Path(path).is_file():
        raise UsageError(f"--eval-only {path}: no such file; pass a run's best.keras")
    if Path(path).suffix != ".keras":
        raise UsageError(f"--eval-only {path}: not a .keras model file; pass a run's best.keras")
    try:
        return keras.models.load_model(path)
    except Exception as err:  # a zip error, a missing member, a layer Keras cannot rebuild ...
        run_dir = Path(path).parent
        fix = "train again"
        if (run_dir / "checkpoints").is_dir():
            fix = f"rewrite it from its run's checkpoint with {resume_command(run_dir)}"
        raise DataError(
            f"{path} could not be loaded ({type(err).__name__}): it is damaged or from another "
            f"version of this code; {fix}"
        ) from None
