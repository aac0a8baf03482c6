"""Grades one submission or a whole class, from the instructor's solution checkout.

    python tools/grade.py SUBMISSION [SUBMISSION ...] --results DIR_OR_FILE [--csv grades.csv]
    python tools/grade.py --autograder autograder.zip        # the package Gradescope runs

A SUBMISSION is a folder (a student's checkout), a .zip, or a git repository (bare, or a path or
file:// URL ending in .git). Only the files students edit (those holding solution regions) are taken
from it, into a fresh exercise tree built from this checkout: tests, conftest.py, pytest.ini and the
given code always come from the instructor.

How a grade stays trustworthy (docs/instructors.md says more):
- The points come from a manifest made from the solution (test id -> stage -> points), so
  "possible" never shrinks: a test that did not run, timed out or could not be collected scores 0.
- Each stage runs in a child process of its own, with a timeout per test; a crash or a hang costs
  only the test it happened in (a new child runs the tests left).
- This process runs no student code. It counts only the outcomes the child reports on a private
  pipe, each line signed with a token the student's code never sees. A student file that reaches for
  the test machinery, or a run in which pytest, numpy.testing, TensorFlow or Keras functions were
  replaced, has the points of the stages concerned withheld, and the results say why.
- Results follow Gradescope's results.json format and are written outside the submission.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import csv
import hashlib
import io
import json
import os
import re
import secrets
import select
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

TOOLS = Path(__file__).resolve().parent
sys.path.insert(0, str(TOOLS.parent))
from plumbing.errors import DataError, OneLineParser, UsageError, report  # noqa: E402

KIT_MANIFEST = "manifest.json"
# in the solution checkout (git-ignored): the manifest, remade when files change
CACHE = ".grading-cache"
TIMEOUT_FACTOR = 10.0  # a test may take this many times the solution's own time ...
MIN_TIMEOUT = 10.0  # ... but never less than this many seconds
MIN_COLLECT_TIMEOUT = 90.0  # importing the tests (TensorFlow, Keras) before the first one starts
MAX_FILE_BYTES = 1_000_000  # a student file larger than this is not taken
MAX_REPORT_LINE = 1_000_000  # bytes: a longer line from a child is not a report
VISIBILITIES = ("visible", "hidden", "after_due_date", "after_published")
SKIPPED_FOLDERS = {".git", "__pycache__", "venv", ".venv", "data", "runs", "node_modules"}


# -------------------------------------------------------------------------- the kit: what is graded
@dataclass
class Kit:
    """Everything a grade is made from, none of it from a student: the exercise tree with the hidden
    tests (path -> bytes), the files students edit, and the manifest of graded tests."""

    files: dict[str, bytes]
    student_files: list[str]
    tests: dict[str, dict]  # test id -> {"stage", "points", "hidden", "seconds"} in course order
    stages: list[str]
    collect_seconds: float = 10.0
    preload: list[str] = field(default_factory=list)

    def stage_tests(self, stage: str) -> list[str]:
        return [test_id for test_id, test in self.tests.items() if test["stage"] == stage]

    def total(self) -> float:
        return sum(test["points"] for test in self.tests.values())

    def save(self, folder: Path) -> None:
        for path, data in self.files.items():
            (folder / "tree" / path).parent.mkdir(parents=True, exist_ok=True)
            (folder / "tree" / path).write_bytes(data)
        manifest = dict(
            student_files=self.student_files,
            tests=self.tests,
            stages=self.stages,
            collect_seconds=self.collect_seconds,
            preload=self.preload,
        )
        (folder / KIT_MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")

    @classmethod
    def load(cls, folder: Path) -> Kit:
        try:
            manifest = json.loads((folder / KIT_MANIFEST).read_text())
        except (OSError, ValueError) as err:
            raise DataError(
                f"--kit {folder}: no readable {KIT_MANIFEST} ({err}); make the kit again "
                f"with --autograder"
            ) from None
        tree = folder / "tree"
        files = {
            p.relative_to(tree).as_posix(): p.read_bytes()
            for p in sorted(tree.rglob("*"))
            if p.is_file()
        }
        return cls(
            files,
            manifest["student_files"],
            manifest["tests"],
            manifest["stages"],
            manifest["collect_seconds"],
            manifest["preload"],
        )


def graded_modules(files: dict[str, bytes]) -> dict[str, str]:
    """Test module path -> its STAGE, for the modules that set one (read with ast, not imported)."""
    stages = {}
    for path, data in files.items():
        if not (
            path.startswith("tests/")
            and Path(path).name.startswith("test_")
            and path.endswith(".py")
        ):
            continue
        for node in ast.parse(data).body:
            if (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and getattr(node.targets[0], "id", None) == "STAGE"
                and isinstance(node.value, ast.Constant)
            ):
                stages[path] = node.value.value
    return stages


def check_hidden_names(files: dict[str, bytes]) -> None:
    """A hidden test file named like a visible one would replace it in pytest's module cache."""
    visible = {
        Path(p).name for p in files if p.startswith("tests/") and not p.startswith("tests/hidden/")
    }
    clashes = sorted(p for p in files if p.startswith("tests/hidden/") and Path(p).name in visible)
    if clashes:
        raise DataError(
            f"{clashes[0]} has the name of a visible test file; rename it (for example "
            f"{Path(clashes[0]).with_name('test_hidden_' + Path(clashes[0]).name[5:])})"
        )


