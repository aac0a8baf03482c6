"""The NumPy track's commands (python numpy_mlp.py, python numpy_conv.py) as a student runs them:
bad flags and unwritten stubs give one line and exit code 2, Ctrl-C one line and 130, before any
long work. Not graded."""

import os
import signal
import subprocess
import sys

import pytest

import numpy_conv
import numpy_mlp
from helpers import REPO_ROOT, raise_if_not_implemented
from plumbing.todo import NotWrittenError


def no_work():
    pytest.fail("the flags are checked before any work")


def one_line(capsys, code: int, expected_code: int, text: str) -> None:
    err = capsys.readouterr().err
    assert (
        code == expected_code and text in err and err.count("\n") == 1 and "Traceback" not in err
    ), err


# ------------------------------------------------------------------------ numpy_mlp.py --iterations
@pytest.mark.parametrize("value", ["-5", "0", "1.5"])
def test_numpy_mlp_refuses_iterations_that_are_not_a_positive_whole_number(
    value, capsys, monkeypatch
):
    monkeypatch.setattr(numpy_mlp, "check_on_the_toy_problem", no_work)
    one_line(
        capsys,
        numpy_mlp.main(["--iterations", value]),
        2,
        f"argument --iterations: must be a positive whole number, not {value}",
    )


def test_numpy_mlp_trains_exactly_the_iterations_asked(sample_dir, tmp_path, capsys):
    code = numpy_mlp.main(
        [
            "--data-dir",
            str(sample_dir.parent),
            "--iterations",
            "3",
            "--plot",
            str(tmp_path / "curves.png"),
        ]
    )
    out, err = capsys.readouterr()
    raise_if_not_implemented(code, err)  # on the exercise: skipped, naming the stub to write
    assert code == 0 and (tmp_path / "curves.png").stat().st_size > 0
    assert out.count("num_iters 3,") == 2 and out.count("iteration     3/3:") == 2, out


# ------------------------------------------------------------------------------ numpy_mlp.py --plot
@pytest.mark.parametrize("name", ["x.txt", "curves"])
def test_numpy_mlp_refuses_a_plot_name_without_an_image_suffix_before_training(
    name, capsys, monkeypatch
):
    monkeypatch.setattr(numpy_mlp, "check_on_the_toy_problem", no_work)
    one_line(
        capsys,
        numpy_mlp.main(["--plot", name]),
        2,
        f"argument --plot: {name} is not a picture file name: end it in .png",
    )


# ---------------------------------------------------------------------------- numpy_conv.py wrapped
def test_numpy_conv_names_an_unwritten_stub_in_one_line_with_exit_code_2(capsys, monkeypatch):
    def stub(*args, **kwargs):  # what the exercise version holds until it is written
        raise NotWrittenError(
            "numpy_conv.py::conv2d_forward_naive: for each output position: its window"
        )

    monkeypatch.setattr(numpy_conv, "conv2d_forward_naive", stub)
    code = numpy_conv.main([])
    assert capsys.readouterr().err == (
        "NOT IMPLEMENTED: numpy_conv.py::conv2d_forward_naive: for each "
        "output position: its window; write it (see the TODO there), then run "
        "again\n"
    )
    assert code == 2


def test_numpy_conv_refuses_unknown_flags(capsys):
    one_line(capsys, numpy_conv.main(["--bogus"]), 2, "unrecognized arguments: --bogus")


def test_numpy_conv_checks_every_backward_pass(capsys):
    assert numpy_conv.main([]) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    assert [line.split()[0] for line in lines] == [
        "conv2d_backward_naive",
        "conv2d_backward",
        "max_pool_backward_naive",
        "avg_pool_backward_naive",
        "max_pool_backward",
        "avg_pool_backward",
    ]
    assert all(float(line.split()[1]) < 1e-8 for line in lines)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_stops_numpy_conv_in_one_line(tmp_path):
    # python numpy_conv.py, with a numerical gradient that never ends: the signal arrives while
    # NumPy works.
    script = (
        "import runpy, numpy_mlp\n"
        "def forever(f, x):\n"
        "    print('ready', flush=True)\n"
        "    while True:\n"
        "        f()\n"
        "numpy_mlp.numerical_gradient = forever\n"
        "runpy.run_path('numpy_conv.py', run_name='__main__')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    job = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    first, second = job.stdout.readline(), job.stdout.readline()
    if second != "ready\n":  # on the exercise, a stub ends it before the gradient check
        job.wait(timeout=60)
        raise_if_not_implemented(job.returncode, job.stderr.read())
    assert first.startswith("backward pass") and second == "ready\n"
    job.send_signal(signal.SIGINT)
    _, err = job.communicate(timeout=60)
    assert (job.returncode, err) == (130, "\nSIGINT: stopped\n")
