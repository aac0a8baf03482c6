"""The pytest plugin tools/grade.py loads into each child process that runs a stage's tests.

The child runs student code, so nothing it says is trusted on its own: the parent (tools/grade.py)
owns the points and counts only what this plugin reports, line by line, on a pipe the parent opened.
Each line carries a secret token that the parent sends on stdin before any student code is imported;
a line without it is evidence of forgery. The plugin also watches the functions the tests rely on
(pytest's runner and reports, numpy.testing, builtins, TensorFlow and Keras) and reports any that
were replaced while the tests ran: the cheap ways to fake a pass.

Events, one JSON object a line: {"token", "event": "collected" | "start" | "end" | "collect_error" |
"tamper" | "done", ...}. An "end" has "outcome" ("passed" or "failed") and "message", the feedback
the student sees: the NOT IMPLEMENTED line for a stub, the assertion's useful lines, or for another
error its type and message (and, for a visible test, where in the student's file it was raised). For
hidden tests, the message alone: never their source or traceback."""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import re
import sys
import traceback
from pathlib import Path

import pytest

from plumbing.todo import unwritten  # the tree's own (this runs in it): the stubs' error class

MAX_LINES = 15  # of feedback per test
MAX_CHARS = 2000
STUB_NAME = re.compile(r"([\w/.-]+\.py::[\w.]+)(: |$)")  # "<file>::<function>: " of a stub
WATCHED = [
    "builtins",
    "pytest",
    "_pytest.runner",
    "_pytest.python",
    "_pytest.reports",
    "_pytest.outcomes",
    "_pytest.main",
    "_pytest.fixtures",
    "_pytest.assertion.rewrite",
    "_pytest.assertion.util",
    "numpy",
    "numpy.testing",
    "numpy.linalg",
    "math",
    "os",
    "json",
]
WATCHED_LATER = [
    "tensorflow",
    "tensorflow.nn",
    "tensorflow.math",
    "tensorflow.image",
    "keras",
    "keras.layers",
    "keras.losses",
    "keras.ops",
    "keras.utils",
    "keras.activations",
]


# ----------------------------------------------------------------------------- what must not change
def _callables(module) -> dict:
    """The functions and classes of a module, and the attributes of the classes defined in it."""
    found = {}
    for name, value in list(vars(module).items()):
        if isinstance(value, type) or callable(value) and not isinstance(value, type(sys)):
            found[name] = value
            if isinstance(value, type) and getattr(value, "__module__", None) == module.__name__:
                for attribute, member in list(vars(value).items()):
                    found[f"{name}.{attribute}"] = member
    return found


def _current(module, key: str):
    name, _, attribute = key.partition(".")
    value = vars(module).get(name, _MISSING)
    if attribute and value is not _MISSING:
        value = vars(value).get(attribute, _MISSING)
    return value


_MISSING = object()


class Watch:
    """Snapshots of the watched modules; `changed()` names the entries that were replaced since."""

    def __init__(self):
        self.snapshots: dict[str, dict] = {}

    def take(self, names: list[str]) -> None:
        for name in names:
            module = sys.modules.get(name)
            if module is not None and name not in self.snapshots:
                self.snapshots[name] = _callables(module)

    def changed(self) -> list[str]:
        replaced = []
        for name, snapshot in self.snapshots.items():
            module = sys.modules.get(name)
            if module is None:
                replaced.append(f"{name} (removed from sys.modules)")
                continue
            for key, value in snapshot.items():
                if _current(module, key) is not value:
                    replaced.append(f"{name}.{key}")
        return replaced


# ----------------------------------------------------------------------------- feedback
def _not_implemented(error: BaseException) -> str | None:
    """The NOT IMPLEMENTED line when `error` is an exercise stub's (or was raised from one, as
    TensorFlow's StagingError is); None for any other error, a NotImplementedError of Keras' too."""
    stub = unwritten(error)
    if stub is None:
        return None
    named = STUB_NAME.match(str(stub))
    if named:
        return f"NOT IMPLEMENTED: {named[1]}"
    return f"NOT IMPLEMENTED: {type(stub).__name__}: {str(stub)[:200]}"


def _clip(text: str) -> str:
    """At most MAX_LINES lines, without memory addresses (the same work gets the same feedback)."""
    text = re.sub(r" at 0x[0-9a-fA-F]+", "", text)
    lines = text.strip().splitlines()[:MAX_LINES]
    return "\n".join(lines)[:MAX_CHARS]