def kit_from_solution(root: Path, jobs: int) -> Kit:
    """The kit for a solution checkout: its exercise version plus the hidden tests, and a manifest
    made by running the solution's graded tests (cached in .grading-cache/ until a file changes)."""
    import make_exercise

    files, regions, _ = make_exercise.build_exercise(root)
    files = {path: data for path, (data, _) in files.items()}
    for path in make_exercise.repository_files(root):
        if path.startswith("tests/hidden/"):
            files[path] = (root / path).read_bytes()
    check_hidden_names(files)
    student_files = sorted({region.path for region in regions})
    solution = {path: (root / path).read_bytes() for path in student_files}
    digest = hashlib.sha256()
    for path, data in sorted(
        {**files, **{"solution/" + p: d for p, d in solution.items()}}.items()
    ):
        digest.update(path.encode() + b"\0" + hashlib.sha256(data).digest())
    digest.update((TOOLS / "grade_child.py").read_bytes())
    cached = root / CACHE / f"manifest-{digest.hexdigest()[:16]}.json"
    if cached.is_file():
        manifest = json.loads(cached.read_text())
    else:
        manifest = measure_solution(files, student_files, solution, jobs)
        cached.parent.mkdir(exist_ok=True)
        (cached.parent / ".gitignore").write_text("*\n")
        write_results(cached, manifest)  # atomically: two graders may share the checkout
    return Kit(
        files,
        student_files,
        manifest["tests"],
        manifest["stages"],
        manifest["collect_seconds"],
        manifest["preload"],
    )


def course_stages(files: dict[str, bytes], found: set[str]) -> list[str]:
    """The stages in course order: tests/grading.py's STAGES, then any other found in the tests."""
    order = []
    for node in ast.parse(files.get("tests/grading.py", b"")).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "STAGES":
            order = [element.value for element in node.value.elts]
    return [stage for stage in order if stage in found] + sorted(found - set(order))


def imported_modules(data: bytes, top_level_only: bool = False) -> set[str]:
    """The modules a Python file imports (their first names), read with ast."""
    tree = ast.parse(data)
    nodes = tree.body if top_level_only else ast.walk(tree)
    names = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def measure_solution(files, student_files, solution, jobs: int) -> dict:
    """Runs the solution's graded tests, stage by stage, to learn every test's stage, points and
    time.

    Raises:
        DataError: when a graded test fails on the solution (a grade made with it would be unfair).
    """
    modules = graded_modules(files)
    stages = course_stages(files, set(modules.values()))
    preload = sorted(
        {"tensorflow", "keras"} & set().union(*(imported_modules(files[m]) for m in modules))
    )
    tree_files = {**files, **solution}

    def one(stage: str) -> StageRun:
        paths = [path for path, module_stage in modules.items() if module_stage == stage]
        run = StageRun(
            tree_files,
            paths,
            None,
            student_files,
            hidden=set(),
            preload=preload,
            timeouts={},
            collect_timeout=600,
            default_timeout=600,
        )
        return run.execute()

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        runs = dict(zip(stages, pool.map(one, stages)))
    tests, failed, collect_seconds = {}, [], 0.0
    for stage, run in runs.items():
        collect_seconds = max(collect_seconds, run.collect_seconds)
        failed += [
            f"{test_id} ({outcome['message'].splitlines()[0] if outcome['message'] else ''})"
            for test_id, outcome in run.outcomes.items()
            if outcome["status"] != "passed"
        ]
        failed += [f"{path}: {message}" for path, message in run.collect_errors.items()]
        for test_id, described in run.described.items():
            tests[test_id] = dict(
                stage=stage,
                points=described["points"],
                hidden=test_id.startswith("tests/hidden/"),
                seconds=round(run.outcomes.get(test_id, {}).get("seconds", 0.0), 2),
            )
    if not tests:
        raise DataError(
            "no graded test was collected from the solution; run pytest -m points there"
        )
    if failed:
        raise DataError(
            f"the solution fails {len(failed)} graded test(s), so nobody can be graded "
            f"fairly: {failed[0]}{' ...' if len(failed) > 1 else ''}; fix the solution first"
        )
    return dict(
        tests=tests, stages=stages, collect_seconds=round(collect_seconds, 1), preload=preload
    )


