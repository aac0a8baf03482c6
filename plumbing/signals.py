"""Ctrl-C and SIGTERM (a cluster's scheduler, `kill`), honoured from the first line of main to the
last.

Outside the training loop a signal stops the program at once (errors.Stopped: exit code 130 or 143,
one line, no traceback); every file is written atomically, so nothing is left half-written. Inside
`deferred()`, the first signal only sets `requested`: the loop finishes its step, saves a checkpoint
and says how to resume. A second signal stops at once.

No stop is lost: Python runs a signal handler between two lines of whatever Python code is running,
and an exception raised inside a `__del__` method (TensorFlow frees its tensors in them) is dropped
with an "Exception ignored" message. Such a stop is sent again, to land in ordinary code.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

from plumbing.errors import Stopped, resume_command, signal_name

HANDLED = (signal.SIGINT, signal.SIGTERM)
_active = []  # the StopRequests of the handled() block running now (blocks nest in tests)


def exit_quietly(signum, _frame):
    """A handler for the moments before `handled()` (TensorFlow loading): one line, exit 128 +
    signal.

    os._exit, not sys.exit: nothing is being written yet, and the exit cannot be dropped in a
    __del__."""
    print(f"\n{signal_name(signum)}: stopped", file=sys.stderr, flush=True)
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
    os._exit(128 + signum)


def stopped(signum: int, run_dir, where: str) -> int:
    """After a requested stop (the checkpoint is saved): the command that resumes, and 128 + the
    signal."""
    print(
        f"\n{signal_name(signum)}: saved a checkpoint {where}. Resume with:\n"
        f"  {resume_command(run_dir)}",
        flush=True,
    )
    return 128 + signum


class StopRequests:
    """The signal handler of handled(), and `requested`: the flag the training loop checks at every
    step."""

    def __init__(self):
        self.requested: int | None = None  # the first signal's number, once one arrived
        self._deferring = False
        self._previous_hook = sys.unraisablehook
        self._dropped = None  # a stop that Python dropped (raised inside a __del__ method)
        self._again = None  # the timer that sends it again

    def _handle(self, signum, _frame):
        if self._deferring and self.requested is None:
            self.requested = signum
            print(
                f"\n{signal.Signals(signum).name}: finishing this step and saving a checkpoint "
                f"(press Ctrl-C again to stop at once)",
                file=sys.stderr,
                flush=True,
            )
            return
        self.requested, self._dropped = self.requested or signum, None
        raise Stopped(signum)

    def _unraisable(self, unraisable) -> None:
        """sys.unraisablehook while handled(): a Stopped that Python dropped (raised inside a
        __del__ method or a weakref callback) is sent again; other exceptions are printed as
        usual."""
        if isinstance(
            unraisable.exc_value, Stopped
        ):  # sent again a moment later, after this __del__
            self._dropped = unraisable.exc_value.signum
            self._again = threading.Timer(0.01, os.kill, (os.getpid(), self._dropped))
            self._again.daemon = True
            self._again.start()
            return
        self._previous_hook(unraisable)

    @contextlib.contextmanager
    def deferred(self):
        """While active, a first signal is only recorded in `requested`."""
        self._deferring = True
        try:
            yield self
        finally:
            self._deferring = False


def deferred():
    """`with signals.deferred() as stop:` the training loop's block in which a first Ctrl-C or
    SIGTERM only sets `stop.requested` (the step finishes, a checkpoint is saved). Outside any
    handled() block (a test calling train.train directly) signals are not ours: `stop.requested`
    stays None."""
    return (_active[-1] if _active else StopRequests()).deferred()


@contextlib.contextmanager
def handled():
    """Installs the handler for the duration of the block (the whole of a command's main)."""
    stop = StopRequests()
    try:
        previous = {sig: signal.signal(sig, stop._handle) for sig in HANDLED}
    except ValueError:  # not the main thread (e.g. a test runner's worker): leave them alone
        yield stop
        return
    _active.append(stop)
    stop._previous_hook, sys.unraisablehook = sys.unraisablehook, stop._unraisable
    try:
        yield stop
    finally:
        _active.remove(stop)
        sys.unraisablehook = stop._previous_hook
        if stop._again:
            stop._again.cancel()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if stop._dropped:  # the block ended before the stop could be sent again: it still stops
        raise Stopped(stop._dropped)
