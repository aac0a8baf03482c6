"""Each subtly wrong answer of tests/wrong_answers.py loses points, and its failing test's message
names the problem; the correct answer there (a stock Keras batch norm) scores full marks.

For each case the repository's tracked files (git ls-files) are copied into a folder of its own, the
variant is written (wrong_answers.write_variant), and the graded test files of its stage run there
in a pytest of their own (tests/forking.py: TensorFlow is loaded once, each case runs in a forked
child that imports its own tree). Each test's outcome and whole failure message come from
--junitxml, its points from its points(n) marker (read from the test file with ast).
The solution scores every point of every stage (pytest -m points), so "fewer points than the
solution" is "fewer than the stage's possible points".

Not graded, and left out of the exercise version (tools/exercise_exclude.txt). Slow (about 2
minutes: pytest -m slow tests/test_wrong_answers.py); the default run keeps the graded tests that
catch them.
"""

import ast
import shutil
import subprocess
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

import forking
from wrong_answers import CASES, STAGE_TESTS, write_variant

REPO = Path(__file__).resolve().parent.parent
# -n 0: in the forked child itself, not in workers of its own
GRADED = ["-q", "-p", "no:cacheprovider", "-m", "points", "-n", "0"]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not forking.can_fork, reason="needs os.fork on Linux"),
]


def _cases():
    return [pytest.param(case, id=case.name) for case in CASES]


def _copy_tracked_files(root: Path) -> None:
    """The repository's tracked files as they are in the working tree (so uncommitted test edits
    count)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout
    for name in listed.decode().split("\0"):
        source = REPO / name
        if name and source.is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)


def _outcomes(junit: Path) -> dict[tuple[str, str], str | None]:
    """{(module path, test name with its parameters): None if it passed, else the whole failure or
    error text} from a JUnit XML report."""
    found = {}
    for test in ElementTree.parse(junit).iter("testcase"):
        module = test.get("classname").replace(".", "/") + ".py"
        text = None
        for problem in (test.find("failure"), test.find("error"), test.find("skipped")):
            if problem is not None:
                text = f"{problem.get('message', '')}\n{problem.text or ''}"
        found[(module, test.get("name"))] = text
    return found


def _points(test_file: Path) -> dict[str, float]:
    """{test function name: its points(n)} of a graded test file."""
    points = {}
    for node in ast.parse(test_file.read_text()).body:
        if isinstance(node, ast.FunctionDef):
            for decorator in node.decorator_list:
                if (
                    isinstance(decorator, ast.Call)
                    and ast.unparse(decorator.func) == "pytest.mark.points"
                ):
                    points[node.name] = decorator.args[0].value
    return points


@pytest.fixture(scope="module")
def graded(request, tmp_path_factory):
    """Grades every selected case once: {case name: (pytest's exit code, grades.json, failures)}."""
    selected = [
        item.callspec.params["case"]
        for item in request.session.items
        if item.module is request.module and hasattr(item, "callspec")
    ]
    if not (REPO / ".git").exists():
        pytest.fail(
            f"{REPO} is not a git checkout; the cases copy its tracked files (git ls-files)"
        )
    jobs = []
    for case in selected:
        root = tmp_path_factory.mktemp(case.name)
        _copy_tracked_files(root)
        write_variant(root, case)
        argv = [*GRADED, "-o", "junit_family=xunit1", "--junitxml", "junit.xml", *case.test_files]
        jobs.append(dict(root=str(root), cwd=str(root), module="pytest", argv=argv))
    results = {}
    for case, job, report in zip(selected, jobs, forking.run_jobs(jobs)):
        junit = Path(job["cwd"]) / "junit.xml"
        assert junit.is_file(), f"{case.name}: no junit.xml\n{report['output'][-3000:]}"
        outcomes = _outcomes(junit)
        failures = {name: text for (_, name), text in outcomes.items() if text is not None}
        results[case.name] = (report["code"], outcomes, failures)
    return results


def _stage_points(outcomes: dict, stage: str) -> tuple[float, float]:
    """(scored, possible) of a stage's graded tests in one case's outcomes."""
    scored = possible = 0.0
    for module in STAGE_TESTS[stage]:
        points = _points(REPO / module)
        for (test_module, name), text in outcomes.items():
            if test_module == module:
                possible += points[name.split("[")[0]]
                scored += points[name.split("[")[0]] if text is None else 0
    return scored, possible


@pytest.mark.parametrize("case", _cases())
def test_a_wrong_answer_loses_points_with_a_message_naming_it_and_a_right_one_scores_all(
    case, graded
):
    code, outcomes, failures = graded[case.name]
    if case.must_fail is None:
        assert not failures, (
            f"{case.name} is a correct answer, but these tests fail:\n"
            + "\n".join(f"{name}: {text.strip()[:500]}" for name, text in failures.items())
        )
        assert code == 0, f"{case.name}: pytest exited {code}"
        for stage in case.stages:
            scored, possible = _stage_points(outcomes, stage)
            assert possible > 0, f"{case.name}: no graded test of stage {stage!r} ran"
            assert scored == possible, f"{case.name}: {stage} {scored} / {possible}"
        return
    scored, possible = _stage_points(outcomes, case.stage)
    assert possible > 0, f"{case.name}: no graded test of stage {case.stage!r} ran"
    assert scored < possible, (
        f"{case.name} scores full marks for {case.stage} ({scored} / {possible})"
    )
    assert case.must_fail in failures, (
        f"{case.name}: {case.must_fail} passed; the failing tests are {sorted(failures)}"
    )
    assert case.says in failures[case.must_fail], (
        f"{case.name}: the message of {case.must_fail} does not say {case.says!r}:\n"
        f"{failures[case.must_fail]}"
    )