# ---------------------------------------------------------------------------- one stage, in a child
def write_tree(folder: Path, files: dict[str, bytes]) -> None:
    for path, data in files.items():
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def child_environment(home: Path) -> dict[str, str]:
    """The child's environment: a scratch home, no data folders or URLs of the instructor's, no GPU
    (the same work gets the same score on any grading machine), and the reporter plugin on the
    path."""
    keep = ("PATH", "LANG", "LC_ALL", "SYSTEMROOT", "TMPDIR", "VIRTUAL_ENV")
    env = {name: os.environ[name] for name in keep if name in os.environ}
    env.update(
        HOME=str(home),
        KERAS_HOME=str(home / "keras"),
        MPLCONFIGDIR=str(home / "mpl"),
        MPLBACKEND="Agg",
        TF_CPP_MIN_LOG_LEVEL="2",
        CUDA_VISIBLE_DEVICES="",
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONHASHSEED="0",
        PYTHONPATH=str(TOOLS),
        COLUMNS="100",
        OMP_NUM_THREADS="1",
        TF_NUM_INTEROP_THREADS="1",
        TF_NUM_INTRAOP_THREADS="1",
    )
    return env


class StageRun:
    """Runs some test modules in child processes and records each test's outcome, never trusting the
    child: only lines signed with this run's token count, a hang is killed at its deadline, and
    after a crash or a timeout a new child runs the tests that are left."""

    def __init__(
        self,
        files,
        paths,
        wanted,
        student_files,
        *,
        hidden,
        preload,
        timeouts,
        collect_timeout,
        default_timeout,
    ):
        self.files, self.paths, self.student_files = files, paths, student_files
        self.remaining = (
            list(wanted) if wanted is not None else None
        )  # None: all (the solution run)
        self.hidden, self.preload, self.timeouts = hidden, preload, timeouts
        self.collect_timeout, self.default_timeout = collect_timeout, default_timeout
        self.outcomes: dict[str, dict] = {}  # test id -> status, message, seconds
        self.described: dict[str, dict] = {}  # test id -> points (the solution run only)
        self.collect_errors: dict[str, str] = {}
        self.tampering: list[str] = []
        self.collect_seconds = 0.0
        self.seconds = 0.0  # wall time of execute()
        self.last_exit = ""  # how the last child ended, when it ended without finishing

    def execute(self) -> StageRun:
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="grade-") as scratch:
            scratch = Path(scratch)
            write_tree(scratch / "tree", self.files)
            while self.remaining is None or self.remaining:
                before = len(self.outcomes)
                if self.run_child(scratch) or len(self.outcomes) == before:
                    break  # finished, or no progress: what is left is reported as not run
            for path, data in self.files.items():  # the instructor's files, as they were given
                target = scratch / "tree" / path
                if path not in self.student_files and (
                    not target.is_file() or target.read_bytes() != data
                ):
                    self.tampering.append(f"{path} was changed while the tests ran")
        self.seconds = time.monotonic() - started  # this stage's own time, whatever ran beside it
        return self

    def run_child(self, scratch: Path) -> bool:
        """One child: returns True when it reported the end of the session."""
        token, (read_end, write_end) = secrets.token_hex(16), os.pipe()
        setup = dict(
            token=token,
            fd=write_end,
            ids=self.remaining,
            hidden=sorted(self.hidden),
            student_files=[Path(p).name for p in self.student_files],
            preload=self.preload,
            describe=self.remaining is None,
        )
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "grade_child",
            "-p",
            "no:cacheprovider",
            "-q",
            "-o",
            "addopts=",
            "-m",
            "points",
            "--rootdir",
            str(scratch / "tree"),
            *self.paths,
        ]
        child = subprocess.Popen(
            command,
            cwd=scratch / "tree",
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,  # never read: a student's print cannot pass for a result
            stderr=subprocess.STDOUT,
            pass_fds=(write_end,),
            start_new_session=True,
            env=child_environment(scratch / "home"),
        )
        os.close(write_end)
        try:
            child.stdin.write((json.dumps(setup) + "\n").encode())
            child.stdin.close()
        except BrokenPipeError:
            pass
        try:
            return self.follow(child, read_end, token)
        finally:
            os.close(read_end)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.pid, signal.SIGKILL)  # and whatever the student's code started
            child.wait()

    def follow(self, child, read_end: int, token: str) -> bool:
        """Reads the child's events until it ends, is done, or misses a deadline."""
        started, current, buffer = time.monotonic(), None, b""
        deadline = started + self.collect_timeout
        while True:
            ready, _, _ = select.select([read_end], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:  # the deadline passed
                os.killpg(child.pid, signal.SIGKILL)
                self.timed_out(current, time.monotonic() - started)
                return False
            chunk = os.read(read_end, 65536)
            if not chunk:  # the child closed the pipe: it ended
                child.wait()
                self.ended(current, child.returncode)
                return False
            buffer += chunk
            if len(buffer) > MAX_REPORT_LINE:  # no honest report line is this long
                self.tampering.append("an endless line on the report channel (forged?)")
                os.killpg(child.pid, signal.SIGKILL)
                buffer = b""
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                event = self.verified(line, token)
                if event is None:
                    continue
                kind = event.get("event")
                if kind == "done":
                    return True
                current, deadline, started = self.on_event(kind, event, current, deadline, started)

    def verified(self, line: bytes, token: str) -> dict | None:
        try:
            event = json.loads(line)
        except ValueError:
            event = None
        if not isinstance(event, dict) or event.get("token") != token:
            forged = (
                "a line on the test process's report channel without this run's token (forged?)"
            )
            if forged not in self.tampering:
                self.tampering.append(forged)
            return None
        return event

    def on_event(self, kind: str, event: dict, current, deadline: float, started: float):
        now = time.monotonic()
        if kind == "collected":
            self.collect_seconds = max(self.collect_seconds, now - started)
            if self.remaining is None:  # the solution run: every test collected is in the manifest
                self.described.update({test["id"]: test for test in event.get("tests", [])})
                self.remaining = [test["id"] for test in event.get("tests", [])]
            deadline = now + self.collect_timeout
        elif kind == "start" and event.get("id") in (self.remaining or []):
            current, started = event["id"], now
            deadline = now + self.timeouts.get(current, self.default_timeout)
        elif kind == "end" and event.get("id") == current:
            passed = event.get("outcome") == "passed"
            self.finish(
                current,
                "passed" if passed else "failed",
                str(event.get("message", "")),
                now - started,
            )
            current, deadline = None, now + self.collect_timeout
        elif kind == "collect_error":
            self.collect_errors[str(event.get("path"))] = str(event.get("message", ""))
        elif kind == "tamper":
            self.tampering.append(str(event.get("what", "")))
        return current, deadline, started

    def finish(self, test_id: str, status: str, message: str, seconds: float) -> None:
        self.outcomes[test_id] = dict(status=status, message=message, seconds=seconds)
        if test_id in self.remaining:
            self.remaining.remove(test_id)

    def timed_out(self, current, seconds: float) -> None:
        if current is not None:
            self.finish(current, "failed", f"timed out after {seconds:.0f} s", seconds)
            return
        for test_id in list(self.remaining or []):  # while importing, or between tests
            self.finish(
                test_id,
                "failed",
                f"not run: the test process hung for {seconds:.0f} s "
                f"outside any test (while importing the tests?)",
                0.0,
            )

    def ended(self, current, code: int) -> None:
        how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        if current is not None:
            self.finish(current, "failed", f"the test process ended during this test ({how})", 0.0)
        self.last_exit = f"the test process ended before running it ({how})"

    def not_run(self, wanted: list[str]) -> None:
        """Every wanted test without an outcome: the collection error of its file, or why not."""
        for test_id in wanted:
            if test_id in self.outcomes:
                continue
            path = test_id.split("::")[0]
            error = self.collect_errors.get(path)
            reason = f"could not be collected: {error}" if error else self.last_exit
            self.outcomes[test_id] = dict(
                status="failed", message=f"not run: {reason or 'not collected'}", seconds=0.0
            )


# ----------------------------------------------------------------------------- reading a submission
@dataclass
class Submission:
    name: str
    files: dict[str, bytes]  # the student files found (path as in the exercise -> bytes)
    problems: list[str]


def submission_name(source: str) -> str:
    name = Path(source.rstrip("/")).name
    for suffix in (".zip", ".git"):
        name = name.removesuffix(suffix)
    return re.sub(r"[^\w.-]+", "_", name) or "submission"


def read_submission(source: str, student_files: list[str], scratch: Path) -> Submission:
    """The student files of a folder, a .zip or a git repository. What is missing, a symbolic link
    or too large is listed as a problem and graded as the unwritten exercise file."""
    path, name = Path(source), submission_name(source)
    if source.endswith(".git") or (
        path.is_dir() and (path / "HEAD").is_file() and (path / "objects").is_dir()
    ):
        clone = scratch / "clone"
        done = subprocess.run(
            ["git", "clone", "--quiet", "--depth", "1", source, str(clone)],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
        )
        if done.returncode != 0:
            reason = (done.stderr.strip().splitlines() or ["git clone failed"])[-1]
            return Submission(
                name, {}, [f"{source}: not a git repository git can clone ({reason})"]
            )
        path = clone
    if path.is_dir():
        found = {}
        for folder, subfolders, names in os.walk(path):
            subfolders[:] = sorted(s for s in subfolders if s not in SKIPPED_FOLDERS)
            for file_name in names:
                full = Path(folder, file_name)
                found[full.relative_to(path).as_posix()] = full
        return pick_files(name, found, student_files, _read_path)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            members = {info.filename: info for info in archive.infolist() if not info.is_dir()}
            return pick_files(
                name, members, student_files, lambda info: _read_member(archive, info)
            )
    what = (
        "no such file or folder"
        if not path.exists()
        else "not a folder, a .zip or a git repository"
    )
    return Submission(name, {}, [f"{source}: {what}"])


def _read_path(path: Path) -> bytes:
    if path.is_symlink():
        raise ValueError("is a symbolic link; submit the file itself")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ValueError(f"is larger than {MAX_FILE_BYTES:,} bytes")
    return path.read_bytes()


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    if (info.external_attr >> 16) & 0o170000 == 0o120000:
        raise ValueError("is a symbolic link; submit the file itself")
    if info.file_size > MAX_FILE_BYTES:
        raise ValueError(f"is larger than {MAX_FILE_BYTES:,} bytes")
    return archive.read(info)


def pick_files(name: str, entries: dict, student_files: list[str], read) -> Submission:
    """Each student file at its own path, or below one top folder (a zipped checkout)."""
    files, problems = {}, []
    for wanted in student_files:
        matches = sorted(
            (entry for entry in entries if entry == wanted or entry.endswith("/" + wanted)),
            key=lambda entry: (entry.count("/"), entry),
        )
        if not matches:
            problems.append(
                f"{wanted}: not in the submission; graded as the unwritten exercise file"
            )
            continue
        if len(matches) > 1 and matches[0].count("/") == matches[1].count("/"):
            problems.append(
                f"{wanted}: found twice ({matches[0]}, {matches[1]}); graded as the "
                f"unwritten exercise file"
            )
            continue
        try:
            files[wanted] = read(entries[matches[0]])
        except (OSError, ValueError, zipfile.BadZipFile) as err:
            problems.append(f"{wanted}: {err}; graded as the unwritten exercise file")
    return Submission(name, files, problems)


# ----------------------------------------------------------------------------- reading student code
# What honest answers never need: the test machinery, and the ways to reach into other modules.
MACHINERY = {
    "grading",
    "conftest",
    "helpers",
    "pytest",
    "_pytest",
    "grade_child",
    "grade",
    "tools",
    "gc",
    "inspect",
    "ctypes",
    "importlib",
    "builtins",
    "pluggy",
    "unittest",
}
REACHING_ATTRIBUTES = {
    "_exit",
    "kill",
    "killpg",
    "modules",
    "_getframe",
    "settrace",
    "setprofile",
    "f_back",
    "f_globals",
    "f_locals",
    "__globals__",
    "__code__",
    "__subclasses__",
    "__builtins__",
    "meta_path",
    "path_hooks",
}
REACHING_NAMES = {"__import__", "__builtins__", "exec", "eval", "globals", "setattr", "delattr"}
MACHINERY_TEXT = re.compile(
    r"grading|conftest|_pytest|pytest\.ini|grade_child|results\.json|tests/"
)


def compile_problem(path: str, data: bytes) -> str | None:
    """One line when a student file does not compile (checked without running it)."""
    try:
        compile(data, path, "exec", dont_inherit=True)
    except SyntaxError as err:
        return f"{path} line {err.lineno}: {type(err).__name__}: {err.msg}"
    except (ValueError, UnicodeDecodeError, RecursionError, MemoryError) as err:
        return f"{path}: cannot be read as Python ({type(err).__name__}: {err})"
    return None


def suspicious(data: bytes) -> list[tuple[int, str]]:
    """(line, what) for each construct of a file that reaches for the test machinery or modules."""
    try:
        tree = ast.parse(data)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []  # it does not compile: its stages score nothing anyway
    imported = {
        alias.asname or alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    found = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Import | ast.ImportFrom):
            modules = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
            )
            found += [(line, f"imports {m}") for m in modules if m.split(".")[0] in MACHINERY]
        elif isinstance(node, ast.Attribute) and node.attr in REACHING_ATTRIBUTES:
            found.append((line, f"uses .{node.attr}"))
        elif isinstance(node, ast.Name) and node.id in REACHING_NAMES:
            found.append((line, f"uses {node.id}"))
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and MACHINERY_TEXT.search(node.value)
        ):
            found.append((line, f"names {MACHINERY_TEXT.search(node.value).group()}"))
        elif isinstance(node, ast.Assign | ast.AugAssign | ast.Delete):
            targets = node.targets if isinstance(node, ast.Assign | ast.Delete) else [node.target]
            for target in targets:
                root = target
                while isinstance(root, ast.Attribute):
                    root = root.value
                if target is not root and isinstance(root, ast.Name) and root.id in imported:
                    found.append(
                        (line, f"assigns to {ast.unparse(target)} (another module's attribute)")
                    )
    return found


