"""Ctrl-C and SIGTERM (not graded): no stop is lost, wherever it lands (even inside a __del__
method, where Python drops exceptions), and a stop during the last epoch's validation stops as it
says and resumes to the same result."""

import os
import signal
import time

import pytest

import helpers
import train
from helpers import assert_same_outcome, check_run_folder, run_outcome, run_train
from plumbing import signals
from plumbing.errors import Stopped

TINY = [*helpers.TINY, "--deterministic"]  # runs compared bit for bit


class SignalledWhileDeleted:
    """An object whose __del__ receives a signal, as TensorFlow's EagerResourceDeleter.__del__
    can."""

    def __init__(self, signum: int):
        self.signum = signum

    def __del__(self):
        os.kill(os.getpid(), self.signum)
        for _ in range(1000):  # Python runs the handler here, inside __del__
            pass


def wait_a_little():
    for _ in range(200):
        time.sleep(0.005)


def test_a_stop_that_lands_inside_a_del_method_is_not_lost():
    with signals.handled() as stop:
        with pytest.raises(Stopped) as info:
            SignalledWhileDeleted(signal.SIGTERM)  # deleted at once
            wait_a_little()
    assert info.value.signum == signal.SIGTERM and stop.requested == signal.SIGTERM


def test_a_second_ctrl_c_inside_a_del_method_still_stops_at_once(capsys):
    with signals.handled() as stop, stop.deferred():
        SignalledWhileDeleted(signal.SIGINT)  # the first: recorded, the loop saves and stops
        wait_a_little()
        assert stop.requested == signal.SIGINT
        assert "SIGINT: finishing this step and saving a checkpoint" in capsys.readouterr().err
        with pytest.raises(Stopped):
            SignalledWhileDeleted(signal.SIGINT)  # the second: at once
            wait_a_little()


def test_a_stop_dropped_just_before_the_end_of_the_command_still_stops():
    with pytest.raises(Stopped) as info:
        with signals.handled():
            SignalledWhileDeleted(signal.SIGINT)  # the block ends before the stop can be sent again
    assert info.value.signum == signal.SIGINT


def test_other_exceptions_in_del_methods_are_reported_as_usual():
    class Broken:
        def __del__(self):
            raise ValueError("broken")

    seen = []
    previous, signals.sys.unraisablehook = signals.sys.unraisablehook, seen.append
    try:
        with signals.handled():
            Broken()
    finally:
        signals.sys.unraisablehook = previous
    assert [type(u.exc_value) for u in seen] == [ValueError]


@pytest.mark.slow  # 11 s; a stop during training is checked in the default run
def test_ctrl_c_during_the_last_validation_stops_and_resumes(
    sample_dir, tmp_path, monkeypatch, capsys
):
    _, reference = run_train(sample_dir.parent, tmp_path, *TINY, "--epochs", "2", name="whole")
    capsys.readouterr()
    calls, evaluate = [], train.evaluate

    def interrupted(predict, dataset):  # validation is the second call in each epoch's loop
        calls.append(dataset)
        if len(calls) == 2:  # the last (second) epoch's validation
            os.kill(os.getpid(), signal.SIGINT)
        return evaluate(predict, dataset)

    monkeypatch.setattr(train, "evaluate", interrupted)
    code, run_dir = run_train(sample_dir.parent, tmp_path, *TINY, "--epochs", "2", name="cut")
    out, err = capsys.readouterr()
    assert code == 128 + signal.SIGINT, err
    assert "SIGINT: finishing this step and saving a checkpoint" in err
    assert (
        "SIGINT: saved a checkpoint after epoch 2. Resume with:\n"
        f"  python train.py --resume {run_dir}\n" in out
    )
    assert not (run_dir / "metrics.json").exists() and "test accuracy" not in out, (
        "no test after the stop"
    )
    monkeypatch.undo()
    assert train.main(["--resume", str(run_dir)]) == 0
    check_run_folder(run_dir, epochs=2)
    assert_same_outcome(
        run_outcome(run_dir), run_outcome(reference), "stopped in the last validation"
    )


def test_a_second_ctrl_c_while_the_stop_line_is_written_is_ignored(monkeypatch, capsys):
    """Found by the fault suite (a double SIGINT 0.1 s apart, early in a run): the second one landed
    while report() freed the first one's leftovers, and escaped as a KeyboardInterrupt traceback."""
    import gc

    from plumbing import errors

    def stopped(argv):
        raise Stopped(signal.SIGINT)

    collect = gc.collect
    monkeypatch.setattr(
        errors.gc, "collect", lambda: (os.kill(os.getpid(), signal.SIGINT), collect())
    )
    assert errors.report(stopped, []) == 130
    assert capsys.readouterr().err.strip() == "SIGINT: stopped"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler, (
        "the handler is given back"
    )
