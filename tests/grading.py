"""Points for the grading tests: the points(n) marker and a per-stage summary.

A test module that sets `STAGE` (one of STAGES) is a grading module: every test in it needs
`@pytest.mark.points(n)`, or its collection fails with a message naming the test. At the end of the
run a table shows `scored / possible` per stage, where possible counts every graded test collected:
a test that fails, errors or is skipped scores 0 instead of vanishing from the total.

Under pytest-xdist (the default run: pytest.ini's -n) the tests run in worker processes and the
table is printed by the controller, which collects nothing itself: each worker writes the graded
tests it collected (all workers collect the same ones) to a folder the controller named, and the
controller scores them from the reports the workers send back.

The table is for students checking their own work. Grades are made by the instructors' grading tool,
which runs each stage in a process of its own and takes the points from a manifest of the solution's
tests, so nothing a student's code does in this process can change them.

A failure caused by an exercise stub (its NotWrittenError, plumbing/todo.py) is reported in one
line, `NOT IMPLEMENTED: file::function`, instead of a traceback; any other NotImplementedError (one
raised inside Keras, say) is reported as the error it is. A graded test never skips: a skip (a
missing file, say) is reported as a failure naming the reason, so a score cannot look complete.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from plumbing.todo import unwritten

# The student stages, in course order (the linear model is given, ready to run: it earns nothing).
STAGES = (
    "augmentation",
    "MLP",
    "CNN",
    "batch norm",
    "strided & dropout",
    "NumPy net",
    "NumPy conv",
)
STUB_NAME = re.compile(r"([\w/.-]+\.py::[\w.]+)(: |$)")  # "<file>::<function>: " from a stub


# ----------------------------------------------------------------------------- NotWrittenError
class OneLineFailure:
    """A failure report of one line: pytest prints it with toterminal, -ra shows its message."""

    def __init__(self, message: str):
        self.message = message
        self.reprcrash = self

    def toterminal(self, writer) -> None:
        writer.line(self.message)

    def __str__(self) -> str:
        return self.message


def not_implemented_where(excinfo) -> str | None:
    """'file::function' when the exception is an exercise stub's or was raised from one (TensorFlow
    re-raises it as a StagingError); None for any other, a NotImplementedError of Keras' too."""
    stub = unwritten(excinfo.value)
    if stub is None:
        return None
    named = STUB_NAME.match(str(stub))
    if named:
        return named[1]
    entry = excinfo.traceback[-1]
    return f"{Path(str(entry.path)).name}::{entry.name}"


def unwritten_stub(root: Path, text: str) -> tuple[str, str] | None:
    """(file::function, stage) of the first stub that `text` names in a line `NOT IMPLEMENTED:
    file::function` (a failure's, or one train.py printed) and that its file still holds; else None.

    The file is read to make sure: a test that fails for another reason is not passed off as
    unwritten.
    """
    for where in re.findall(r"NOT IMPLEMENTED: ([\w/.-]+\.py::[\w.]+)", text):
        try:
            source = (root / where.split("::")[0]).read_text()
        except (OSError, UnicodeDecodeError):
            continue
        stub = re.search(rf"NotWrittenError\(\s*[\"']{re.escape(where)}: ", source)
        if stub:
            stages = re.findall(r"# TODO \[([^\]]+)\]", source[: stub.start()])  # the one above it
            return where, stages[-1] if stages else "?"
    return None