def tampering(path: str, submitted: bytes, exercise: bytes) -> list[str]:
    """What the submitted file reaches for that the exercise's own version of it does not."""
    given = [what for _, what in suspicious(exercise)]
    problems = []
    for line, what in sorted(suspicious(submitted)):
        if what in given:
            given.remove(what)
        else:
            problems.append(f"{path} line {line} {what}")
    return problems


def stage_files(kit: Kit, files: dict[str, bytes]) -> dict[str, set[str]]:
    """Stage -> the student files its test modules load: their top-level imports, followed through
    the tree's own modules (read with ast from `files`, the tree being graded)."""
    modules = {Path(p).stem: p for p in files if p.endswith(".py") and "/" not in p}
    result = {}
    for stage in kit.stages:
        paths = {test_id.split("::")[0] for test_id in kit.stage_tests(stage)}
        todo = set().union(*(imported_modules(files[p]) for p in paths))
        todo |= imported_modules(files.get("tests/conftest.py", b""), top_level_only=True)
        seen = set()
        while todo:
            module = todo.pop()
            if module in modules and module not in seen:
                seen.add(module)
                with contextlib.suppress(SyntaxError, ValueError):
                    todo |= imported_modules(files[modules[module]], top_level_only=True)
        result[stage] = {modules[m] for m in seen} & set(kit.student_files)
    return result


