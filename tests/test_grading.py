"""Tests for tests/grading.py: points, the per-stage table, and NOT IMPLEMENTED reports.

Each test writes a small test suite into tmp_path, with this repository's conftest.py, grading.py
and pytest.ini, and runs pytest on it in a subprocess (no TensorFlow: a second or two each). The
table's tests run it both as pytest.ini says (worker processes, pytest-xdist) and in one process
(-n 0): the same work must show the same points either way.
"""

import getpass
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from helpers import WORKERS

REPO = Path(__file__).resolve().parent.parent

GRADED_CNN = """
import pytest

from plumbing.todo import NotWrittenError

STAGE = "CNN"


@pytest.mark.points(2)
def test_passes():
    assert 1 + 1 == 2


@pytest.mark.points(3)
def test_fails():
    assert 1 + 1 == 3, "arithmetic"


@pytest.mark.points(1)
def test_skipped():
    pytest.skip("no data")


@pytest.fixture
def broken():
    raise RuntimeError("fixture broke")


@pytest.mark.points(4)
def test_errors_in_setup(broken):
    pass


@pytest.mark.points(5)
def test_stub():
    raise NotWrittenError("cnn.py::conv_block: a Conv2D layer")


class StagingError(Exception):
    \"\"\"As TensorFlow re-raises an error met while tracing a tf.function: the original is its
    __context__, its message quotes the source line.\"\"\"


IN_USER_CODE = (
    'in user code:\\n\\n    File "train.py", line 9, in train_step\\n'
    '        raise NotWrittenError("train.py::make_train_step: the step")\\n\\n'
    "    NotWrittenError: train.py::make_train_step: the step"
)


@pytest.mark.points(1)
def test_stub_reraised_by_tensorflow():
    try:
        raise NotWrittenError("train.py::make_train_step: the step")
    except NotWrittenError:
        raise StagingError(IN_USER_CODE) from None


@pytest.mark.points(1)
def test_keras_not_implemented_reraised_by_tensorflow():
    # a NotImplementedError of Keras' own, even quoting a stub-like text, is a real error
    raise NotImplementedError(IN_USER_CODE.replace("NotWrittenError", "NotImplementedError"))


def helper():
    raise NotImplementedError("Layer Dense does not have a `compute_output_shape` method")


@pytest.mark.points(1)
def test_other_not_implemented():
    helper()


@pytest.mark.points(1)
@pytest.mark.parametrize("n", [1, 2])
def test_each_parameter_counts(n):
    assert n == 1
"""

GRADED_MLP = """
import pytest

STAGE = "MLP"


@pytest.mark.points(1.5)
def test_passes():
    pass
"""

UNGRADED = """
def test_not_graded():
    assert False, "ungraded failures do not change the score"
"""


def make_suite(root: Path, files: dict[str, str]) -> Path:
    """A project in `root` with this repository's pytest set-up and the given test files."""
    tests = root / "tests"
    tests.mkdir(parents=True)
    for name in ("conftest.py", "grading.py", "helpers.py"):
        (tests / name).write_text((REPO / "tests" / name).read_text())
    ini = (REPO / "pytest.ini").read_text().replace("pythonpath = .", f"pythonpath = {REPO}")
    (root / "pytest.ini").write_text(ini)
    for name, text in files.items():
        (tests / name).write_text(textwrap.dedent(text))
    return root