# ----------------------------------------------------------------------------- the plugin
class GradingPlugin:
    def __init__(self, config):
        self.config = config
        self.tests: dict[str, dict] = {}  # nodeid -> stage, points (this process collected)
        self.outcomes: dict[str, tuple[str, str]] = {}  # nodeid -> status, output (every test)
        self.collection_errors: list[str] = []
        self.shared: Path | None = None  # under xdist, where the workers write their graded tests

    @pytest.hookimpl(wrapper=True)
    def pytest_pycollect_makeitem(self, collector, name, obj):
        """A grading test without points(n), or points(n) outside a grading module: CollectError."""
        result = yield
        items = result if isinstance(result, list) else [result] if result is not None else []
        module = collector.getparent(pytest.Module)
        stage = getattr(module.obj, "STAGE", None)
        for item in items:
            if not isinstance(item, pytest.Function):
                continue
            marker = item.get_closest_marker("points")
            where = f"{module.nodeid}::{item.name}"
            if stage is None and marker:
                raise collector.CollectError(
                    f"{where} has a points marker but {module.nodeid} sets no STAGE; "
                    f"add STAGE = one of {', '.join(STAGES)}"
                )
            if stage is None:
                continue
            if stage not in STAGES:
                raise collector.CollectError(
                    f"{module.nodeid}: STAGE = {stage!r} is not one of {', '.join(STAGES)}"
                )
            if marker is None:
                raise collector.CollectError(
                    f"{where} is a grading test (STAGE = {stage!r}) without points; "
                    f"add @pytest.mark.points(n)"
                )
            points = marker.args[0] if len(marker.args) == 1 and not marker.kwargs else None
            if not isinstance(points, (int, float)) or isinstance(points, bool) or points <= 0:
                raise collector.CollectError(
                    f"{where}: write points(n) with one positive number n, not "
                    f"points{marker.args!r}"
                )
            if item.get_closest_marker("slow"):
                raise collector.CollectError(
                    f"{where}: a grading test cannot be slow (pytest leaves slow "
                    f"tests out); make it faster"
                )
        return result

    def pytest_collectreport(self, report):
        where = report.nodeid or "collection"
        if report.failed and where not in self.collection_errors:  # once, whatever the workers
            self.collection_errors.append(where)

    def pytest_collection_finish(self, session):
        for item in session.items:
            marker = item.get_closest_marker("points")
            if marker:
                self.tests[item.nodeid] = dict(stage=item.module.STAGE, points=marker.args[0])
        shared = getattr(self.config, "workerinput", {}).get("grading_dir")
        if shared:  # an xdist worker: tell the controller what it collected
            worker = self.config.workerinput["workerid"]
            path = Path(shared) / f"{worker}.json"
            path.with_suffix(".tmp").write_text(json.dumps(self.tests))
            os.replace(path.with_suffix(".tmp"), path)

    # ------------------------------------------------------------------------- under xdist
    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node):
        """The controller, before starting a worker: names the folder for its graded tests."""
        if self.shared is None:
            self.shared = Path(tempfile.mkdtemp(prefix="grading-"))
        node.workerinput["grading_dir"] = str(self.shared)

    def collected_by_workers(self) -> dict[str, dict]:
        """The controller: the graded tests that the first worker to finish collecting wrote."""
        for path in sorted(self.shared.glob("*.json")):
            return json.loads(path.read_text())
        return {}

    def pytest_unconfigure(self, config):
        if self.shared is not None:
            shutil.rmtree(self.shared, ignore_errors=True)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item, call):
        report = yield
        if call.excinfo is not None and report.failed:
            where = not_implemented_where(call.excinfo)
            if where:
                report.longrepr = OneLineFailure(f"NOT IMPLEMENTED: {where}")
        if (
            report.skipped and item.nodeid in self.tests
        ):  # a graded test never skips: it fails, saying why
            reason = (
                report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            )
            report.outcome = "failed"
            report.longrepr = OneLineFailure(
                f"graded tests cannot skip: {reason.removeprefix('Skipped: ')}"
            )
        if report.failed and call.when != "teardown" and item.get_closest_marker("points") is None:
            # an ungraded test that needs a stage not written yet skips, naming it; graded ones fail
            text = "\n".join((str(report.longrepr), report.capstdout, report.capstderr))
            unwritten = unwritten_stub(item.config.rootpath, text)
            if unwritten:
                report.outcome = "skipped"
                report.longrepr = (
                    str(item.path),
                    item.location[1] + 1,
                    f"Skipped: needs {unwritten[0]} "
                    f"(stage {unwritten[1]}): write it, then run again",
                )
        return report

    def pytest_runtest_logreport(self, report):
        """A failure in any phase fails the test; a passed call passes it unless it failed."""
        if report.failed:
            phase = "" if report.when == "call" else f"error in {report.when}: "
            self.outcomes[report.nodeid] = ("failed", phase + _first_line(report))
        elif report.when == "call":
            self.outcomes[report.nodeid] = ("passed", "")

    # ------------------------------------------------------------------------- results
    def graded(self) -> list[dict]:
        """Every graded test collected, with its stage, points, status and output."""
        graded = []
        for nodeid, test in self.tests.items():
            status, output = self.outcomes.get(nodeid, ("not run", "not run"))
            graded.append(dict(test, status=status, output=output))
        return graded

    def score(self, test: dict) -> float:
        return test["points"] if test["status"] == "passed" else 0

    def totals(self) -> dict[str, tuple[float, float]]:
        graded = self.graded()
        totals = {}
        for stage in STAGES + tuple(sorted({t["stage"] for t in graded} - set(STAGES))):
            tests = [t for t in graded if t["stage"] == stage]
            if tests:
                totals[stage] = (sum(self.score(t) for t in tests), sum(t["points"] for t in tests))
        return totals

    def table(self) -> list[str]:
        totals = self.totals()
        scored, possible = sum(s for s, _ in totals.values()), sum(p for _, p in totals.values())
        rows = [f"{'stage':18s} {'scored':>7s} / possible"]
        rows += [f"{stage:18s} {_number(s):>7s} / {_number(p)}" for stage, (s, p) in totals.items()]
        rows.append(
            f"{'total':18s} {_number(scored):>7s} / {_number(possible)}   "
            f"({100 * scored / possible:.0f}%)"
        )
        rows += [
            f"could not collect {node}: its tests are not counted"
            for node in self.collection_errors
        ]
        return rows

    def pytest_terminal_summary(self, terminalreporter):
        if self.shared is not None:  # the controller under xdist, which collected nothing itself
            self.tests = self.collected_by_workers()
        if not self.tests:
            return
        terminalreporter.write_sep("=", "points")
        for row in self.table():
            terminalreporter.write_line(row)


def _number(value: float) -> str:
    return f"{value:g}"


def _first_line(report) -> str:
    """The one-line reason of a failure: the NOT IMPLEMENTED line, or the error's own message."""
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    return text.strip().splitlines()[0] if text.strip() else "failed"