# ----------------------------------------------------------------------------- grading
@dataclass
class Settings:
    timeout: float | None = None  # seconds per test; None: from the solution's time
    factor: float = TIMEOUT_FACTOR
    hidden_visibility: str = "after_published"


def timeouts(kit: Kit, settings: Settings) -> tuple[dict[str, float], float]:
    """Per-test timeouts and the collection timeout."""
    if settings.timeout is not None:
        per_test = {test_id: settings.timeout for test_id in kit.tests}
    else:
        per_test = {
            test_id: max(MIN_TIMEOUT, settings.factor * test["seconds"])
            for test_id, test in kit.tests.items()
        }
    return per_test, max(MIN_COLLECT_TIMEOUT, settings.factor * kit.collect_seconds)


def grade_stage(kit: Kit, submission: Submission, stage: str, settings: Settings) -> StageRun:
    """The stage's tests on the exercise tree holding the submission's files, in child processes."""
    files = {**kit.files, **submission.files}
    wanted = kit.stage_tests(stage)
    per_test, collect = timeouts(kit, settings)
    paths = sorted({test_id.split("::")[0] for test_id in wanted})
    hidden = {test_id for test_id in wanted if kit.tests[test_id]["hidden"]}
    run = StageRun(
        files,
        paths,
        wanted,
        kit.student_files,
        hidden=hidden,
        preload=kit.preload,
        timeouts=per_test,
        collect_timeout=collect,
        default_timeout=max(per_test.values()),
    )
    run.execute()
    run.not_run(wanted)
    return run