def _where_in_student_code(error: BaseException, student_files: set[str]) -> str:
    """' (raised in cnn.py line 42, in build_cnn)': the last traceback entry in a student's file."""
    for frame in reversed(traceback.extract_tb(error.__traceback__)):
        if Path(frame.filename).name in student_files:
            return f" (raised in {Path(frame.filename).name} line {frame.lineno}, in {frame.name})"
    return ""


def feedback(excinfo, hidden: bool, student_files: set[str]) -> str:
    """The lines a student sees for a failed test (see the module docstring)."""
    error = excinfo.value
    stub = _not_implemented(error)
    if stub:
        return stub
    if isinstance(error, AssertionError):
        text = str(error)
        if hidden:  # the message alone: pytest's explanation quotes the test's expressions
            text = text.split("\nassert ", 1)[0] if not text.startswith("assert ") else ""
            return _clip(text) or "AssertionError (a hidden test: its details are not shown)"
        return _clip(text) or "AssertionError"
    text = f"{type(error).__name__}: {error}"
    if not hidden:
        text += _where_in_student_code(error, student_files)
    return _clip(text)


# ----------------------------------------------------------------------------- the plugin
def _read_setup() -> dict:
    """The parent's first and only message on stdin, read when pytest imports this plugin: before
    pytest captures stdin, and before any student code is imported."""
    setup = json.loads(sys.stdin.readline())
    sys.stdin.close()
    sys.stdin = open(os.devnull)
    return setup


SETUP = _read_setup()


class Reporter:
    def __init__(self, config, setup: dict):
        self.token = setup["token"]
        self.wanted = None if setup["ids"] is None else set(setup["ids"])  # None: every graded test
        self.describe = setup.get("describe", False)
        self.hidden = set(setup.get("hidden", []))
        self.student_files = set(setup.get("student_files", []))
        self.channel = os.fdopen(int(setup["fd"]), "w", buffering=1)
        self.watch = Watch()
        for name in WATCHED:  # imported now (numpy.testing is loaded lazily), then snapshotted
            with contextlib.suppress(ImportError):
                importlib.import_module(name)
        self.watch.take(WATCHED)
        for name in setup.get("preload", []):  # imported now, so that student code cannot replace
            importlib.import_module(name)  # their functions before the snapshot
        self.watch.take(WATCHED_LATER)
        self.failures: dict[str, str] = {}
        self.tampered: set[str] = set()

    def send(self, event: str, **fields) -> None:
        self.channel.write(json.dumps({"token": self.token, "event": event, **fields}) + "\n")
        self.channel.flush()

    def check(self, where: str) -> None:
        self.watch.take(WATCHED_LATER)
        for name in self.watch.changed():
            if name not in self.tampered:
                self.tampered.add(name)
                self.send("tamper", what=f"{name} was replaced (seen after {where})")

    def pytest_collectreport(self, report):
        if report.failed:
            error = getattr(report, "longrepr", None)
            text = str(error).strip().splitlines()
            last = (
                text[-1].removeprefix("E").strip() if text else ""
            )  # pytest's "E   NameError: ..."
            self.send("collect_error", path=report.nodeid, message=last[:300])

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config, items):
        keep = [item for item in items if self.wanted is None or item.nodeid in self.wanted]
        config.hook.pytest_deselected(items=[item for item in items if item not in keep])
        items[:] = keep
        self.check("collection")
        tests = [dict(id=item.nodeid) for item in keep]
        if self.describe:  # the solution run: the manifest's points come from the markers
            tests = [
                dict(id=item.nodeid, points=item.get_closest_marker("points").args[0])
                for item in keep
            ]
        self.send("collected", tests=tests)

    def pytest_runtest_logstart(self, nodeid, location):
        self.send("start", id=nodeid)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_makereport(self, item, call):
        report = yield
        excinfo = call.excinfo
        if excinfo is not None and item.nodeid not in self.failures:
            hidden = item.nodeid in self.hidden
            phase = "" if call.when == "call" else f"error in {call.when}: "
            if excinfo.errisinstance(pytest.skip.Exception):
                reason = getattr(excinfo.value, "msg", str(excinfo.value))
                self.failures[item.nodeid] = f"graded tests cannot skip: {reason}"
            else:
                self.failures[item.nodeid] = phase + feedback(excinfo, hidden, self.student_files)
        return report

    def pytest_runtest_logfinish(self, nodeid, location):
        self.check(nodeid)
        message = self.failures.get(nodeid)
        self.send(
            "end",
            id=nodeid,
            outcome="failed" if message is not None else "passed",
            message=message or "",
        )

    def pytest_sessionfinish(self, session):
        self.check("the last test")
        self.send("done")


def pytest_configure(config):
    config.pluginmanager.register(Reporter(config, SETUP), "grade-reporter")
