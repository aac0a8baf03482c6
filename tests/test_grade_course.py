"""tools/grade.py on this repository's own course: a class of made-up submissions (slow: pytest -m
slow).

One grading run, as a grader would make it, of: the fresh exercise, the solution, one stage written,
a syntax error in cifar10_input.py, an endless loop in random_crop, three cheats (patching the
points plugin, shipping a results.json, os._exit at import), and every case of
tests/wrong_answers.py (the subtly wrong answers, and a stock Keras batch norm that is right). Each
must get what its work deserves.
"""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from wrong_answers import CASES, write_variant

REPO = Path(__file__).resolve().parent.parent
STUDENT_FILES = [
    "cifar10_input.py",
    "mlp.py",
    "cnn.py",
    "numpy_mlp.py",
    "numpy_conv.py",
    "numpy_batch_norm.py",
]
TOTAL = 115
ENDLESS_CROP = """

def random_crop(images, seed, pad):  # a submission whose crop never returns
    while True:
        pass
"""


def tree(tmp_path: Path, name: str, *solved: str) -> Path:
    """The exercise version, with the given stages' solutions kept (all of them: 'ALL')."""
    out = tmp_path / "trees" / name
    if solved == ("ALL",):
        out.mkdir(parents=True)
        for path in STUDENT_FILES:
            (out / path).write_bytes((REPO / path).read_bytes())
        return out
    command = [sys.executable, str(REPO / "tools" / "make_exercise.py"), "--out", str(out)]
    if solved:
        command += ["--solved", *solved]
    subprocess.run(command, check=True, capture_output=True)
    return out


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory) -> dict[str, dict]:
    tmp_path = tmp_path_factory.mktemp("class")
    submissions = {
        "exercise": tree(tmp_path, "exercise"),
        "solution": tree(tmp_path, "solution", "ALL"),
        "mlp-only": tree(tmp_path, "mlp-only", "MLP"),
    }
    broken = tree(tmp_path, "syntax-error", "ALL")
    (broken / "cifar10_input.py").write_text(
        (broken / "cifar10_input.py").read_text() + "\ndef oops(:\n"
    )
    submissions["syntax-error"] = broken
    endless = tree(tmp_path, "endless-crop", "ALL")
    (endless / "cifar10_input.py").write_text(
        (endless / "cifar10_input.py").read_text() + ENDLESS_CROP
    )
    submissions["endless-crop"] = endless
    patcher = tree(tmp_path, "patcher")
    text = (patcher / "mlp.py").read_text()
    patch = 'import grading as _g\n_g.GradingPlugin.score = lambda self, t: t["points"]\n'
    (patcher / "mlp.py").write_text(patch + text)
    submissions["patcher"] = patcher
    shipper = tree(tmp_path, "shipper")
    (shipper / "results.json").write_text(
        json.dumps({"score": TOTAL, "max_score": TOTAL, "tests": []})
    )
    submissions["shipper"] = shipper
    exiter = tree(tmp_path, "exiter")
    (exiter / "cnn.py").write_text("import os\nos._exit(0)\n" + (exiter / "cnn.py").read_text())
    submissions["exiter"] = exiter
    for case in CASES:
        variant = tree(tmp_path, f"wrong-{case.name}", "ALL")
        write_variant(variant, case)
        submissions[f"wrong-{case.name}"] = variant
    out = tmp_path / "results"
    command = [
        sys.executable,
        str(REPO / "tools" / "grade.py"),
        *map(str, submissions.values()),
        "--results",
        str(out),
        "--csv",
        str(tmp_path / "grades.csv"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=3000)
    assert result.returncode == 0, result.stderr[-3000:]
    graded = {name: json.loads((out / f"{name}.json").read_text()) for name in submissions}
    graded["csv"] = list(csv.DictReader((tmp_path / "grades.csv").open()))
    return graded


def stages(data: dict) -> dict:
    return {stage: value["score"] for stage, value in data["extra_data"]["stages"].items()}


def named_tests(data: dict, part: str) -> list[dict]:
    return [test for test in data["tests"] if part in test["name"]]


@pytest.mark.slow
def test_the_exercise_scores_nothing_and_the_solution_everything(graded_class):
    assert (graded_class["exercise"]["score"], graded_class["exercise"]["max_score"]) == (0, TOTAL)
    assert (graded_class["solution"]["score"], graded_class["solution"]["max_score"]) == (
        TOTAL,
        TOTAL,
    )
    assert all(
        t["output"].startswith("NOT IMPLEMENTED: ")
        for t in graded_class["exercise"]["tests"]
        if t["visibility"] == "visible"
    )


@pytest.mark.slow
def test_one_stage_written_scores_exactly_that_stage(graded_class):
    scores = stages(graded_class["mlp-only"])
    assert scores["MLP"] == 18 and sum(scores.values()) == 18, scores


@pytest.mark.slow
def test_a_syntax_error_in_the_input_pipeline_leaves_the_numpy_stages_graded(graded_class):
    data = graded_class["syntax-error"]
    assert data["max_score"] == TOTAL and len(data["tests"]) == len(
        graded_class["solution"]["tests"]
    )
    assert stages(data)["NumPy net"] == 13 and stages(data)["NumPy conv"] == 12, data["output"]
    assert stages(data)["augmentation"] == 0
    crop = named_tests(data, "test_augmentation.py")[0]
    assert crop["output"].startswith("not run: cifar10_input.py line "), crop["output"]
    assert "SyntaxError" in crop["output"]


@pytest.mark.slow
def test_an_endless_loop_times_out_alone(graded_class):
    data, solution = graded_class["endless-crop"], graded_class["solution"]
    timed_out = [t for t in data["tests"] if t["output"].startswith("timed out after")]
    assert timed_out and all("augmentation" in t["tags"] for t in timed_out), data["output"]
    assert {s: v for s, v in stages(data).items() if s != "augmentation"} == {
        s: v for s, v in stages(solution).items() if s != "augmentation"
    }, "the other stages are graded"
    assert "cut off:" in data["output"]
    assert data["execution_time"] < 2 * solution["execution_time"] + 60


@pytest.mark.slow
def test_cheats_score_no_more_than_their_honest_work(graded_class):
    assert (
        graded_class["patcher"]["score"] == 0
        and "points withheld" in graded_class["patcher"]["output"]
    )
    assert "mlp.py line 1 imports grading" in graded_class["patcher"]["output"]
    assert graded_class["shipper"]["score"] == 0
    assert graded_class["exiter"]["score"] == 0 and graded_class["exiter"]["max_score"] == TOTAL
    rows = {row["student"]: row for row in graded_class["csv"]}
    assert rows["solution"]["total"] == str(TOTAL) and rows["patcher"]["total"] == "0"
    assert "points withheld" in rows["patcher"]["problems"]


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_each_subtly_wrong_answer_loses_points_with_a_message_naming_it(graded_class, case):
    data, solution = graded_class[f"wrong-{case.name}"], graded_class["solution"]
    if case.must_fail is None:  # a right answer written another way
        assert data["score"] == solution["score"], data["output"]
        return
    assert stages(data)[case.stage] < stages(solution)[case.stage], data["output"]
    failed = {
        test["name"].split("::")[-1]: test for test in data["tests"] if test["status"] == "failed"
    }
    assert case.must_fail in failed, sorted(failed)
    if not failed[case.must_fail]["name"].startswith("tests/hidden/"):
        assert case.says in failed[case.must_fail]["output"], failed[case.must_fail]["output"]
