"""Ctrl-C and SIGTERM (a cluster's scheduler, `kill`), honoured from the first line of main to the last.

Outside the training loop a signal stops the program at once (errors.Stopped: exit code 130 or 143,
one line, no traceback); every file is written atomically, so nothing is left half-written. Inside
`deferred()`, the first signal only sets `requested`: the loop finishes its step, saves a checkpoint
and says how to resume. A second signal stops at once.
"""

from __future__ import annotations

import contextlib
import signal
import sys

from plumbing.errors import Stopped, resume_command, signal_name

HANDLED = (signal.SIGINT, signal.SIGTERM)


def exit_quietly(signum, _frame):
    """A handler for the moments before `handled()` (TensorFlow loading): one line, exit 128 + signal."""
    print(f"\n{signal_name(signum)}: stopped", file=sys.stderr)
    sys.exit(128 + signum)


def stopped(signum: int, run_dir, where: str) -> int:
    """After a requested stop (the checkpoint is saved): the command that resumes, and 128 + the signal."""
    print(f"\n{signal_name(signum)}: saved a checkpoint {where}. Resume with:\n"
          f"  {resume_command(run_dir)}", flush=True)
    return 128 + signum


class StopRequests:
    def __init__(self):
        self.requested: int | None = None  # the signal number, once one arrived while deferring
        self._deferring = False

    def _handle(self, signum, _frame):
        if self._deferring and self.requested is None:
            self.requested = signum
            print(f"\n{signal.Signals(signum).name}: finishing this step and saving a checkpoint "
                  f"(press Ctrl-C again to stop at once)", file=sys.stderr, flush=True)
            return
        raise Stopped(signum)

    @contextlib.contextmanager
    def deferred(self):
        """While active, a first signal is only recorded in `requested`."""
        self._deferring = True
        try:
            yield self
        finally:
            self._deferring = False


@contextlib.contextmanager
def handled():
    """Installs the handler for the duration of the block (the whole of a command's main)."""
    stop = StopRequests()
    try:
        previous = {sig: signal.signal(sig, stop._handle) for sig in HANDLED}
    except ValueError:  # not the main thread (e.g. called from a test runner's worker): leave them alone
        yield stop
        return
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
