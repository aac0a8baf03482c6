"""Tests for tools/make_exercise.py and the exercise version it writes.

The marker rules are checked on small sources; the whole repository is generated once into tmp_path,
then compared with the solution (git diff), checked (--check), imported, tested (pytest: every
graded test fails with NOT IMPLEMENTED, score 0) and run (train.py exits 2). Left out of the
exercise version.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import WORKERS
from plumbing.todo import NotWrittenError
from tools import make_exercise as mx

REPO = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------- one file
SOURCE = '''\
"""A module."""


def build(x):
    """Docstring stays."""
    y = x + 1
    # BEGIN SOLUTION [one]: double it
    # STUB: result = None
    result = 2 * y
    # END SOLUTION
    return result


class Net:
    def loss(self, x):
        def inner(z):
            # BEGIN SOLUTION [two]
            return z * z
            # END SOLUTION
        text = """
# BEGIN SOLUTION: inside a string, not a marker
"""
        return inner(x), text
'''

EXPECTED = '''\
"""A module."""

from plumbing.todo import NotWrittenError


def build(x):
    """Docstring stays."""
    y = x + 1
    # TODO [one]: double it
    result = None
    raise NotWrittenError("pkg/m.py::build: double it")
    return result


class Net:
    def loss(self, x):
        def inner(z):
            # TODO [two]: write this part (see the docstring)
            raise NotWrittenError("pkg/m.py::Net.loss: write this part (see the docstring)")
        text = """
# BEGIN SOLUTION: inside a string, not a marker
"""
        return inner(x), text
'''


def test_regions_become_todo_stub_and_raise():
    exercise, regions = mx.make_exercise_source(SOURCE, "pkg/m.py")
    assert [(r.stage, r.function, r.line) for r in regions] == [
        ("one", "pkg/m.py::build", 7),
        ("two", "pkg/m.py::Net.loss", 17),
    ]
    assert exercise == EXPECTED


def test_solved_stages_keep_their_solution():
    exercise, regions = mx.make_exercise_source(SOURCE, "pkg/m.py", solved=frozenset({"one"}))
    assert len(regions) == 2
    assert "result = 2 * y" in exercise and "pkg/m.py::build" not in exercise
    assert 'raise NotWrittenError("pkg/m.py::Net.loss' in exercise


def test_markdown_blocks_for_one_version_only():
    text = (
        "# Title\n<!-- BEGIN SOLUTION ONLY -->\nsolution text\n<!-- END SOLUTION ONLY -->\n"
        "<!-- BEGIN EXERCISE ONLY\nexercise text\nEND EXERCISE ONLY -->\nboth\n"
    )
    assert mx.make_exercise_markdown(text, "R.md") == "# Title\nexercise text\nboth\n"
    with pytest.raises(mx.ExerciseError, match="R.md:2: this block is never closed"):
        mx.make_exercise_markdown("x\n<!-- BEGIN SOLUTION ONLY -->\n", "R.md")
    with pytest.raises(mx.ExerciseError, match="R.md:1: END EXERCISE ONLY --> closes no block"):
        mx.make_exercise_markdown("END EXERCISE ONLY -->\n", "R.md")


def test_line_endings_and_files_without_markers_are_kept():
    crlf = SOURCE.replace("\n", "\r\n")
    exercise, _ = mx.make_exercise_source(crlf, "pkg/m.py")
    assert exercise == EXPECTED.replace("\n", "\r\n")
    plain = "def f():\n    return 1  # no markers here\n"
    assert mx.make_exercise_source(plain, "p.py") == (plain, [])


def test_the_stub_raises_the_named_error():
    exercise, _ = mx.make_exercise_source(SOURCE, "pkg/m.py")
    namespace = {}
    exec(compile(exercise, "m.py", "exec"), namespace)
    with pytest.raises(NotWrittenError, match=r"^pkg/m.py::build: double it$"):
        namespace["build"](1)


def test_every_stage_solved_leaves_the_file_as_it_was_without_the_import():
    exercise, _ = mx.make_exercise_source(SOURCE, "pkg/m.py", solved=frozenset({"one", "two"}))
    assert exercise == SOURCE


def test_a_long_raise_is_wrapped_as_ruff_format_writes_it_and_keeps_its_message():
    hint = "a hint long enough that the raise line would not fit in forty-five characters"
    source = _body(f"# BEGIN SOLUTION [s]: {hint}", "return x", "# END SOLUTION")
    message = f'        "m.py::f: {hint}"'
    for width, expected in (
        (None, [f'    raise NotWrittenError("m.py::f: {hint}")']),
        (100, ["    raise NotWrittenError(", message, "    )"]),  # the message on its own line
        (
            45,
            [
                "    raise NotWrittenError(",
                '        "m.py::f: a hint long enough that "',
                '        "the raise line would not fit in "',
                '        "forty-five characters"',
                "    )",
            ],
        ),
    ):
        exercise, _ = mx.make_exercise_source(source, "m.py", line_length=width)
        lines = exercise.splitlines()
        assert lines[lines.index(f"    # TODO [s]: {hint}") + 1 :] == expected
        namespace = {}
        exec(compile(exercise, "m.py", "exec"), namespace)
        with pytest.raises(NotWrittenError) as caught:
            namespace["f"](1)
        assert str(caught.value) == f"m.py::f: {hint}"


IMPORTS = """\
\"\"\"Docstring.\"\"\"

