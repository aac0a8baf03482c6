"""The errors a user can fix, and how every command reports them: one line that names the fix.

    UsageError           a mistake on the command line       -> exit code 2
    DataError            a problem with the data or the disk -> exit code 1
    DivergedError        the training loss became NaN or huge -> exit code 1
    NotImplementedError  an exercise stub not yet written    -> exit code 2, naming the function
    Ctrl-C / SIGTERM     stopped by the user                  -> exit code 130 / 143

Standard library only: the instructor tools use it before anything is installed.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import gc
import logging
import os
import re
import shlex
import signal
import sys
import traceback
from pathlib import Path


class UsageError(Exception):
    """A command-line mistake: printed as one line, exit code 2."""


class DataError(Exception):
    """A problem with the data or the disk that the user can fix; the message says how, in one line."""


class DivergedError(Exception):
    """Training diverged (the loss became NaN, infinite or huge): exit code 1, printed as "training
    diverged: ...". Not a DataError: nothing is wrong with the data or the disk, the learning rate
    is too high. A sweep records the point as diverged and goes on (plumbing/sweep.py)."""

    def __init__(self, message: str, *, loss: float, epoch: int, step: int):
        super().__init__(message)
        self.loss, self.epoch, self.step = loss, epoch, step


class Stopped(BaseException):
    """Raised by Ctrl-C or SIGTERM outside the training loop (see plumbing.signals.StopRequests)."""

    def __init__(self, signum: int):
        super().__init__(signal_name(signum))
        self.signum = signum
        self.resume_command: str | None = (
            None  # set when a run folder can go on (plumbing.runs.open_run)
        )


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a mistake is reported in one line (a UsageError) instead of the whole usage text."""

    def error(self, message):
        raise UsageError(f"{message} (see python {self.prog} --help)")


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


def missing_piece(error: NotImplementedError) -> str:
    """'file::function: hint' of an exercise stub's error, even when TensorFlow re-raised it with
    more text around it (from a tf.function or a tf.data map); else where it was raised."""
    found = re.findall(r"[\w/.-]+\.py::[\w.]+: [^\n]*", str(error))
    if found:  # the last: TensorFlow quotes the stub's source line before the error itself
        return found[-1]
    frame = traceback.extract_tb(error.__traceback__)[-1]
    return f"{Path(frame.filename).name}::{frame.name}: {error}".rstrip(": ")


def resume_command(run_dir) -> str:
    """The command that continues a run, quoted so that it can be pasted: `--resume=-x` for a folder
    named like a flag (argparse would take `--resume -x` for two flags)."""
    path = shlex.quote(str(run_dir))
    return (
        f"python train.py --resume={path}"
        if path.startswith("-")
        else f"python train.py --resume {path}"
    )


# What TensorFlow's C++ writers (checkpoints, TensorBoard) say, in words only, for each errno.
WRITE_ERRNOS = (
    ("No space left on device", errno.ENOSPC),
    ("Disk quota exceeded", errno.EDQUOT),
    ("Read-only file system", errno.EROFS),
    ("Permission denied", errno.EACCES),
    ("is not a directory", errno.ENOTDIR),
    ("Not a directory", errno.ENOTDIR),
)


def write_error(message: str, path, doing: str = "") -> OSError:
    """The OSError for a write TensorFlow failed (its OpError names the cause only in its message), about
    `path`; `doing` (e.g. "could not save the checkpoint") starts the line disk_problem prints."""
    code = next((number for text, number in WRITE_ERRNOS if text in message), None)
    plain = re.sub(r"\{\{function_node [^}]*\}\}\s*|\s*\[Op:\w+\].*", "", message).strip()
    err = OSError(code, os.strerror(code) if code else plain.splitlines()[0], str(path))
    err.doing = doing
    return err


def disk_problem(err: OSError, then: str = "run the same command again") -> str:
    """One line for an OSError met while writing: what happened, where, and what to do (`then`)."""
    where = f" ({err.filename})" if err.filename else ""
    doing = f"{err.doing}: " if getattr(err, "doing", "") else ""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"{doing}the disk is full{where}; free some space, then {then}"
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{doing}no permission to write{where}; make it writable, then {then}"
    if err.errno in (errno.ENOTDIR, errno.EEXIST):
        return f"{doing}a file is in the way{where}: a folder must be there; move the file away, then {then}"
    return f"{doing}{err.strerror or err}{where}"


def out_of_memory(message: str) -> str:
    """One line for TensorFlow's out-of-memory error (ResourceExhaustedError: 'OOM when allocating tensor
    with shape[3072,1000000000] and type float ...'): what was too large, and what to make smaller."""
    found = re.search(r"shape\[([\d,]*)\] and type (\w+)", message)
    what = f" a tensor of shape [{found[1]}] ({found[2]})" if found else " a tensor"
    return (
        f"out of memory: TensorFlow could not allocate{what}; make the model (--hidden-units, --widths, "
        f"--dense-units) or --batch-size smaller"
    )


def one_line(err: BaseException) -> tuple[int, str] | None:
    """(exit code, the line to print) for the errors a user can fix; None for any other (a bug: shown)."""
    if isinstance(err, UsageError):
        return 2, f"usage error: {err}"
    if isinstance(err, DataError):
        return 1, f"error: {err}"
    if isinstance(err, DivergedError):
        return 1, f"training diverged: {err}"
    if isinstance(err, NotImplementedError):
        return (
            2,
            f"NOT IMPLEMENTED: {missing_piece(err)}; write it (see the TODO there), then run again",
        )
    if isinstance(
        err, OSError
    ):  # a disk full or a folder that cannot be written: never a traceback
        return 1, f"error: {disk_problem(err)}"
    if isinstance(err, (KeyboardInterrupt, Stopped)):
        signum, command = (
            getattr(err, "signum", signal.SIGINT),
            getattr(err, "resume_command", None),
        )
        return 128 + signum, f"\n{signal_name(signum)}: stopped" + (
            f"; continue with: {command}" if command else ""
        )
    if isinstance(err, Exception) and "OOM when allocating" in str(
        err
    ):  # a tensor too large for the memory
        return 1, f"error: {out_of_memory(str(err))}"
    return None


def report(main, argv: list[str] | None = None) -> int:
    """Runs main(argv) and turns the errors above into one line on stderr and an exit code.

    The line comes last: the objects an error leaves behind (a checkpoint restored in part, TensorBoard
    writers) make TensorFlow log dozens of warnings when they are freed; they are freed first, silently."""
    logger = logging.getLogger("tensorflow")
    disabled = logger.disabled
    try:
        return main(argv)
    except BaseException as err:
        answer = one_line(err)
        if answer is None:
            raise
        logger.disabled = (
            True  # from here: leaving this block frees the error's frames and their objects
        )
    with signals_ignored():  # a second Ctrl-C while the line is being written changes nothing
        try:
            gc.collect()
        finally:
            logger.disabled = disabled
        code, line = answer
        sys.stdout.flush()
        print(line, file=sys.stderr, flush=True)
    return code


@contextlib.contextmanager
def signals_ignored():
    """Ctrl-C and SIGTERM do nothing inside the block (the command is already stopping): a second
    Ctrl-C pressed while the last line is written must not end in a KeyboardInterrupt traceback."""
    try:
        previous = {
            sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)
        }
    except ValueError:  # not the main thread: signals are not ours to handle
        yield
        return
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
