"""The errors a user can fix, and how every command reports them: one line that names the fix.

    UsageError        a mistake on the command line        -> exit code 2
    DataError         a problem with the data or the disk  -> exit code 1
    DivergedError     the training loss became NaN or huge -> exit code 1
    NotWrittenError   an exercise stub not yet written     -> exit code 2, naming the function
    Ctrl-C / SIGTERM  stopped by the user                  -> exit code 130 / 143

Any other error is a bug, shown with its traceback; that includes a NotImplementedError other than
an exercise stub's NotWrittenError (plumbing/todo.py), one raised inside Keras say.

COURSE_DEBUG=1 in the environment shows the full traceback of every error instead of its one line
(for maintainers), with the same exit code.

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

from plumbing.todo import NotWrittenError, unwritten


class UsageError(Exception):
    """A command-line mistake: printed as one line, exit code 2."""


class DataError(Exception):
    """A problem with the data or the disk the user can fix; the message says how, in one line."""


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
        # set when a run folder can go on (plumbing.runs.open_run)
        self.resume_command: str | None = None


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a mistake is reported in one line (a UsageError), not the whole usage text."""

    def error(self, message):
        raise UsageError(f"{message} (see python {self.prog} --help)")


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


def missing_piece(stub: NotWrittenError) -> str:
    """'file::function: hint' of an exercise stub's error (its message); for a stub's error raised
    without one, where it was raised."""
    if re.match(r"[\w/.-]+\.py::[\w.]+(: |$)", str(stub)):
        return str(stub)
    frame = traceback.extract_tb(stub.__traceback__)[-1]
    return f"{Path(frame.filename).name}::{frame.name}: {stub}".rstrip(": ")


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
    """The OSError for a write TensorFlow failed (its OpError names the cause only in its message),
    about `path`; `doing` (e.g. "could not save the checkpoint") starts disk_problem's line."""
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
        fix = f"a folder must be there; move the file away, then {then}"
        return f"{doing}a file is in the way{where}: {fix}"
    return f"{doing}{err.strerror or err}{where}"


def out_of_memory(message: str) -> str:
    """One line for TensorFlow's out-of-memory error (ResourceExhaustedError: 'OOM when allocating
    tensor with shape[3072,1000000000] and type float ...'): what was too large, and what to make
    smaller."""
    found = re.search(r"shape\[([\d,]*)\] and type (\w+)", message)
    what = f" a tensor of shape [{found[1]}] ({found[2]})" if found else " a tensor"
    smaller = "the model (--hidden-units, --widths, --dense-units) or --batch-size"
    return f"out of memory: TensorFlow could not allocate{what}; make {smaller} smaller"


def one_line(err: BaseException) -> tuple[int, str] | None:
    """(exit code, the line to print) for the errors a user can fix; None for any other (a bug)."""
    if isinstance(err, UsageError):
        return 2, f"usage error: {err}"
    if isinstance(err, DataError):
        return 1, f"error: {err}"
    if isinstance(err, DivergedError):
        return 1, f"training diverged: {err}"
    stub = unwritten(err)  # itself, or inside the StagingError of a tf.function or a tf.data map
    if stub is not None:
        where = missing_piece(stub)
        return 2, f"NOT IMPLEMENTED: {where}; write it (see the TODO there), then run again"
    if isinstance(err, OSError):  # a disk full or a folder that cannot be written: no traceback
        return 1, f"error: {disk_problem(err)}"
    if isinstance(err, (KeyboardInterrupt, Stopped)):
        signum = getattr(err, "signum", signal.SIGINT)
        command = getattr(err, "resume_command", None)
        line = f"\n{signal_name(signum)}: stopped"
        if command:
            line += f"; continue with: {command}"
        return 128 + signum, line
    if isinstance(err, Exception) and "OOM when allocating" in str(err):  # a tensor too large
        return 1, f"error: {out_of_memory(str(err))}"
    return None


def report(main, argv: list[str] | None = None) -> int:
    """Runs main(argv) and turns the errors above into one line on stderr and an exit code.

    The line comes last: the objects an error leaves behind (a checkpoint restored in part,
    TensorBoard writers) make TensorFlow log dozens of warnings when they are freed; they are freed
    first, silently. With COURSE_DEBUG=1 the full traceback is printed instead of the line (the
    exit code stays the same)."""
    logger = logging.getLogger("tensorflow")
    disabled = logger.disabled
    try:
        return main(argv)
    except BaseException as err:
        answer = one_line(err)
        if answer is None:
            raise
        if debugging():
            traceback.print_exc()
            return answer[0]
        logger.disabled = True  # from here: leaving this block frees the error's frames, silently
    with signals_ignored():  # a second Ctrl-C while the line is being written changes nothing
        try:
            gc.collect()
        finally:
            logger.disabled = disabled
        code, line = answer
        sys.stdout.flush()
        print(line, file=sys.stderr, flush=True)
    return code


def debugging() -> bool:
    """COURSE_DEBUG=1 (any value but "" and "0"): maintainers see tracebacks, not one line."""
    return os.environ.get("COURSE_DEBUG", "") not in ("", "0")


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