def run_pytest(root: Path, *args: str) -> subprocess.CompletedProcess:
    """pytest in a subprocess, with a wide terminal so that its summary lines are not cut."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )


@WORKERS
def test_scores_per_stage_and_one_line_for_stubs(tmp_path, workers):
    root = make_suite(
        tmp_path,
        {"test_cnn_part.py": GRADED_CNN, "test_mlp_part.py": GRADED_MLP, "test_other.py": UNGRADED},
    )
    result = run_pytest(root, *workers)
    assert result.returncode == 1, result.stdout[-3000:]
    out = result.stdout

    # The table: possible counts every graded test, whatever happened to it.
    assert "MLP                    1.5 / 1.5" in out, out[-1500:]
    assert "CNN                      3 / 20" in out, out[-1500:]
    assert "total                  4.5 / 21.5   (21%)" in out, out[-1500:]

    # An exercise stub's NotWrittenError: one line naming file::function, no traceback.
    assert "NOT IMPLEMENTED: cnn.py::conv_block" in out
    assert "test_stub - NOT IMPLEMENTED: cnn.py::conv_block" in out, (
        "the -ra summary line names it too"
    )
    assert "test_stub_reraised_by_tensorflow - NOT IMPLEMENTED: train.py::make_train_step" in out
    assert 'raise NotWrittenError("cnn.py' not in out, (
        "a stub's failure must not print its traceback"
    )
    # Any other NotImplementedError (Keras', say): reported as the error it is, with its traceback.
    assert (
        "test_keras_not_implemented_reraised_by_tensorflow - NotImplementedError: in user code:"
        in out
    )
    assert (
        "test_other_not_implemented - NotImplementedError: Layer Dense does not have a "
        "`compute_output_shape` method" in out
    )
    assert "NOT IMPLEMENTED: test_cnn_part.py" not in out and out.count("NOT IMPLEMENTED: ") == 4
    assert "assert (1 + 1) == 3" in out, "other failures keep pytest's full report"

    assert "FAILED tests/test_cnn_part.py::test_skipped - graded tests cannot skip: no data" in out


def test_grading_tests_without_points_are_collection_errors(tmp_path):
    root = make_suite(
        tmp_path,
        {
            "test_no_points.py": """
            STAGE = "MLP"

            def test_forgotten():
                pass
            """,
            "test_bad_stage.py": """
            import pytest

            STAGE = "cnn"

            @pytest.mark.points(1)
            def test_x():
                pass
            """,
            "test_stray_points.py": """
            import pytest

            @pytest.mark.points(1)
            def test_x():
                pass
            """,
            "test_bad_points.py": """
            import pytest

            STAGE = "MLP"

            @pytest.mark.points(0)
            def test_x():
                pass
            """,
            "test_typo.py": """
            import pytest

            STAGE = "MLP"

            @pytest.mark.point(1)
            def test_x():
                pass
            """,
            "test_slow_points.py": """
            import pytest

            STAGE = "MLP"

            @pytest.mark.slow
            @pytest.mark.points(1)
            def test_x():
                pass
            """,
        },
    )
    result = run_pytest(root, "-n", "0")
    out = result.stdout
    assert result.returncode == 2, out[-3000:]
    assert "6 errors during collection" in out, out[-3000:]
    assert (
        "tests/test_no_points.py::test_forgotten is a grading test (STAGE = 'MLP') without points; "
        "add @pytest.mark.points(n)"
    ) in out
    assert (
        "tests/test_bad_stage.py: STAGE = 'cnn' is not one of augmentation, MLP, CNN, batch norm, "
        "strided & dropout, NumPy net, NumPy conv"
    ) in out
    assert (
        "tests/test_stray_points.py::test_x has a points marker but "
        "tests/test_stray_points.py sets no STAGE"
    ) in out
    assert "tests/test_bad_points.py::test_x: write points(n) with one positive number n" in out
    assert "tests/test_slow_points.py::test_x: a grading test cannot be slow" in out
    assert "'point' not found in `markers` configuration option" in out, (
        "--strict-markers catches typos"
    )


def test_no_table_without_grading_tests(tmp_path):
    root = make_suite(tmp_path, {"test_plain.py": "def test_plain():\n    pass\n"})
    result = run_pytest(root)
    assert result.returncode == 0 and "points" not in result.stdout and "1 passed" in result.stdout


def test_a_module_that_does_not_import_is_named_under_the_table(tmp_path):
    root = make_suite(
        tmp_path,
        {
            "test_mlp_part.py": GRADED_MLP,
            "test_broken.py": 'STAGE = "MLP"\nimport no_such_module_here\n',
        },
    )
    result = run_pytest(root, "-n", "0", "--continue-on-collection-errors")
    assert result.returncode == 1, result.stdout[-3000:]
    assert "could not collect tests/test_broken.py: its tests are not counted" in result.stdout
    assert "total                  1.5 / 1.5" in result.stdout


def test_with_workers_a_module_that_does_not_import_costs_only_its_own_tests(tmp_path):
    """A syntax error in one student file: the workers still run every other test, and the table
    names the module once (each worker collects it)."""
    root = make_suite(
        tmp_path,
        {
            "test_mlp_part.py": GRADED_MLP,
            "test_broken.py": 'STAGE = "MLP"\nx = (\n',
        },
    )
    result = run_pytest(root, "-n", "2")
    out = result.stdout
    assert result.returncode == 1, out[-3000:]
    assert "1 passed, 1 error" in out, out[-3000:]
    assert out.count("could not collect tests/test_broken.py: its tests are not counted") == 1
    assert "total                  1.5 / 1.5   (100%)" in out, out[-1500:]


@WORKERS
def test_a_test_run_leaves_no_scratch_folder_behind(tmp_path, workers):
    """The conftest's Keras and matplotlib folder and the workers' grading folder go when pytest
    ends, and its workers make none of their own: thousands of runs must not fill /tmp."""
    root = make_suite(tmp_path / "suite", {"test_mlp_part.py": GRADED_MLP})
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    inherited = ("KERAS_HOME", "MPLCONFIGDIR")  # as a student's shell has them: not set
    env = {name: value for name, value in os.environ.items() if name not in inherited}
    env["TMPDIR"] = str(scratch)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *workers],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "total                  1.5 / 1.5" in result.stdout
    left = sorted(p.name for p in scratch.iterdir())
    assert left in ([], ["pytest-of-" + getpass.getuser()]), left  # pytest keeps its last 3 runs