def results(
    kit: Kit, submission: Submission, runs: dict[str, StageRun], settings: Settings, seconds: float
) -> dict:
    """Gradescope's results.json of a submission (score, max_score, tests, output, extra_data)."""
    files = {**kit.files, **submission.files}
    broken = {}  # student file -> why it does not compile
    for path in kit.student_files:
        problem = compile_problem(path, files[path])
        if problem:
            broken[path] = problem
    suspect = {
        path: tampering(path, data, kit.files[path]) for path, data in submission.files.items()
    }
    loads = stage_files(kit, files)
    tests, stages, notes = [], {}, list(submission.problems)
    for index, stage in enumerate(kit.stages, start=1):
        withheld = [what for path in sorted(loads[stage]) for what in suspect.get(path, [])]
        withheld += runs[stage].tampering
        if withheld:
            shown = "; ".join(withheld[:3]) + (" ..." if len(withheld) > 3 else "")
            notes.append(
                f"{stage}: points withheld: the tests' machinery was reached for: {shown}. "
                f"Ask your instructor."
            )
        unimportable = [broken[path] for path in sorted(loads[stage]) if path in broken]
        for number, test_id in enumerate(kit.stage_tests(stage), start=1):
            entry = result_of_test(
                kit,
                test_id,
                f"{index}.{number}",
                runs[stage].outcomes[test_id],
                withheld,
                unimportable,
                settings,
            )
            if "timed out" in entry["output"] or "ended during" in entry["output"]:
                notes.append(f"cut off: {test_id}: {entry['output']}")
            tests.append(entry)
        in_stage = [entry for entry in tests if entry["tags"] == [stage]]
        stages[stage] = dict(
            score=sum(entry["score"] for entry in in_stage),
            max_score=sum(entry["max_score"] for entry in in_stage),
        )
    return results_json(kit, submission.name, stages, tests, notes, broken, seconds)


def results_json(
    kit: Kit,
    student: str,
    stages: dict[str, dict],
    tests: list[dict],
    notes: list[str],
    broken: dict[str, str],
    seconds: float,
) -> dict:
    """The fields of Gradescope's results.json around the tests' entries: the score, the summary
    the student sees (`notes` and the files that do not compile, `broken`), and extra_data."""
    score = sum(stage["score"] for stage in stages.values())
    return dict(
        score=score,
        max_score=kit.total(),
        execution_time=round(seconds, 1),
        output=summary(student, stages, score, kit.total(), notes + list(broken.values())),
        output_format="text",
        test_output_format="text",
        test_name_format="text",
        visibility="visible",
        stdout_visibility="hidden",
        extra_data=dict(
            student=student,
            stages=stages,
            problems=notes,
            does_not_compile=sorted(broken.values()),
        ),
        tests=tests,
    )


def result_of_test(
    kit: Kit,
    test_id: str,
    number: str,
    outcome: dict,
    withheld: list[str],
    unimportable: list[str],
    settings: Settings,
) -> dict:
    """One test's entry in results.json: its points if it passed (and nothing was withheld)."""
    test = kit.tests[test_id]
    passed = outcome["status"] == "passed" and not withheld
    message = outcome["message"]
    if not passed and unimportable and message.startswith("not run"):
        # the compiler's one line, not the import's traceback
        message = f"not run: {unimportable[0]}"
    if withheld and outcome["status"] == "passed":
        message = "passed, but withheld: see the note on the tests' machinery above"
    return dict(
        name=test_id,
        number=number,
        score=test["points"] if passed else 0.0,
        max_score=test["points"],
        status="passed" if passed else "failed",
        output=message,
        output_format="text",
        tags=[test["stage"]],
        visibility=settings.hidden_visibility if test["hidden"] else "visible",
        extra_data=dict(stage=test["stage"], seconds=round(outcome["seconds"], 2)),
    )


