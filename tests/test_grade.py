"""Tests for tools/grade.py: grading submissions you can trust (not graded).

Most tests grade submissions of a tiny course made in tmp_path (two student files, two graded stages
and a hidden test; no TensorFlow), so each grading takes a second or two. The end-to-end gradings of
this repository's own course are in tests/test_grade_course.py (slow).
"""

import csv
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

CALC = '''\
"""The MLP stage of the tiny course."""


def double(x):
    """Returns 2 * x."""
    # BEGIN SOLUTION [MLP]: double it
    return 2 * x
    # END SOLUTION


def square(x):
    """Returns x * x."""
    # BEGIN SOLUTION [MLP]: square it
    return x * x
    # END SOLUTION
'''
SHAPES = '''\
"""The CNN stage of the tiny course."""

import numpy as np


def triple(x):
    """Returns 3 * x."""
    # BEGIN SOLUTION [CNN]: triple it
    return 3 * x
    # END SOLUTION


def ramp(n):
    """Returns [0, 1, ..., n - 1] as floats."""
    # BEGIN SOLUTION [CNN]: a ramp
    return np.arange(n, dtype=float)
    # END SOLUTION
'''
TEST_CALC = """\
import pytest

import calc

STAGE = "MLP"


@pytest.mark.points(2)
def test_double():
    assert calc.double(3) == 6, "double(3) should be 6"


@pytest.mark.points(3)
def test_square():
    assert calc.square(4) == 16, "square(4) should be 16"
"""
TEST_SHAPES = """\
import numpy as np
import pytest

import shapes

STAGE = "CNN"


@pytest.mark.points(1)
def test_triple():
    assert shapes.triple(2) == 6


@pytest.mark.points(4)
def test_ramp():
    np.testing.assert_allclose(shapes.ramp(5), [0, 1, 2, 3, 4], err_msg="ramp(5)")


@pytest.mark.points(1)
def test_triple_of_zero():
    assert shapes.triple(0) == 0
"""
TEST_HIDDEN = """\
import pytest

import shapes

STAGE = "CNN"


@pytest.mark.points(2)
def test_triple_of_a_negative():
    secret_expected = -9
    assert shapes.triple(-3) == secret_expected, "triple of a negative number"
"""
FULL = 2 + 3 + 1 + 4 + 1 + 2  # 13


def make_course(root: Path) -> Path:
    """A solution checkout of the tiny course: git-tracked, with this repository's test set-up."""
    files = {
        "calc.py": CALC,
        "shapes.py": SHAPES,
        "tests/test_calc.py": TEST_CALC,
        "tests/test_shapes.py": TEST_SHAPES,
        "tests/hidden/test_hidden_shapes.py": TEST_HIDDEN,
    }
    set_up = ("tests/conftest.py", "tests/grading.py", "tests/helpers.py", "pytest.ini")
    stub_error = ("plumbing/__init__.py", "plumbing/todo.py")  # the stubs raise its NotWrittenError
    for name in set_up + stub_error:
        files[name] = (REPO / name).read_text()
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run(["git", "-C", str(root), "add", "-A"], check=True)
    return root


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    return make_course(tmp_path_factory.mktemp("course"))


