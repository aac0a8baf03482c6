"""Fault injection (pytest -m faults): a short run interrupted at random moments by random signals,
then continued until it finishes, must end bit for bit where an uninterrupted --deterministic run
ends.

Each try interrupts the run once with SIGINT, SIGTERM, a double SIGINT or SIGKILL, either some
seconds after main starts (anywhere: the data, the model, a step, validation, a checkpoint, the
test, the plots) or after a chosen training step or file write. It is then continued as a user
would: `--resume RUN` when the folder holds a config.json, else the same command again. Some of
those continuations are interrupted too. Seeded: FAULT_SEED and FAULT_TRIES (default 21 and 24)
choose other tries. Jobs run in forked children of one helper process (tests/forking.py): TensorFlow
is loaded once.
"""

import os
import random
import signal
from pathlib import Path

import pytest

import forking
from helpers import assert_same_outcome, run_outcome

pytestmark = [
    pytest.mark.faults,
    pytest.mark.skipif(not forking.can_fork, reason="needs os.fork on Linux"),
]

REPO = Path(__file__).resolve().parent.parent
SEED, TRIES = int(os.environ.get("FAULT_SEED", 21)), int(os.environ.get("FAULT_TRIES", 24))
RUN = [
    "--preset",
    "linear",
    "--num-train-examples",
    "100",
    "--val-size",
    "50",
    "--batch-size",
    "20",
    "--epochs",
    "2",
    "--flip",
    "--crop",
    "2",
    "--deterministic",
]  # 5 steps per epoch, augmented
STEPS = 10
SIGNALS = {
    "SIGINT": (signal.SIGINT, 1),
    "SIGTERM": (signal.SIGTERM, 1),
    "double SIGINT": (signal.SIGINT, 2),
    "SIGKILL": (signal.SIGKILL, 1),
}
# Exit codes a run may end with once signalled: 128 + the signal (stopped cleanly), -15 (a SIGTERM
# before main installs its handler: only in these forked children, which skip train.py's start-up
# handler), -9 (killed). Never 0: a stop is never lost. A run the signal did not reach (it had
# finished) exits 0.
EXPECTED = {"SIGINT": {130}, "SIGTERM": {143, -15}, "double SIGINT": {130}, "SIGKILL": {-9}}


def signalled(fault: dict | None, report: dict) -> bool:
    """Whether the fault's signal was sent: its moment came before the run ended (a child killed by
    it reports no events)."""
    if fault is None:
        return False
    if "events" not in report:
        return True
    events = report["events"]
    return "signal" in events if fault["at"] == "time" else len(events) >= fault["after"]


def random_fault(rng: random.Random, seconds: float, writes: int) -> tuple[str, dict]:
    """A signal and its moment: a time in the run (half the tries), else a step or a write."""
    name = rng.choice(list(SIGNALS))
    signum, repeat = SIGNALS[name]
    kind = rng.choice(["time", "time", "step", "write"])
    after = (
        round(rng.uniform(0.05, seconds), 2)
        if kind == "time"
        else rng.randint(1, STEPS if kind == "step" else writes)
    )
    return name, dict(at=kind, after=after, signal=int(signum), repeat=repeat)


def next_job(
    name: str,
    history: list,
    rng: random.Random,
    base: list[str],
    job: dict,
    seconds: float,
    last: bool,
) -> dict:
    """What a user does next with a try's run: --resume RUN when it has a config.json, else the same
    command again; an interrupted continuation sometimes (never in the last round)."""
    folder = Path(job["cwd"]) / name
    what, fault = "nothing", None
    if not last and rng.random() < 0.3:
        what, fault = random_fault(rng, seconds / 2, 3)
    history.append((what, fault, None))
    argv = (
        ["--resume", str(folder)] if (folder / "config.json").is_file() else [*base, "--name", name]
    )
    return {**job, "argv": argv, **({"fault": fault} if fault else {})}


def test_random_signals_at_random_moments_resume_to_the_uninterrupted_result(sample_dir, tmp_path):
    base = ["--data-dir", str(sample_dir.parent), "--run-dir", str(tmp_path), *RUN]
    job = dict(root=str(REPO), cwd=str(tmp_path), module="train")
    record = {**job, "argv": [*base, "--name", "reference"], "fault": {"at": "record"}}
    (reference,) = forking.run_jobs([record])
    assert reference["code"] == 0, reference["output"][-3000:]
    expected, seconds = run_outcome(tmp_path / "reference"), reference["seconds"]
    rng = random.Random(SEED)
    tries = {f"try{i}": [] for i in range(TRIES)}  # each try's history: (what, fault, exit code)
    jobs = {}
    for name, history in tries.items():  # the first round: every try interrupted once
        what, fault = random_fault(rng, seconds, len(reference["events"]))
        history.append((what, fault, None))
        jobs[name] = {**job, "argv": [*base, "--name", name], "fault": fault}
    for round_number in range(1, 5):
        reports = forking.run_jobs(list(jobs.values()))
        for name, report in zip(jobs, reports):
            what, fault, _ = tries[name][-1]
            tries[name][-1] = (what, fault, report["code"])
            allowed = EXPECTED[what] if signalled(fault, report) else {0}
            details = f"{report.get('error', '')}\n{report['output'][-3000:]}"
            assert report["code"] in allowed, (
                f"{name} {tries[name]}: exit not in {allowed}\n{details}"
            )
        output = reports[0]["output"]
        assert "Traceback" not in output and "Exception ignored" not in output, output[-5000:]
        jobs = {
            name: next_job(name, history, rng, base, job, seconds, last=round_number == 3)
            for name, history in tries.items()
            if history[-1][2] != 0
        }
        if not jobs:
            break
    for name, history in tries.items():
        assert history[-1][2] == 0, f"{name} did not finish: {history}"
        assert_same_outcome(run_outcome(tmp_path / name), expected, f"{name} {history}")
    landed = {
        what for history in tries.values() for what, fault, code in history if fault and code != 0
    }
    assert landed == set(SIGNALS), f"every kind of signal interrupted some run: {landed}"