def summary(name: str, stages: dict, score: float, total: float, notes: list[str]) -> str:
    """The text shown above the tests: the points per stage, then every problem found."""
    rows = [
        f"{name}: {_number(score)} / {_number(total)} points",
        "",
        f"{'stage':18s} {'scored':>7s} / possible",
    ]
    rows += [
        f"{stage:18s} {_number(s['score']):>7s} / {_number(s['max_score'])}"
        for stage, s in stages.items()
    ]
    rows.append(f"{'total':18s} {_number(score):>7s} / {_number(total)}")
    if notes:
        rows += ["", "Problems:"] + [f"- {note}" for note in dict.fromkeys(notes)]
    return "\n".join(rows)


def _number(value: float) -> str:
    return f"{value:g}"


# ----------------------------------------------------------------------------- a class
def grade_all(
    kit: Kit,
    sources: list[str],
    settings: Settings,
    jobs: int,
    results_path: Path,
    single_file: bool,
) -> list[dict]:
    """Grades every submission, the stages of all of them sharing `jobs` workers, and writes each
    one's results as soon as its last stage is done. Returns the results in the order given."""
    from tqdm import tqdm

    with tempfile.TemporaryDirectory(prefix="grade-read-") as scratch:
        submissions = [
            read_submission(s, kit.student_files, Path(scratch) / str(i))
            for i, s in enumerate(sources)
        ]
    names = unique_names([s.name for s in submissions])
    for submission, name in zip(submissions, names):
        submission.name = name
    runs: dict[str, dict[str, StageRun]] = {s.name: {} for s in submissions}
    done: dict[str, dict] = {}
    tasks = [(s, stage) for s in submissions for stage in kit.stages]
    bar = tqdm(
        total=len(tasks),
        unit="stage",
        desc="grading",
        file=sys.stderr,
        disable=not sys.stderr.isatty(),
    )
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {
            pool.submit(grade_stage, kit, s, stage, settings): (s, stage) for s, stage in tasks
        }
        for future in as_completed(futures):
            submission, stage = futures[future]
            runs[submission.name][stage] = future.result()
            bar.update()
            if len(runs[submission.name]) == len(kit.stages):
                seconds = sum(run.seconds for run in runs[submission.name].values())
                done[submission.name] = results(
                    kit, submission, runs[submission.name], settings, seconds
                )
                target = results_path if single_file else results_path / f"{submission.name}.json"
                write_results(target, done[submission.name])
    bar.close()
    return [done[s.name] for s in submissions]


def unique_names(names: list[str]) -> list[str]:
    """The names, with -2, -3 ... added where submissions share one (their results files differ)."""
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return unique