from __future__ import annotations

import os

import numpy as np
{first_party}

def f():
    # BEGIN SOLUTION [s]
    return os, np
    # END SOLUTION
"""


@pytest.mark.parametrize(
    "first_party,expected",
    [
        (  # among the first-party imports: `import x` lines, then `from` lines by module name
            "\nimport cnn\nfrom linear_model import head\nfrom plumbing.zzz import z\n",
            "\nimport cnn\nfrom linear_model import head\n{stub}\nfrom plumbing.zzz import z\n",
        ),
        ("\nimport cnn\n", "\nimport cnn\n{stub}\n"),  # after the last first-party import
        ("", "\n{stub}\n"),  # no first-party imports: a section of its own, after the others
    ],
)
def test_the_stubs_import_goes_where_ruff_sorts_it(first_party, expected):
    source = IMPORTS.format(first_party=first_party)
    modules = frozenset({"cnn", "linear_model", "plumbing"})
    exercise, _ = mx.make_exercise_source(source, "m.py", first_party=modules)
    head = IMPORTS.split("{first_party}")[0]
    assert exercise.startswith(head + expected.format(stub=mx.STUB_IMPORT) + "\n\ndef f():")


def test_the_first_party_modules_are_those_in_ruffs_source_folders():
    paths = ["cnn.py", "plumbing/todo.py", "README.md", "tests/helpers.py", "bench/common.py"]
    assert mx.first_party_modules(paths, [".", "tests"]) == {
        "cnn",
        "plumbing",
        "tests",
        "bench",
        "helpers",
    }


def test_the_files_with_stubs_get_per_file_ignores_in_the_exercises_ruff_config():
    config = '[lint]\nselect = ["F"]\n\n[lint.per-file-ignores]\n"train.py" = ["E402"]\n'
    exercise = mx.exercise_ruff_config(config, ["a.py", "b.py"])
    assert exercise == (
        '[lint]\nselect = ["F"]\n\n[lint.per-file-ignores]\n' + mx.STUB_IGNORES_NOTE + "\n"
        '"a.py" = ["F401", "F841", "B007"]\n"b.py" = ["F401", "F841", "B007"]\n'
        '"train.py" = ["E402"]\n'
    )
    assert mx.exercise_ruff_config("line-length = 100", ["a.py"]) == (
        "line-length = 100\n\n[lint.per-file-ignores]\n"
        + mx.STUB_IGNORES_NOTE
        + '\n"a.py" = ["F401", "F841", "B007"]\n'
    )
    assert mx.exercise_ruff_config(config, []) == config, (
        "no stubs (every stage --solved): no change"
    )
    with pytest.raises(
        mx.ExerciseError, match="give the files holding regions no per-file ignores"
    ):
        mx.exercise_ruff_config(config, ["train.py"])


def _body(*lines: str) -> str:
    return "def f(x):\n" + "".join(f"    {line}\n" for line in lines)


@pytest.mark.parametrize(
    "source,error",
    [
        (
            _body("# BEGIN SOLUTION [s]", "# BEGIN SOLUTION [s]", "return x", "# END SOLUTION"),
            "m.py:3: nested # BEGIN SOLUTION (the region opened at line 2 is not closed)",
        ),
        (
            _body("# BEGIN SOLUTION [s]", "return x"),
            "m.py:2: # BEGIN SOLUTION is never closed by # END SOLUTION",
        ),
        (
            _body("return x", "# END SOLUTION"),
            "m.py:3: stray # END SOLUTION without a # BEGIN SOLUTION",
        ),
        (_body("# STUB: y = 1", "return x"), "m.py:2: stray # STUB: outside a solution region"),
        (
            "# BEGIN SOLUTION [s]\nx = 1\n# END SOLUTION\n",
            "m.py:1: # BEGIN SOLUTION outside a function body",
        ),
        (
            _body("return x  # BEGIN SOLUTION [s]"),
            "m.py:2: a solution marker must be a whole-line comment",
        ),
        (
            _body("# BEGIN SOLUTIONS", "return x", "# END SOLUTION"),
            "m.py:2: malformed marker '# BEGIN SOLUTIONS'",
        ),
        (
            _body("# BEGIN SOLUTION: no stage", "return x", "# END SOLUTION"),
            "m.py:2: malformed marker",
        ),
        (
            "def f(x):\n    # BEGIN SOLUTION [s]\n    return x\n\n\n"
            "def g(x):\n    # END SOLUTION\n    return x\n",
            "m.py:7: # END SOLUTION is not in the function its region opened in (line 2)",
        ),
        ("def f(x):\n    return (x\n", "m.py:2: the solution does not parse"),
        (
            _body("# BEGIN SOLUTION [s]", "if x:", "# END SOLUTION", "    return x"),
            "m.py:2: the exercise version of this region does not parse",
        ),
    ],
)
def test_malformed_markers_name_file_and_line(source, error):
    with pytest.raises(mx.ExerciseError) as caught:
        mx.make_exercise_source(source, "m.py")
    assert str(caught.value).startswith(error), str(caught.value)


def test_every_problem_in_the_tree_is_listed(tmp_path, capsys):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "a.py").write_text(_body("# END SOLUTION", "return x"))
    (tmp_path / "b.py").write_text(_body("# BEGIN SOLUTION [s]", "return x"))
    subprocess.run(["git", "-C", str(tmp_path), "add", "a.py", "b.py"], check=True)
    assert mx.main(["--source", str(tmp_path), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert (
        "a.py:2: stray # END SOLUTION" in err and "b.py:2: # BEGIN SOLUTION is never closed" in err
    )
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
    for excluded in (
        "tests/hidden/test_hidden_cnn.py",
        "tests/test_make_exercise.py",
        "tests/test_stages.py",
        "tools/make_exercise.py",
        "docs/instructors.md",
    ):
        assert not (exercise_tree / excluded).exists(), f"{excluded} must be left out"
    assert os.access(exercise_tree / ".ci" / "run", os.X_OK), "the executable bit is kept"
    assert set(
        p.relative_to(exercise_tree).as_posix() for p in exercise_tree.rglob("*") if p.is_file()
    ) == set(solution_files()), "the exercise holds exactly the tracked files minus the exclusions"


def test_check_fails_after_a_region_is_edited(exercise_tree, tmp_path, capsys):
    edited = tmp_path / "edited"
    shutil.copytree(exercise_tree, edited)
    cnn = edited / "cnn.py"
    lines = cnn.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("    # TODO [CNN]: Conv2D")) + 1
    todo = lines[at - 1]  # the diff's hunk starts a line above it
    cnn.write_text(cnn.read_text().replace("# TODO [CNN]: Conv2D", "# TODO [CNN]: Dense", 1))
    (edited / "tests" / "hidden").mkdir()
    (edited / "tests" / "hidden" / "test_leaked.py").write_text("")
    assert mx.main(["--check", str(edited)]) == 1
    out = capsys.readouterr()
    assert out.out.splitlines() == [
        "cnn.py: differs from the generated version",
        "    --- cnn.py (generated)",
        "    +++ cnn.py (found)",
        f"    @@ -{at - 1},3 +{at - 1},3 @@",
        "     " + lines[at - 2],  # a line of context: a space, then the line
        "    -" + todo,
        "    +" + todo.replace("# TODO [CNN]: Conv2D", "# TODO [CNN]: Dense"),
        "     " + lines[at],
        "tests/hidden/test_leaked.py: not part of the exercise version (left out or removed)",
    ]
    assert "2 file(s) differ; regenerate it with --out" in out.err


def test_check_ignores_what_the_trees_gitignore_ignores(exercise_tree, tmp_path, capsys):
    used = tmp_path / "used"
    shutil.copytree(exercise_tree, used)
    for output in (
        "runs/mlp/metrics.csv",
        "data/cifar-10-batches-bin/data_batch_1.bin",
        "curves.png",
        "tests/__pycache__/conftest.cpython-311.pyc",
        ".ruff_cache/x",
        "comparison.md",
    ):
        (used / output).parent.mkdir(parents=True, exist_ok=True)
        (used / output).write_text("made by a run")
    assert mx.main(["--check", str(used)]) == 0, capsys.readouterr().out
    capsys.readouterr()
    (used / "notes.txt").write_text("not ignored")
    (used / "runs" / "keep.py").write_text("")  # in an ignored folder: ignored too
    assert mx.main(["--check", str(used)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "notes.txt: not part of the exercise version (left out or removed)"
    ]


def test_check_caps_each_files_diff():
    expected = "".join(f"line {n}\n" for n in range(100)).encode()
    found = expected.replace(b"line ", b"LINE ")
    diff = mx.file_diff(expected, found, "f.txt", limit=5)
    assert diff == [
        "    --- f.txt (generated)",
        "    +++ f.txt (found)",
        "    @@ -1,100 +1,100 @@",
        "    -line 0",
        "    -line 1",
        "    ... 198 more diff lines",
    ]
    assert mx.file_diff(b"a\n", b"a\r\n", "f.txt") == [
        "    (the same lines; the line endings or the final newline differ)"
    ]
    assert mx.file_diff(b"\xff\x00", b"\xfe", "f.bin") == [
        "    (binary: 2 bytes expected, 1 found)"
    ]


def solution_regions(source: str, path: str) -> tuple[set[int], list[str], int]:
    """From one pass over the markers: line numbers of every region (markers included), the stub
    lines, and the number of regions."""
    lines, stubs, begin, count = set(), [], None, 0
    for line, kind, text, _, _ in mx._markers(source, path):
        if kind == "begin":
            begin = line
        elif kind == "stub":
            stubs.append(text.strip())
        else:
            lines.update(range(begin, line + 1))
            count += 1
    return lines, stubs, count


def markdown_blocks(text: str) -> set[int]:
    """Line numbers of the solution-only blocks and of every block marker of a Markdown file."""
    lines, inside = set(), False
    for number, line in enumerate(text.splitlines(), start=1):
        kind = mx.MARKDOWN.get(line.strip())
        if kind or inside:
            lines.add(number)
        if kind == "solution":
            inside = True
        elif kind == "end solution":
            inside = False
    return lines


class AddedLines:
    """Checks the lines the exercise adds to one file: TODOs, stub lines, raises, and the import."""

    def __init__(self, path: str, stubs: list[str]):
        self.path, self.stubs = path, stubs
        self.raises = self.imports = 0
        self.continued = False  # inside a raise written over several lines
        self.in_import = False  # in the hunk that adds the import (and its blank line)

    def hunk(self) -> None:
        self.in_import = False

    def add(self, text: str) -> None:
        opening = f"raise {mx.STUB_ERROR}("
        if text == mx.STUB_IMPORT:
            self.imports += 1
            self.in_import = True
            return
        if self.in_import and text == "":
            return
        one_line = (f'{opening}"{self.path}::', f"{opening}'{self.path}::")
        self.raises += text.startswith(opening)
        message = text.startswith(('"', "'")) or text == ")"
        assert (
            text.startswith(("# TODO [", *one_line))
            or text == opening
            or text in self.stubs
            or (self.continued and message)
        ), f"{self.path}: added line {text!r} is not a TODO, a stub, the raise or the import"
        self.continued = text == opening or (self.continued and text != ")")


def test_diff_with_the_solution_is_only_regions_versus_stubs(exercise_tree, tmp_path):
    solution = tmp_path / "solution"
    for path in solution_files():
        (solution / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / path, solution / path)  # with its mode, as the generator keeps it
    command = ["git", "diff", "--no-index", "--unified=0", "--no-color", solution, exercise_tree]
    diff = subprocess.run(command, capture_output=True, text=True)
    assert diff.returncode == 1, diff.stderr

    regions, added, path = {}, {}, None  # path -> (region lines, stubs, count); path -> AddedLines
    for line in diff.stdout.splitlines():
        if line.startswith("diff --git"):
            path = line.split(" b/")[0].split(str(solution).lstrip("/") + "/", 1)[1]
            if path == mx.RUFF_CONFIG:  # its own test: test_the_exercise_passes_its_own_ruff_check
                continue
            text = (REPO / path).read_text()
            markdown = path.endswith(".md")
            regions[path] = (
                (markdown_blocks(text), [], 0) if markdown else solution_regions(text, path)
            )
            added[path] = AddedLines(path, regions[path][1])
            assert regions[path][0], f"{path} differs but has no solution region"
        elif path == mx.RUFF_CONFIG:
            continue
        elif line.startswith("@@"):
            old_start, old_count = re.match(r"@@ -(\d+)(?:,(\d+))?", line).groups()
            old = range(int(old_start), int(old_start) + int(1 if old_count is None else old_count))
            outside = [n for n in old if n not in regions[path][0]]
            assert not outside, f"{path}: lines {outside} changed outside a solution region"
            added[path].hunk()
        elif line.startswith("+") and not line.startswith("+++"):
            assert not path.endswith(".md"), f"{path}: the exercise version only leaves lines out"
            added[path].add(line[1:].strip())
        elif line.startswith(("new file", "deleted file", "Binary", "old mode", "new mode")):
            pytest.fail(f"unexpected difference in the exercise version: {line}")
    assert set(regions) == {
        "cifar10_input.py",
        "mlp.py",
        "cnn.py",
        "numpy_mlp.py",
        "numpy_conv.py",
        "numpy_batch_norm.py",
        "README.md",
    }
    for path, (_, _, count) in regions.items():  # one TODO + raise per region, one import
        assert added[path].raises == count, (
            f"{path}: {added[path].raises} stubs for {count} regions"
        )
        assert added[path].imports == (0 if path.endswith(".md") else 1), path


def test_the_student_readme_names_every_stage_its_functions_tests_and_commands(exercise_tree):
    readme = (exercise_tree / "README.md").read_text()
    _, regions, _ = mx.build_exercise(REPO)
    for region in regions:
        function = region.function.split("::")[1]
        assert f"`{function}`" in readme, (
            f"the README's stage path lacks {function} ({region.stage})"
        )
    stages = (
        "augmentation",
        "mlp",
        "cnn",
        "batch_norm",
        "strided_dropout",
        "numpy_mlp",
        "numpy_conv",
    )
    for test_file in stages:
        assert f"pytest tests/test_{test_file}.py" in readme, test_file
    for command in (
        "python train.py --model linear",
        "python train.py --preset cnn ",
        "--preset cnn-bn",
        "--preset cnn-strided",
        "--preset cnn-large",
        "python numpy_mlp.py",
        "numpy_conv.py",
    ):
        assert command in readme, command
    for solution_only in (
        "docs/instructors.md",
        "tests/hidden",
        "--grades-json",
        "is the **solution**",
    ):
        assert solution_only not in readme, f"the student README mentions {solution_only!r}"
    assert (
        "This is the **exercise** version" in readme
        and "NOT IMPLEMENTED: mlp.py::build_mlp" in readme
    )


# ------------------------------------------------------------------------ the exercise's own checks
def test_the_exercise_passes_its_own_ruff_check_and_format_check(exercise_tree):
    ruff = [sys.executable, "-m", "ruff"]
    check = subprocess.run(
        [*ruff, "check", "--no-cache", "."], cwd=exercise_tree, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    fix = subprocess.run(
        [*ruff, "check", "--no-cache", "--fix", "--diff", "."],
        cwd=exercise_tree,
        capture_output=True,
        text=True,
    )
    assert (fix.returncode, fix.stdout) == (0, ""), f"ruff check --fix would change:\n{fix.stdout}"
    formatted = subprocess.run(
        [*ruff, "format", "--no-cache", "--check", "--diff", "."],
        cwd=exercise_tree,
        capture_output=True,
        text=True,
    )
    assert formatted.returncode == 0, f"ruff format would change:\n{formatted.stdout}"
    _, regions, _ = mx.build_exercise(REPO)
    assert (exercise_tree / mx.RUFF_CONFIG).read_text() == mx.exercise_ruff_config(
        (REPO / mx.RUFF_CONFIG).read_text(), sorted({r.path for r in regions})
    )


def test_the_exercise_names_no_file_it_does_not_ship(exercise_tree):
    _, _, excluded = mx.build_exercise(REPO)
    names = set()
    for path in excluded + [p.rstrip("/") for p in mx.exclude_patterns(REPO) if p.endswith("/")]:
        names |= {path, Path(path).name} if "." in Path(path).name else {path}
        if path.endswith(".py"):
            names.add(
                path.removesuffix(".py").replace("/", ".")
            )  # tools.make_exercise, as imported
    assert (
        "tools/make_exercise.py" in names
        and "tests/hidden" in names
        and "make_exercise.py" in names
    )
    found = []
    for path in sorted(p for p in exercise_tree.rglob("*") if p.is_file()):
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue  # the sample's binary files
        for number, line in enumerate(text.splitlines(), start=1):
            shipped = path.relative_to(exercise_tree).as_posix()
            found += [f"{shipped}:{number}: {name}" for name in sorted(names) if name in line]
    assert not found, "the exercise names files it does not ship:\n" + "\n".join(found)


SKIP_LESSON = '''\
from plumbing.todo import NotWrittenError


def unwritten():
    """Not written yet, as the exercise ships it."""
    # TODO [MLP]: the hint
    raise NotWrittenError("lesson.py::unwritten: the hint")


def written():
    return 1
'''

SKIP_TESTS = """\
import sys

