"""Tests for tools/make_exercise.py and the exercise version it writes.

The marker rules are checked on small sources; the whole repository is generated once into tmp_path,
then compared with the solution (git diff), checked (--check), imported, tested (pytest: every graded
test fails with NOT IMPLEMENTED, score 0) and run (train.py exits 2). Left out of the exercise version.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tools import make_exercise as mx

REPO = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------- one file
SOURCE = '''\
"""A module."""


def build(x):
    """Docstring stays."""
    y = x + 1
    # BEGIN SOLUTION: double it
    # STUB: result = None
    result = 2 * y
    # END SOLUTION
    return result


class Net:
    def loss(self, x):
        def inner(z):
            # BEGIN SOLUTION
            return z * z
            # END SOLUTION
        text = """
# BEGIN SOLUTION: inside a string, not a marker
"""
        return inner(x), text
'''

EXPECTED = '''\
"""A module."""


def build(x):
    """Docstring stays."""
    y = x + 1
    # TODO: double it
    result = None
    raise NotImplementedError("pkg/m.py::build: double it")
    return result


class Net:
    def loss(self, x):
        def inner(z):
            # TODO: write this part (see the docstring)
            raise NotImplementedError("pkg/m.py::Net.loss: write this part (see the docstring)")
        text = """
# BEGIN SOLUTION: inside a string, not a marker
"""
        return inner(x), text
'''


def test_regions_become_todo_stub_and_raise():
    exercise, regions = mx.make_exercise_source(SOURCE, "pkg/m.py")
    assert regions == 2
    assert exercise == EXPECTED


def test_line_endings_and_files_without_markers_are_kept():
    crlf = SOURCE.replace("\n", "\r\n")
    exercise, _ = mx.make_exercise_source(crlf, "pkg/m.py")
    assert exercise == EXPECTED.replace("\n", "\r\n")
    plain = "def f():\n    return 1  # no markers here\n"
    assert mx.make_exercise_source(plain, "p.py") == (plain, 0)


def test_the_stub_raises_the_named_error():
    exercise, _ = mx.make_exercise_source(SOURCE, "pkg/m.py")
    namespace = {}
    exec(compile(exercise, "m.py", "exec"), namespace)
    with pytest.raises(NotImplementedError, match=r"^pkg/m.py::build: double it$"):
        namespace["build"](1)


def _body(*lines: str) -> str:
    return "def f(x):\n" + "".join(f"    {line}\n" for line in lines)


@pytest.mark.parametrize("source,error", [
    (_body("# BEGIN SOLUTION", "# BEGIN SOLUTION", "return x", "# END SOLUTION"),
     "m.py:3: nested # BEGIN SOLUTION (the region opened at line 2 is not closed)"),
    (_body("# BEGIN SOLUTION", "return x"), "m.py:2: # BEGIN SOLUTION is never closed by # END SOLUTION"),
    (_body("return x", "# END SOLUTION"), "m.py:3: stray # END SOLUTION without a # BEGIN SOLUTION"),
    (_body("# STUB: y = 1", "return x"), "m.py:2: stray # STUB: outside a solution region"),
    ("# BEGIN SOLUTION\nx = 1\n# END SOLUTION\n", "m.py:1: # BEGIN SOLUTION outside a function body"),
    (_body("return x  # BEGIN SOLUTION"), "m.py:2: a solution marker must be a whole-line comment"),
    (_body("# BEGIN SOLUTIONS", "return x", "# END SOLUTION"), "m.py:2: malformed marker '# BEGIN SOLUTIONS'"),
    ("def f(x):\n    # BEGIN SOLUTION\n    return x\n\n\ndef g(x):\n    # END SOLUTION\n    return x\n",
     "m.py:7: # END SOLUTION is not in the function its region opened in (line 2)"),
    ("def f(x):\n    return (x\n", "m.py:2: the solution does not parse"),
    (_body("# BEGIN SOLUTION", "if x:", "# END SOLUTION", "    return x"),
     "m.py:2: the exercise version of this region does not parse"),
])
def test_malformed_markers_name_file_and_line(source, error):
    with pytest.raises(mx.ExerciseError) as caught:
        mx.make_exercise_source(source, "m.py")
    assert str(caught.value).startswith(error), str(caught.value)


def test_every_problem_in_the_tree_is_listed(tmp_path, capsys):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "a.py").write_text(_body("# END SOLUTION", "return x"))
    (tmp_path / "b.py").write_text(_body("# BEGIN SOLUTION", "return x"))
    assert mx.main(["--source", str(tmp_path), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "a.py:2: stray # END SOLUTION" in err and "b.py:2: # BEGIN SOLUTION is never closed" in err
    assert not (tmp_path / "out").exists(), "nothing is written when a marker is wrong"


def test_out_must_be_new_or_empty(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert mx.main(["--out", str(tmp_path)]) == 2
    assert "is not empty (notes.txt ...)" in capsys.readouterr().err
    assert (tmp_path / "notes.txt").read_text() == "mine"


# ----------------------------------------------------------------------------- the whole repository
@pytest.fixture(scope="module")
def exercise_tree(tmp_path_factory) -> Path:
    if not (REPO / ".git").exists():
        message = f"{REPO} is not a git checkout; tools/make_exercise.py lists files with git"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    out = tmp_path_factory.mktemp("exercise") / "exercise"
    assert mx.main(["--out", str(out)]) == 0
    return out


def solution_files() -> list[str]:
    patterns = mx.exclude_patterns(REPO)
    return [path for path in mx.repository_files(REPO) if not mx.is_excluded(path, patterns)]


def test_generation_is_deterministic_and_check_passes(exercise_tree, tmp_path, capsys):
    again = tmp_path / "again"
    assert mx.main(["--out", str(again)]) == 0
    assert mx.main(["--check", str(again)]) == 0
    assert mx.main(["--check", str(exercise_tree)]) == 0
    assert "matches the exercise version" in capsys.readouterr().out
    for excluded in ("tests/hidden/test_hidden_cnn.py", "tests/test_make_exercise.py", "tools/make_exercise.py"):
        assert not (exercise_tree / excluded).exists(), f"{excluded} must be left out"
    assert os.access(exercise_tree / ".ci" / "run", os.X_OK), "the executable bit is kept"


def test_check_fails_after_a_region_is_edited(exercise_tree, tmp_path, capsys):
    edited = tmp_path / "edited"
    shutil.copytree(exercise_tree, edited)
    cnn = edited / "cnn.py"
    cnn.write_text(cnn.read_text().replace("# TODO: a Conv2D layer", "# TODO: a Dense layer", 1))
    (edited / "tests" / "hidden").mkdir()
    (edited / "tests" / "hidden" / "test_leaked.py").write_text("")
    assert mx.main(["--check", str(edited)]) == 1
    out = capsys.readouterr()
    assert out.out.splitlines() == ["cnn.py: differs from the generated version",
                                    "tests/hidden/test_leaked.py: not part of the exercise version (left out or removed)"]
    assert "2 file(s) differ; regenerate it with --out" in out.err


def solution_regions(source: str, path: str) -> tuple[set[int], list[str], int]:
    """From one pass over the markers: line numbers of every region (markers included), the stub
    lines, and the number of regions."""
    lines, stubs, begin, count = set(), [], None, 0
    for line, kind, text, _ in mx._markers(source, path):
        if kind == "begin":
            begin = line
        elif kind == "stub":
            stubs.append(text.strip())
        else:
            lines.update(range(begin, line + 1))
            count += 1
    return lines, stubs, count


def test_diff_with_the_solution_is_only_regions_versus_stubs(exercise_tree, tmp_path):
    solution = tmp_path / "solution"
    for path in solution_files():
        (solution / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / path, solution / path)  # with its mode, as the generator keeps it
    diff = subprocess.run(["git", "diff", "--no-index", "--unified=0", "--no-color", str(solution),
                           str(exercise_tree)], capture_output=True, text=True)
    assert diff.returncode == 1, diff.stderr

    regions, raises, path = {}, {}, None  # path -> (region lines, stubs, region count); path -> raises added
    for line in diff.stdout.splitlines():
        if line.startswith("diff --git"):
            path = line.split(" b/")[0].split(str(solution).lstrip("/") + "/", 1)[1]
            regions[path], raises[path] = solution_regions((REPO / path).read_text(), path), 0
            assert regions[path][0], f"{path} differs but has no solution region"
        elif line.startswith("@@"):
            old_start, old_count = re.match(r"@@ -(\d+)(?:,(\d+))?", line).groups()
            old = range(int(old_start), int(old_start) + int(1 if old_count is None else old_count))
            outside = [n for n in old if n not in regions[path][0]]
            assert not outside, f"{path}: lines {outside} changed outside a solution region"
        elif line.startswith("+") and not line.startswith("+++"):
            text = line[1:].strip()
            raises[path] += text.startswith("raise NotImplementedError(")
            stub_raise = (f'raise NotImplementedError("{path}::', f"raise NotImplementedError('{path}::")
            assert text.startswith(("# TODO: ", *stub_raise)) or text in regions[path][1], \
                f"{path}: added line {text!r} is not a TODO, a stub or the raise"
        elif line.startswith(("new file", "deleted file", "Binary", "old mode", "new mode")):
            pytest.fail(f"unexpected difference in the exercise version: {line}")
    assert set(regions) == {"cifar10_input.py", "linear_model.py", "mlp.py", "cnn.py", "train.py", "numpy_mlp.py"}
    for path, (_, _, count) in regions.items():  # one TODO + raise per region
        assert raises[path] == count, f"{path}: {raises[path]} stubs for {count} regions"


# ----------------------------------------------------------------------------- running the exercise version
@pytest.mark.slow
def test_every_module_imports_and_train_py_names_the_first_missing_piece(exercise_tree, mini_dir, tmp_path):
    script = textwrap.dedent("""
        import importlib, pathlib, sys
        root = pathlib.Path.cwd()
        sys.path[:0] = [str(root), str(root / "bench")]
        names = sorted([p.stem for p in root.glob("*.py")] + [p.stem for p in root.glob("bench/*.py")]
                       + ["tools." + p.stem for p in root.glob("tools/*.py") if p.stem != "__init__"])
        for name in names:
            importlib.import_module(name)
        print(" ".join(names))
        sys.exit(importlib.import_module("train").main(sys.argv[1:]))  # as `python train.py ...` does
        """)
    result = subprocess.run([sys.executable, "-c", script, "--data-dir", str(mini_dir.parent), "--run-dir",
                             str(tmp_path / "runs"), "--epochs", "1"], cwd=exercise_tree, capture_output=True, text=True)
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    imported = result.stdout.splitlines()[0].split()
    assert {"cifar10_input", "cnn", "linear_model", "mlp", "numpy_mlp", "train", "common", "tools.model_table"} <= set(imported)
    assert result.returncode == 2, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("NOT IMPLEMENTED: cnn.py::build_cnn: ") and last.endswith("then run again"), last
    assert not list((tmp_path / "runs").glob("*")), "no run folder is left behind"


@pytest.mark.slow
def test_pytest_on_the_exercise_version_scores_zero(exercise_tree, tmp_path):
    graded = exercise_tree.parent / "graded"  # the exercise plus the hidden tests, as a grader runs it
    shutil.copytree(exercise_tree, graded)
    shutil.copytree(REPO / "tests" / "hidden", graded / "tests" / "hidden")
    # -m points: every module is collected, only the graded tests run (the others take time and are not scored)
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-m", "points",
                             "--grades-json", str(tmp_path / "grades.json")], cwd=graded, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 1, result.stdout[-3000:]  # failures: not 2 (collection), 4 (usage) or 5 (none)
    assert "error" not in result.stdout.splitlines()[-1], "every module collects and no fixture errors"
    grades = json.loads((tmp_path / "grades.json").read_text())
    assert grades["score"] == 0 and grades["max_score"] > 100
    modules = {test["name"].split("::")[0] for test in grades["tests"]}
    assert modules == {"tests/test_linear.py", "tests/test_mlp.py", "tests/test_cnn.py", "tests/test_training.py",
                       "tests/test_numpy_mlp.py", "tests/hidden/test_hidden_cnn.py"}
    not_stubbed = [t["name"] for t in grades["tests"] if not t["output"].startswith("NOT IMPLEMENTED: ")]
    assert not not_stubbed, f"graded tests that fail for another reason than a stub: {not_stubbed}"
    assert "total            0 / " in result.stdout