def write_results(path: Path, data: dict) -> None:
    """Atomically: an existing file is replaced, never read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    partial.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(partial, path)


def write_csv(path: Path, kit: Kit, graded: list[dict]) -> None:
    """One row per student: the points of each stage, the total, and the problems found."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["student", *kit.stages, "total", "max_score", "problems"])
    for result in graded:
        extra = result["extra_data"]
        writer.writerow(
            [
                extra["student"],
                *(_number(extra["stages"][s]["score"]) for s in kit.stages),
                _number(result["score"]),
                _number(result["max_score"]),
                " | ".join(extra["problems"] + extra["does_not_compile"]),
            ]
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    partial.write_text(buffer.getvalue())
    os.replace(partial, path)


# ----------------------------------------------------------------------------- Gradescope
SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, when it builds the autograder image (choose its Ubuntu 24.04 base
# image, whose Python 3.12 the pinned TensorFlow supports).
set -euo pipefail
apt-get update -q && apt-get install -y -q python3 python3-venv python3-pip git
python3 -m venv /autograder/venv
/autograder/venv/bin/pip install -q -r /autograder/source/requirements.txt
"""
RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for each submission: the student's files are in /autograder/submission, and
# it reads /autograder/results/results.json back. AUTOGRADER_ROOT and AUTOGRADER_PYTHON let you run
# it locally against a folder laid out the same way (docs/instructors.md).
set -euo pipefail
root="${AUTOGRADER_ROOT:-/autograder}"
python="${AUTOGRADER_PYTHON:-$root/venv/bin/python}"
cd "$(dirname "$0")"
exec "$python" tools/grade.py --kit kit "$root/submission" --results "$root/results/results.json" \\
    --hidden-visibility "${HIDDEN_VISIBILITY:-%s}"
"""
AUTOGRADER_CODE = [
    "tools/grade.py",
    "tools/grade_child.py",
    "plumbing/__init__.py",
    "plumbing/errors.py",
    "plumbing/todo.py",
    "requirements.txt",
]


def write_autograder(zip_path: Path, kit: Kit, root: Path, hidden_visibility: str) -> None:
    """The zip Gradescope takes: setup.sh, run_autograder, the grading code and the kit (the
    exercise tree, the hidden tests and the manifest). No solution region is in it."""
    with tempfile.TemporaryDirectory(prefix="grade-kit-") as scratch:
        kit.save(Path(scratch))
        partial = zip_path.with_name(f".{zip_path.name}.tmp-{os.getpid()}")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, text in (
                ("setup.sh", SETUP_SH),
                ("run_autograder", RUN_AUTOGRADER % hidden_visibility),
            ):
                info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
                info.external_attr = 0o100755 << 16
                archive.writestr(info, text)
            for name in AUTOGRADER_CODE:
                archive.write(root / name, name)
            for path in sorted(Path(scratch).rglob("*")):
                if path.is_file():
                    archive.write(path, "kit/" + path.relative_to(scratch).as_posix())
        os.replace(partial, zip_path)


# ----------------------------------------------------------------------------- the command
def make_parser() -> OneLineParser:
    """The command line of tools/grade.py (see the module docstring)."""
    parser = OneLineParser(prog="tools/grade.py", description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add(
        "submissions",
        nargs="*",
        metavar="SUBMISSION",
        help="a student's folder, .zip or git repository (any number)",
    )
    add(
        "--results",
        type=Path,
        metavar="DIR_OR_FILE",
        help="a .json file for one submission, else a folder (NAME.json for each)",
    )
    add("--csv", type=Path, metavar="FILE", help="also write one row per student to FILE")
    add("--autograder", type=Path, metavar="ZIP", help="write the autograder zip Gradescope runs")
    add(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        help="stages graded at once (default: one per core)",
    )
    add(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help=f"per test (default: {TIMEOUT_FACTOR:g}x the solution's time, at least "
        f"{MIN_TIMEOUT:g} s)",
    )
    add(
        "--timeout-factor",
        type=float,
        default=TIMEOUT_FACTOR,
        metavar="F",
        help="the multiple of the solution's time a test may take (default: %(default)g)",
    )
    add(
        "--hidden-visibility",
        choices=VISIBILITIES,
        default="after_published",
        help="when students see the hidden tests on Gradescope (default: %(default)s)",
    )
    add(
        "--solution",
        type=Path,
        default=TOOLS.parent,
        help="the instructor's solution checkout (default: this one)",
    )
    add("--kit", type=Path, help=argparse.SUPPRESS)  # a saved kit: what the autograder grades with
    return parser


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The options, with the checks argparse cannot make alone (a UsageError names the flag)."""
    parser = make_parser()
    args = parser.parse_args(argv)
    if args.autograder is None and not args.submissions:
        parser.error("give at least one SUBMISSION (or --autograder ZIP)")
    if args.submissions and args.results is None:
        parser.error("--results DIR_OR_FILE is required (results go outside the submission)")
    timeout_ok = args.timeout is None or args.timeout > 0
    if args.jobs < 1 or args.timeout_factor <= 0 or not timeout_ok:
        parser.error("--jobs, --timeout and --timeout-factor must be positive")
    return args


def check_source(source: str) -> None:
    """A submission that is not there is the grader's typo: said before anything is graded."""
    path = Path(source)
    if source.startswith(("file://", "http://", "https://", "ssh://", "git@")):
        return
    if not path.exists():
        raise UsageError(
            f"{source}: no such file or folder; give a student's folder, .zip or git repository"
        )
    if not path.is_dir() and not zipfile.is_zipfile(path):
        raise UsageError(f"{source}: not a folder, a .zip or a git repository")


def run_command(argv: list[str] | None) -> int:
    args = parse(argv)
    kit = Kit.load(args.kit) if args.kit else kit_from_solution(args.solution.resolve(), args.jobs)
    if args.autograder:
        write_autograder(args.autograder, kit, TOOLS.parent, args.hidden_visibility)
        print(
            f"wrote {args.autograder}: {len(kit.tests)} graded tests, "
            f"{_number(kit.total())} points; upload it as the assignment's autograder"
        )
        if not args.submissions:
            return 0
    single_file = args.results.suffix == ".json"
    if single_file and len(args.submissions) > 1:
        raise UsageError(
            f"--results {args.results} is one file for {len(args.submissions)} submissions; "
            f"give a folder"
        )
    for source in args.submissions:
        check_source(source)
        inside = Path(source).resolve()
        if args.results.resolve().is_relative_to(inside):
            raise UsageError(
                f"--results {args.results} is inside the submission {source}; write the "
                f"results outside it"
            )
    settings = Settings(args.timeout, args.timeout_factor, args.hidden_visibility)
    graded = grade_all(kit, args.submissions, settings, args.jobs, args.results, single_file)
    for result in graded:
        extra = result["extra_data"]
        print(
            f"{extra['student']}: {_number(result['score'])} / {_number(result['max_score'])}"
            + (f"  ({len(extra['problems'])} problem(s))" if extra["problems"] else "")
        )
    if args.csv:
        write_csv(args.csv, kit, graded)
        print(f"wrote {args.csv}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return report(run_command, argv)


if __name__ == "__main__":
    sys.exit(main())