import lesson


def test_calls_a_stub():
    lesson.unwritten()


def test_runs_a_command_that_stops_at_a_stub():  # as train.py's main reports it, then returns 2
    line = "NOT IMPLEMENTED: lesson.py::unwritten: the hint; write it (see the TODO there)"
    print(line, file=sys.stderr)
    assert 2 == 0


def test_fails_for_a_reason_of_its_own():  # it names a function that is written: a real failure
    print("NOT IMPLEMENTED: lesson.py::written", file=sys.stderr)
    assert lesson.written() == 2
"""

SKIP_GRADED = """\
import pytest

import lesson

STAGE = "MLP"


@pytest.mark.points(1)
def test_graded():
    lesson.unwritten()
"""


@WORKERS
def test_ungraded_tests_skip_naming_the_stage_they_need_and_graded_ones_fail(tmp_path, workers):
    for name in (
        "conftest.py",
        "grading.py",
        "helpers.py",
    ):  # the real plugin, on three small modules
        shutil.copy(REPO / "tests" / name, tmp_path / name)
    (tmp_path / "plumbing").mkdir()  # the stubs' error, which the plugin and the stubs import
    for name in ("__init__.py", "todo.py"):
        shutil.copy(REPO / "plumbing" / name, tmp_path / "plumbing" / name)
    shutil.copy(REPO / "pytest.ini", tmp_path / "pytest.ini")
    (tmp_path / "pytest.ini").write_text(
        (REPO / "pytest.ini").read_text().replace("testpaths = tests", "")
    )
    (tmp_path / "lesson.py").write_text(SKIP_LESSON)
    (tmp_path / "test_ungraded.py").write_text(SKIP_TESTS)
    (tmp_path / "test_graded.py").write_text(SKIP_GRADED)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-v",
            "-rfs",
            *workers,
            "test_ungraded.py",
            "test_graded.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    # -v prints "test_x.py::test_y PASSED" in one process, "[gw0] [ 50%] PASSED test_x.py::test_y"
    # from workers
    one = re.findall(r"^(test_\w+\.py::\w+) ([A-Z]+)", run.stdout, re.MULTILINE)
    many = re.findall(r"^\[gw\d+\] \[ *\d+%\] ([A-Z]+) (test_\w+\.py::\w+)", run.stdout, re.M)
    outcomes = dict(one + [(name, outcome) for outcome, name in many])
    assert outcomes == {
        "test_ungraded.py::test_calls_a_stub": "SKIPPED",
        "test_ungraded.py::test_runs_a_command_that_stops_at_a_stub": "SKIPPED",
        "test_ungraded.py::test_fails_for_a_reason_of_its_own": "FAILED",
        "test_graded.py::test_graded": "FAILED",
    }, run.stdout
    reason = "needs lesson.py::unwritten (stage MLP): write it, then run again"
    skips = re.findall(r"^SKIPPED \[1\] test_ungraded\.py:\d+: (.*)$", run.stdout, re.MULTILINE)
    assert skips == [reason] * 2, run.stdout
    assert (
        "FAILED test_graded.py::test_graded - NOT IMPLEMENTED: lesson.py::unwritten" in run.stdout
    )


@pytest.mark.slow
def test_on_the_exercise_no_ungraded_test_fails_and_each_skip_names_what_to_write(exercise_tree):
    modules = (exercise_tree / "tests").glob("test_*.py")
    ungraded = sorted(
        p.relative_to(exercise_tree).as_posix()
        for p in modules
        if not re.search(r"^STAGE = ", p.read_text(), re.MULTILINE)
    )
    assert "tests/test_train.py" in ungraded and "tests/test_mlp.py" not in ungraded
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rfEs", *ungraded],
        cwd=exercise_tree,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    needs = re.findall(
        r"^SKIPPED \[\d+\] [\w/.]+:\d+: needs ([\w/.]+::[\w.]+) \(stage ([^)]+)\): "
        r"write it, then run again$",
        run.stdout,
        re.MULTILINE,
    )
    assert ("mlp.py", "MLP") in {(where.split("::")[0], stage) for where, stage in needs}, (
        run.stdout[-3000:]
    )
