"""Fault injection: the disk fills up at each write point of a short run. Each time the run must
stop with the one disk-full line naming the file or folder it could not write (exit code 1, nothing
after it), and once space is freed, the command that line gives must finish the run: no write point
leaves a dead end.

The disk is a small tmpfs mounted for the test (root only), filled to the last byte just before the
chosen write; where mounting is not allowed, a fake layer makes every write from that point on fail
as a full disk does (OSError ENOSPC for Python's writes, ResourceExhaustedError for TensorFlow's).
Run with: python -m pytest -m faults tests/test_faults_disk.py
"""

import errno
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import tensorflow as tf

import helpers
import train
from helpers import check_run_folder, run_train
from plumbing import files

pytestmark = pytest.mark.faults

TINY = [*helpers.TINY, "--epochs", "1"]  # the smallest run, for one epoch
DISK_FULL = re.compile(
    r"error: (could not [^:]+: )?the disk is full \((?P<path>[^)]+)\); free some space, "
    r"then (continue with: (?P<command>.+)|run the same command again)"
)


class SmallDisk:
    """A folder on a disk that the test fills at the chosen write (the `at`-th), and frees again."""

    def __init__(self, folder):
        self.folder, self.at, self.writes, self.full = folder, None, [], False
        folder.mkdir()
        try:
            self.real = (
                subprocess.run(
                    ["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(folder)],
                    capture_output=True,
                ).returncode
                == 0
            )
        except OSError:  # no mount command
            self.real = False

    def write(self, what: str, kind: str) -> None:
        """Called just before each write: fills the disk at the chosen one; while full, the fake
        layer fails the write as a full disk would."""
        self.writes.append(what)
        if len(self.writes) == self.at:
            self.full = True
            if self.real:
                self._fill()
        if self.full and not self.real:
            if kind == "file":
                raise OSError(errno.ENOSPC, "No space left on device")
            raise tf.errors.ResourceExhaustedError(None, None, f"{what}; No space left on device")

    def _fill(self) -> None:
        with open(self.folder / "filler", "ab", buffering=0) as filler:
            for size in (1 << 20, 1 << 12, 1):
                try:
                    while filler.write(bytes(size)):
                        pass
                except OSError as err:
                    assert err.errno == errno.ENOSPC, err

    def free(self) -> None:
        self.full = False
        (self.folder / "filler").unlink(missing_ok=True)

    def remove(self) -> None:
        if self.real:
            subprocess.run(["umount", str(self.folder)], check=True)


@pytest.fixture
def disk(tmp_path, monkeypatch):
    """A SmallDisk, with every write point of a run hooked: the atomic writes (config.json, metrics,
    best.keras, plots), the checkpoints, and TensorBoard's writers (created, then flushed when
    closed)."""
    disk = SmallDisk(tmp_path / "disk")
    atomic_write, save = files.atomic_write, tf.train.CheckpointManager.save
    create_file_writer = tf.summary.create_file_writer

    def hooked_atomic_write(path, write):
        atomic_write(path, lambda tmp: (disk.write(Path(path).name, "file"), write(tmp)))

    def hooked_save(manager, *args, **kwargs):
        disk.write("checkpoint", "tensorflow")
        return save(manager, *args, **kwargs)

    def hooked_writer(logdir, *args, **kwargs):
        disk.write(f"create {logdir}", "tensorflow")
        writer = create_file_writer(logdir, *args, **kwargs)
        close = writer.close

        def hooked_close():
            disk.write(f"close {logdir}", "tensorflow")
            close()

        writer.close = hooked_close
        return writer

    monkeypatch.setattr(files, "atomic_write", hooked_atomic_write)
    monkeypatch.setattr(tf.train.CheckpointManager, "save", hooked_save)
    monkeypatch.setattr(tf.summary, "create_file_writer", hooked_writer)
    yield disk
    monkeypatch.undo()
    disk.remove()


def test_a_full_disk_at_every_write_gives_the_disk_line_and_the_given_command_finishes_the_run(
    sample_dir, disk, capsys
):
    runs = disk.folder / "runs"
    code, _ = run_train(sample_dir.parent, runs, *TINY, name="reference")
    writes = list(disk.writes)
    assert code == 0 and len(writes) >= 14, (
        writes
    )  # config, 2 checkpoints, tb, metrics, best, plots ...
    capsys.readouterr()
    problems = []
    for k, what in enumerate(writes, start=1):
        disk.writes, disk.at = [], k
        code, run_dir = run_train(sample_dir.parent, runs, *TINY, name=f"full{k}")
        err = capsys.readouterr().err.strip().splitlines()
        found = DISK_FULL.fullmatch(err[-1]) if err else None
        disk.free()
        disk.at = None
        if code != 1 or not found:
            problems.append(f"full at write {k} ({what}): exit {code}, {err[-1:]}")
            continue
        if not found["path"].startswith(str(run_dir)):
            problems.append(
                f"full at write {k} ({what}): the line names {found['path']}, not in {run_dir}"
            )
        if found["command"]:
            argv = shlex.split(found["command"])
            assert argv[:2] == ["python", "train.py"], found["command"]
            code = train.main(argv[2:])
        else:
            code = run_train(sample_dir.parent, runs, *TINY, name=f"full{k}")[0]
        if code != 0:
            problems.append(
                f"full at write {k} ({what}): the advised command exited {code}: "
                f"{capsys.readouterr().err[-500:]}"
            )
            continue
        check_run_folder(run_dir, epochs=1)
        capsys.readouterr()
    assert not problems, f"{'a tmpfs' if disk.real else 'the fake layer'}:\n" + "\n".join(problems)
