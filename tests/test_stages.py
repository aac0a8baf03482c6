"""The exercise version as students and graders meet it, and each stage standing alone.

From the generated exercise: `pytest -m points` fails every graded test with its NOT IMPLEMENTED
line (none skips), `train.py` trains the linear model out of the box and names the first missing
piece of any other. With only one stage's regions written (and those of the stages it builds on),
that stage's graded tests pass and its commands run to the end.

Not graded and left out of the exercise version (it needs the solution). All the runs happen in one
session (tests/forking.py: TensorFlow loaded once, a forked child per job, each importing its own
tree)."""

import re
import shutil
import time
from pathlib import Path

import pytest

import forking
from helpers import check_run_folder
from tools import make_exercise as mx

REPO = Path(__file__).resolve().parent.parent
SHORT = ["--epochs", "1", "--num-train-examples", "100", "--val-size", "50", "--batch-size", "50"]
# stage: (the stages it builds on, its graded test file, the commands that run its code)
STAGES = {
    "augmentation": (
        (),
        "test_augmentation.py",
        [
            ["train", "--preset", "linear", "--flip", "--crop", "4", *SHORT],
            [
                "train",
                "--preset",
                "linear",
                "--brightness",
                "0.2",
                "--contrast",
                "0.2",
                "--cutout",
                "8",
                *SHORT,
            ],
        ],
    ),
    "MLP": (
        (),
        "test_mlp.py",
        [
            ["train", "--preset", "mlp", *SHORT],
            ["train", "--preset", "mlp", "--dropout", "0.3", *SHORT],
        ],
    ),
    "CNN": ((), "test_cnn.py", [["train", "--preset", "cnn", *SHORT]]),
    "batch norm": (("CNN",), "test_batch_norm.py", [["train", "--preset", "cnn-bn", *SHORT]]),
    "strided & dropout": (
        ("CNN", "batch norm"),
        "test_strided_dropout.py",
        [["train", "--preset", "cnn-strided", *SHORT], ["train", "--preset", "cnn-large", *SHORT]],
    ),
    "NumPy net": (
        (),
        "test_numpy_mlp.py",
        [["numpy_mlp", "--iterations", "20", "--plot", "curves.png"]],
    ),
    "NumPy conv": ((), "test_numpy_conv.py", [["numpy_conv"]]),
}
pytestmark = pytest.mark.slow  # about 2.5 minutes: pytest -m slow
# -n 0: in the forked child itself, not in workers of its own
GRADED = ["-q", "-p", "no:cacheprovider", "-m", "points", "-n", "0"]


def tree_for(solved: frozenset, folder: Path) -> Path:
    files, _, _ = mx.build_exercise(REPO, solved)
    mx.write_tree(files, folder)
    return folder


@pytest.fixture(scope="module")
def session(sample_dir, tmp_path_factory):
    """Runs every job once: (description, job, report) for each."""
    if not (REPO / ".git").exists():
        pytest.fail(f"{REPO} is not a git checkout; tools/make_exercise.py lists files with git")
    root = tmp_path_factory.mktemp("stages")
    fresh = tree_for(frozenset(), root / "exercise")
    shutil.copytree(REPO / "tests" / "hidden", fresh / "tests" / "hidden")  # as a grader runs it
    data = ["--data-dir", str(sample_dir.parent), "--run-dir", "runs"]
    jobs = [
        ("exercise: pytest -m points", dict(module="pytest", argv=[*GRADED, "-rf"])),
        (
            "exercise: train.py --model linear",
            dict(module="train", argv=[*data, "--model", "linear", *SHORT, "--name", "linear"]),
        ),
        (
            "exercise: train.py --model cnn",
            dict(module="train", argv=[*data, "--model", "cnn", *SHORT]),
        ),
    ]
    jobs = [(what, {**job, "root": str(fresh), "cwd": str(fresh)}) for what, job in jobs]
    for stage, (builds_on, test_file, commands) in STAGES.items():
        tree = tree_for(
            frozenset({stage, *builds_on}), root / stage.replace(" ", "_").replace("&", "and")
        )
        where = dict(root=str(tree), cwd=str(tree))
        jobs.append(
            (
                f"{stage}: pytest tests/{test_file}",
                {**where, "module": "pytest", "argv": [*GRADED, f"tests/{test_file}"]},
            )
        )
        for n, (module, *argv) in enumerate(commands):
            extra = {"train": [*data, "--name", str(n)], "numpy_mlp": data[:2]}.get(module, [])
            jobs.append(
                (
                    f"{stage}: python {module}.py {' '.join(argv)}",
                    {**where, "module": module, "argv": argv + extra},
                )
            )
    start = time.perf_counter()
    reports = forking.run_jobs([job for _, job in jobs])
    print(
        f"{len(jobs)} jobs in {time.perf_counter() - start:.0f} s: "
        + ", ".join(f"{what} {report['seconds']} s" for (what, _), report in zip(jobs, reports))
    )
    return [(what, job, report) for (what, job), report in zip(jobs, reports)]


@pytest.mark.skipif(not forking.can_fork, reason="needs os.fork on Linux")
def test_the_exercise_scores_zero_and_no_graded_test_skips(session):
    ((_, job, report),) = [entry for entry in session if entry[0] == "exercise: pytest -m points"]
    assert report["code"] == 1, report["output"][
        -3000:
    ]  # failures: not 2 (collection), 4 (usage), 5 (none)
    failed = [line for line in report["output"].splitlines() if line.startswith("FAILED tests/")]
    modules = {line.split()[1].split("::")[0] for line in failed}
    assert modules == {f"tests/{test_file}" for _, test_file, _ in STAGES.values()} | {
        "tests/hidden/test_hidden_cnn.py"
    }
    not_stubbed = [line for line in failed if " - NOT IMPLEMENTED: " not in line]
    assert not not_stubbed, f"graded tests that fail for another reason than a stub: {not_stubbed}"
    assert re.search(r"total +0 / 115", report["output"]), report["output"][-2000:]


@pytest.mark.skipif(not forking.can_fork, reason="needs os.fork on Linux")
def test_the_exercise_trains_the_linear_model_and_names_the_first_missing_piece(session):
    linear, cnn = [entry for entry in session if entry[0].startswith("exercise: train.py")]
    assert linear[2]["code"] == 0, linear[2]["output"][-3000:]
    check_run_folder(Path(linear[1]["cwd"]) / "runs" / "linear", epochs=1)
    assert cnn[2]["code"] == 2
    assert re.search(
        r"NOT IMPLEMENTED: cnn.py::build_cnn: .*; write it \(see the TODO there\), then run "
        r"again",
        cnn[2]["output"],
    )
    assert sorted(p.name for p in (Path(cnn[1]["cwd"]) / "runs").iterdir()) == ["linear"], (
        "the failed run leaves no run folder"
    )


@pytest.mark.skipif(not forking.can_fork, reason="needs os.fork on Linux")
def test_each_stage_with_only_its_own_code_passes_its_tests_and_runs(session):
    stages = [entry for entry in session if not entry[0].startswith("exercise:")]
    failures = [
        f"{what} exited {report['code']} {report.get('error', '')}"
        for what, _, report in stages
        if report["code"] != 0
    ]
    assert not failures, "\n".join(failures) + "\n" + stages[0][2]["output"][-4000:]
    for _, job, _ in stages:
        if job["module"] == "train":
            name = job["argv"][job["argv"].index("--name") + 1]
            check_run_folder(Path(job["cwd"]) / "runs" / name, epochs=1)
