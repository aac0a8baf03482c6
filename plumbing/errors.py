"""The errors a user can fix, and how every command reports them: one line that names the fix.

    UsageError           a mistake on the command line       -> exit code 2
    DataError            a problem with the data or the disk -> exit code 1
    NotImplementedError  an exercise stub not yet written    -> exit code 2, naming the function
    Ctrl-C / SIGTERM     stopped by the user                  -> exit code 130 / 143

Standard library only: the instructor tools use it before anything is installed.
"""

from __future__ import annotations

import argparse
import errno
import re
import signal
import sys
import traceback
from pathlib import Path


class UsageError(Exception):
    """A command-line mistake: printed as one line, exit code 2."""


class DataError(Exception):
    """A problem with the data or the disk that the user can fix; the message says how, in one line."""


class Stopped(BaseException):
    """Raised by Ctrl-C or SIGTERM outside the training loop (see plumbing.signals.StopRequests)."""

    def __init__(self, signum: int):
        super().__init__(signal_name(signum))
        self.signum = signum
        self.resume_command: str | None = None  # set when a run folder can go on (plumbing.runs.open_run)


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


def disk_problem(err: OSError) -> str:
    """One line for an OSError met while writing: what happened, where, and what to do."""
    where = f" ({err.filename})" if err.filename else ""
    if err.errno == errno.ENOSPC:
        return f"the disk is full{where}; free some space, then run the same command again"
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"no permission to write{where}; choose a folder you can write to"
    return f"{err.strerror or err}{where}"


def report(main, argv: list[str] | None = None) -> int:
    """Runs main(argv) and turns the errors above into one line on stderr and an exit code."""
    try:
        return main(argv)
    except UsageError as err:
        print(f"usage error: {err}", file=sys.stderr)
        return 2
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except NotImplementedError as err:
        print(f"NOT IMPLEMENTED: {missing_piece(err)}; write it (see the TODO there), then run again",
              file=sys.stderr)
        return 2
    except OSError as err:  # a disk full or a folder that cannot be written: never a traceback
        print(f"error: {disk_problem(err)}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, Stopped) as err:
        signum, command = getattr(err, "signum", signal.SIGINT), getattr(err, "resume_command", None)
        print(f"\n{signal_name(signum)}: stopped" + (f"; continue with: {command}" if command else ""),
              file=sys.stderr)
        return 128 + signum