@pytest.fixture(scope="module")
def exercise(course, tmp_path_factory) -> Path:
    """The tiny course's exercise version, as a student gets it."""
    out = tmp_path_factory.mktemp("exercise") / "ex"
    subprocess.run(
        [
            sys.executable,
            str(REPO / "tools" / "make_exercise.py"),
            "--source",
            str(course),
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    return out


def student(tmp_path: Path, name: str, course: Path, **changes: str) -> Path:
    """A submission folder: the solution's student files, with some replaced by the given text."""
    folder = tmp_path / name
    folder.mkdir()
    for file_name in ("calc.py", "shapes.py"):
        text = changes.get(file_name.removesuffix(".py"), (course / file_name).read_text())
        (folder / file_name).write_text(text)
    return folder


def run_grade(course: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """tools/grade.py in a subprocess, started in the course's parent (where relative paths go)."""
    return subprocess.run(
        [sys.executable, str(REPO / "tools" / "grade.py"), "--solution", str(course), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=course.parent,
    )


def graded(course: Path, submission: Path, tmp_path: Path, *args: str) -> dict:
    """Grades one submission; returns its results.json, checked against Gradescope's format."""
    out = tmp_path / f"{submission.name}-results.json"
    result = run_grade(course, str(submission), "--results", str(out), *args)
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(out.read_text())
    check_gradescope_format(data)
    return data


def by_name(data: dict) -> dict:
    return {test["name"].split("::")[-1]: test for test in data["tests"]}


def stage_scores(data: dict) -> dict:
    return {stage: value["score"] for stage, value in data["extra_data"]["stages"].items()}


def check_gradescope_format(data: dict) -> None:
    """The fields and types of Gradescope's results.json specification, and our own promises."""
    formats = {"text", "html", "simple_format", "md", "ansi"}
    visibilities = {"visible", "hidden", "after_due_date", "after_published"}
    assert isinstance(data["score"], int | float) and isinstance(
        data["execution_time"], int | float
    )
    assert isinstance(data["output"], str) and data["output_format"] in formats
    assert data["test_output_format"] in formats and data["test_name_format"] in formats
    assert data["visibility"] in visibilities and data["stdout_visibility"] in visibilities
    assert isinstance(data["extra_data"], dict) and isinstance(data["tests"], list)
    for test in data["tests"]:
        assert isinstance(test["name"], str) and isinstance(test["number"], str)
        assert isinstance(test["score"], int | float) and isinstance(test["max_score"], int | float)
        assert test["status"] in ("passed", "failed"), test
        assert test["score"] == (test["max_score"] if test["status"] == "passed" else 0), test
        assert isinstance(test["output"], str) and test["output_format"] in formats
        assert test["visibility"] in visibilities and isinstance(test["tags"], list)
    assert data["score"] == sum(test["score"] for test in data["tests"])
    assert data["max_score"] == sum(test["max_score"] for test in data["tests"]), (
        "possible never shrinks"
    )


# ----------------------------------------------------------------------------- scores
def test_the_solution_scores_everything_and_the_exercise_nothing(course, exercise, tmp_path):
    solution = graded(course, student(tmp_path, "solution", course), tmp_path)
    assert (solution["score"], solution["max_score"]) == (FULL, FULL), solution["output"]
    assert stage_scores(solution) == {"MLP": 5, "CNN": 8}
    assert 0 < solution["execution_time"] < 60, "the submission's own time, its stages added up"

    empty = graded(course, exercise, tmp_path)
    assert (empty["score"], empty["max_score"]) == (0, FULL), empty["output"]
    assert by_name(empty)["test_double"]["output"] == "NOT IMPLEMENTED: calc.py::double"
    assert by_name(empty)["test_ramp"]["output"] == "NOT IMPLEMENTED: shapes.py::ramp"


def test_one_stage_written_scores_exactly_that_stage(course, exercise, tmp_path):
    folder = student(tmp_path, "mlp-only", course, shapes=(exercise / "shapes.py").read_text())
    data = graded(course, folder, tmp_path)
    assert stage_scores(data) == {"MLP": 5, "CNN": 0}, data["output"]


def test_a_missing_file_is_graded_as_the_unwritten_exercise_and_said(course, tmp_path):
    folder = student(tmp_path, "no-shapes", course)
    (folder / "shapes.py").unlink()
    data = graded(course, folder, tmp_path)
    assert stage_scores(data) == {"MLP": 5, "CNN": 0}
    assert (
        "shapes.py: not in the submission; graded as the unwritten exercise file" in data["output"]
    )


def test_the_same_work_gets_the_same_score(course, tmp_path):
    folder = student(tmp_path, "again", course, calc=CALC.replace("return x * x", "return x + x"))
    first, second = graded(course, folder, tmp_path), graded(course, folder, tmp_path)
    assert [t["score"] for t in first["tests"]] == [t["score"] for t in second["tests"]]
    assert [t["output"] for t in first["tests"]] == [t["output"] for t in second["tests"]]
    assert first["score"] == FULL - 3


# ---------------------------------------------------------------------- faults cost only themselves
def test_a_file_that_does_not_compile_costs_only_the_stages_that_load_it(course, tmp_path):
    folder = student(tmp_path, "syntax", course, calc=CALC.replace("return 2 * x", "return 2 *"))
    data = graded(course, folder, tmp_path)
    assert (data["score"], data["max_score"]) == (8, FULL), data["output"]
    assert (
        by_name(data)["test_double"]["output"]
        == "not run: calc.py line 7: SyntaxError: invalid syntax"
    )
    assert "calc.py line 7: SyntaxError: invalid syntax" in data["output"]


def test_an_endless_loop_times_out_and_the_rest_is_still_graded(course, tmp_path):
    endless = SHAPES.replace("    return 3 * x\n", "    while True:\n        x += 1\n")
    folder = student(tmp_path, "loop", course, shapes=endless)
    started = time.monotonic()
    data = graded(course, folder, tmp_path, "--timeout", "2")
    tests = by_name(data)
    assert tests["test_triple"]["output"] == "timed out after 2 s"
    assert tests["test_triple_of_zero"]["output"] == "timed out after 2 s"
    assert tests["test_ramp"]["status"] == "passed", (
        "the test after a timeout runs in a new process"
    )
    assert stage_scores(data) == {"MLP": 5, "CNN": 4}
    assert "cut off: tests/test_shapes.py::test_triple: timed out after 2 s" in data["output"]
    assert time.monotonic() - started < 60


def test_a_crash_in_a_test_or_at_import_costs_only_what_it_stopped(course, tmp_path):
    crash = SHAPES.replace("    return 3 * x\n", "    import os\n    os.abort()\n")
    data = graded(course, student(tmp_path, "abort", course, shapes=crash), tmp_path)
    expected = "the test process ended during this test (killed by signal 6)"
    assert by_name(data)["test_triple"]["output"] == expected
    assert by_name(data)["test_ramp"]["status"] == "passed"
    assert stage_scores(data) == {"MLP": 5, "CNN": 4}

    at_import = "raise SystemExit(0)\n" + CALC
    data = graded(course, student(tmp_path, "exit-at-import", course, calc=at_import), tmp_path)
    assert stage_scores(data) == {"MLP": 0, "CNN": 8}, data["output"]
    assert data["max_score"] == FULL
    assert by_name(data)["test_double"]["output"].startswith("not run: ")


# ----------------------------------------------------------------------- what a student cannot fake
def test_os_exit_during_collection_or_a_test_scores_no_more_than_the_honest_work(
    course, exercise, tmp_path
):
    stubs = (exercise / "calc.py").read_text()
    for name, text in [
        ("exit-in-test", stubs.replace("raise NotWrittenError", "os._exit(0)  #", 1)),
        ("exit-at-import", "import os\nos._exit(0)\n" + stubs),
    ]:
        text = text if text.startswith("import os") else "import os\n" + text
        data = graded(course, student(tmp_path, name, course, calc=text), tmp_path)
        assert stage_scores(data)["MLP"] == 0, (name, data["output"])
        assert data["max_score"] == FULL


PATCH_PLUGIN = 'import grading as _g\n_g.GradingPlugin.score = lambda self, t: t["points"]\n'
PATCH_ASSERT = (
    'import numpy\nnumpy.testing.__dict__["assert_" + "allclose"] = lambda *a, **k: None\n'
)


@pytest.mark.parametrize(
    "patch,seen",
    [
        (PATCH_PLUGIN, "shapes.py line 1 imports grading"),
        (PATCH_ASSERT, "numpy.testing.assert_allclose was replaced"),
    ],
)
def test_patching_the_test_machinery_withholds_the_stage_and_says_so(
    course, exercise, tmp_path, patch, seen
):
    shapes = patch + (exercise / "shapes.py").read_text().replace(
        'raise NotWrittenError("shapes.py::ramp: a ramp")', "return None"
    )
    data = graded(course, student(tmp_path, "patcher", course, shapes=shapes), tmp_path)
    assert stage_scores(data)["CNN"] == 0, data["output"]
    assert stage_scores(data)["MLP"] == 5, "the other stage is graded as usual"
    assert "CNN: points withheld" in data["output"] and seen in data["output"], data["output"]


def test_rewriting_the_tests_while_they_run_withholds_the_stage(course, tmp_path):
    rewrite = textwrap.dedent("""\
        import os
        with open(os.path.join("te" + "sts", "test_shapes.py"), "a") as f:
            f.write("#")
        """)
    data = graded(course, student(tmp_path, "rewriter", course, shapes=rewrite + SHAPES), tmp_path)
    assert stage_scores(data) == {"MLP": 5, "CNN": 0}, data["output"]
    assert "tests/test_shapes.py was changed while the tests ran" in data["output"]


def test_shipped_results_tests_and_settings_are_ignored(course, exercise, tmp_path):
    folder = student(tmp_path, "shipper", course, calc=(exercise / "calc.py").read_text())
    (folder / "results.json").write_text(json.dumps({"score": 999, "tests": []}))
    (folder / "tests").mkdir()
    (folder / "tests" / "test_calc.py").write_text("STAGE = 'MLP'\n")
    (folder / "tests" / "conftest.py").write_text("import sys\nsys.exit(0)\n")
    (folder / "pytest.ini").write_text("[pytest]\naddopts = -p no:grade_child\n")
    data = graded(course, folder, tmp_path)
    assert stage_scores(data) == {"MLP": 0, "CNN": 8}
    assert json.loads((folder / "results.json").read_text())["score"] == 999, (
        "the submission is not written"
    )


def test_fake_result_lines_on_stdout_or_the_report_pipe_do_not_count(course, exercise, tmp_path):
    fake = textwrap.dedent("""\
        import json, os
        test = "tests/test_calc.py::test_double"
        event = {"token": "guess", "event": "end", "id": test, "outcome": "passed", "message": ""}
        line = json.dumps(event) + "\\n"
        print(line)
        for fd in range(3, 30):
            try:
                os.write(fd, line.encode())
            except OSError:
                pass
        """)
    data = graded(
        course,
        student(tmp_path, "forger", course, calc=fake + (exercise / "calc.py").read_text()),
        tmp_path,
    )
    assert stage_scores(data)["MLP"] == 0, data["output"]
    assert (
        "without this run's token" in data["output"]
        or "uses ._exit" in data["output"]
        or "points withheld" in data["output"]
    ), data["output"]


# ----------------------------------------------------------------------------- feedback
def test_failures_say_what_was_expected_and_what_came(course, tmp_path):
    off_by_one = SHAPES.replace("np.arange(n,", "np.arange(1, n + 1,")
    folder = student(tmp_path, "off-by-one", course, shapes=off_by_one)
    data = graded(course, folder, tmp_path)
    output = by_name(data)["test_ramp"]["output"]
    assert "ramp(5)" in output and "Mismatched elements: 5 / 5" in output, output
    assert len(output.splitlines()) <= 15


def test_hidden_tests_are_published_later_and_never_show_their_source(course, tmp_path):
    wrong = SHAPES.replace("return 3 * x", "return 3 * abs(x)")
    data = graded(course, student(tmp_path, "abs", course, shapes=wrong), tmp_path)
    hidden = by_name(data)["test_triple_of_a_negative"]
    assert hidden["visibility"] == "after_published" and hidden["status"] == "failed"
    assert hidden["output"] == "triple of a negative number", "the message only"
    assert "secret_expected" not in json.dumps(data), "no hidden source anywhere in the results"
    assert by_name(data)["test_triple"]["visibility"] == "visible"

    raising = SHAPES.replace("return 3 * x", "raise ValueError('negative') if x < 0 else 3 * x")
    data = graded(
        course,
        student(tmp_path, "raises", course, shapes=raising),
        tmp_path,
        "--hidden-visibility",
        "after_due_date",
    )
    hidden = by_name(data)["test_triple_of_a_negative"]
    assert hidden["output"] == "ValueError: negative" and hidden["visibility"] == "after_due_date"


# -------------------------------------------------------------------------- submissions and a class
def test_zip_and_git_submissions_grade_like_the_folder(course, tmp_path):
    folder = student(tmp_path, "alice", course, calc=CALC.replace("return x * x", "return x"))
    archive = tmp_path / "alice.zip"
    with zipfile.ZipFile(archive, "w") as z:  # zipped with its top folder, as students do
        for path in folder.iterdir():
            z.write(path, f"alice-checkout/{path.name}")
    bare = tmp_path / "alice-repo.git"
    subprocess.run(["git", "init", "-q", str(folder)], check=True)
    subprocess.run(["git", "-C", str(folder), "add", "-A"], check=True)
    subprocess.run(
        [
            "git",
            "-C",
            str(folder),
            "-c",
            "user.name=a",
            "-c",
            "user.email=a@b",
            "commit",
            "-qm",
            "x",
        ],
        check=True,
    )
    subprocess.run(["git", "clone", "-q", "--bare", str(folder), str(bare)], check=True)
    scores = [graded(course, path, tmp_path)["score"] for path in (folder, archive, bare)]
    assert scores == [FULL - 3] * 3


def test_a_symbolic_link_is_not_taken(course, tmp_path):
    folder = student(tmp_path, "linker", course)
    (folder / "calc.py").unlink()
    (folder / "calc.py").symlink_to(course / "calc.py")  # the instructor's solution
    data = graded(course, folder, tmp_path)
    assert stage_scores(data)["MLP"] == 0
    assert "calc.py: is a symbolic link; submit the file itself" in data["output"]


def test_a_class_gets_one_results_file_each_and_a_csv(course, exercise, tmp_path):
    (tmp_path / "class").mkdir()
    folders = [student(tmp_path / "class", name, course) for name in ("ann", "bob")] + [exercise]
    out, table = tmp_path / "results", tmp_path / "grades.csv"
    result = run_grade(course, *map(str, folders), "--results", str(out), "--csv", str(table))
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["ann.json", "bob.json", "ex.json"]
    rows = list(csv.DictReader(table.open()))
    assert [(r["student"], r["MLP"], r["CNN"], r["total"], r["max_score"]) for r in rows] == [
        ("ann", "5", "8", "13", "13"),
        ("bob", "5", "8", "13", "13"),
        ("ex", "0", "0", "0", "13"),
    ]
    assert "ann: 13 / 13" in result.stdout


def test_bad_commands_are_one_line_usage_errors(course, tmp_path):
    folder = student(tmp_path, "s", course)
    for args, expected in [
        ([str(folder)], "--results DIR_OR_FILE is required"),
        ([str(folder), "--results", str(folder / "r.json")], "inside the submission"),
        ([str(folder), "--results", "x.json", "--timeout", "0"], "must be positive"),
        ([str(folder), str(folder), "--results", "x.json"], "give a folder"),
        ([str(tmp_path / "nobody"), "--results", "x.json"], "no such file or folder"),
        ([str(course / "calc.py"), "--results", "x.json"], "not a folder, a .zip"),
    ]:
        result = run_grade(course, *args)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.count("\n") == 1 and expected in result.stderr, result.stderr


def test_a_hidden_test_named_like_a_visible_one_is_refused(tmp_path):
    course = make_course(tmp_path / "clash")
    shutil.copy(
        course / "tests/hidden/test_hidden_shapes.py", course / "tests/hidden/test_shapes.py"
    )
    subprocess.run(["git", "-C", str(course), "add", "-A"], check=True)
    result = run_grade(course, str(course), "--results", str(tmp_path / "r.json"))
    assert result.returncode == 1
    assert (
        "tests/hidden/test_shapes.py has the name of a visible test file; rename it"
        in result.stderr
    )


# ----------------------------------------------------------------------------- Gradescope
def test_the_autograder_zip_run_in_gradescopes_layout_writes_valid_results(course, tmp_path):
    archive = tmp_path / "autograder.zip"
    result = run_grade(course, "--autograder", str(archive))
    assert result.returncode == 0, result.stderr
    root = tmp_path / "autograder"
    with zipfile.ZipFile(archive) as z:
        names = z.namelist()
        z.extractall(root / "source")
    assert {"setup.sh", "run_autograder", "requirements.txt", "kit/manifest.json"} <= set(names)
    assert "return 2 * x" not in (root / "source/kit/tree/calc.py").read_text(), (
        "no solution inside"
    )
    student_files = student(
        tmp_path, "submission", course, calc=CALC.replace("return 2 * x", "return x")
    )
    shutil.move(student_files, root / "submission")
    (root / "results").mkdir()
    env = {**os.environ, "AUTOGRADER_ROOT": str(root), "AUTOGRADER_PYTHON": sys.executable}
    run = subprocess.run(
        ["bash", str(root / "source" / "run_autograder")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    data = json.loads((root / "results" / "results.json").read_text())
    check_gradescope_format(data)
    assert (data["score"], data["max_score"]) == (FULL - 2, FULL)
    assert by_name(data)["test_triple_of_a_negative"]["visibility"] == "after_published"
