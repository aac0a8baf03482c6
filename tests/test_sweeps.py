"""Sweeps that meet trouble: a diverging point, a point the data cannot serve, a damaged sweep.json,
and options that cannot vary. Each either goes on (a diverged point is a result) or stops in one
line before anything trains. Not graded. Numbers in comments refer to issue 21."""

import csv
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

import train
from helpers import TINY_MLP as TINY
from plumbing import errors, sweep


def one_line(capsys, code: int, expected_code: int, text: str) -> str:
    err = capsys.readouterr().err
    assert (
        code == expected_code and text in err and err.count("\n") == 1 and "Traceback" not in err
    ), err
    return err


def fake_plan(tmp_path, lrs):
    """A plan as options.sweep_plan makes it, for sweep.run with a stand-in for train_one."""
    return dict(
        folder=tmp_path / "sweep",
        grid=[({"lr": lr}, {"lr": lr}) for lr in lrs],
        command={"flags": {}, "sweeps": {"lr": lrs}},
    )


def fake_train_one(trained: list):
    """train_one that "trains" a point: lr 1e9 diverges (after writing its config.json), others
    finish."""

    def train_one(config, resume):
        run_dir = Path(config["run_dir"]) / config["name"]
        run_dir.mkdir(exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps({"options": config}))
        trained.append((config["lr"], resume))
        if config["lr"] > 1e6:
            raise errors.DivergedError("the loss became inf", loss=float("inf"), epoch=1, step=3)
        (run_dir / "metrics.json").write_text("{}")
        return 0

    return train_one


# ----------------------------------------------------------------------------- a diverging point
def test_the_divergence_guard_raises_what_a_sweep_records():
    state = SimpleNamespace(epochs_done=0)
    with pytest.raises(errors.DivergedError) as caught:
        train.check_loss(float("nan"), 0, 3, {"lr": 0.1, "batch_size": 128}, state)
    assert (caught.value.epoch, caught.value.step) == (
        1,
        3,
    ) and caught.value.loss != caught.value.loss
    suggestion = "start a new run with --lr 0.01 --batch-size 128 (nothing was learnt)"
    assert suggestion in str(caught.value), "one run: one line"


def test_a_diverged_point_is_recorded_and_the_sweep_goes_on_to_compare(tmp_path, capsys):
    trained, compared = [], []
    plan = fake_plan(tmp_path, [0.001, 1e9, 0.01])
    code = sweep.run(plan, fake_train_one(trained), lambda argv: compared.append(argv) or 0)
    assert code == 0 and [lr for lr, _ in trained] == [0.001, 1e9, 0.01], (
        "the point after it trains"
    )
    record = json.loads((tmp_path / "sweep" / "lr=1000000000.0" / "diverged.json").read_text())
    assert record == {
        "loss": "inf",
        "epoch": 1,
        "step": 3,
        "message": "the loss became inf at epoch 1, step 3",
    }
    assert compared == [
        [str(tmp_path / "sweep"), "--out", str(tmp_path / "sweep" / "comparison.png")]
    ]
    out = capsys.readouterr().out
    assert (
        "lr=1000000000.0 diverged: the loss became inf at epoch 1, step 3; recorded as diverged"
        in out
    )
    assert "1 run(s) diverged: lr=1000000000.0" in out


def test_the_same_command_again_skips_a_diverged_point_instead_of_resuming_it(tmp_path, capsys):
    plan = fake_plan(tmp_path, [1e9, 0.01])
    assert sweep.run(plan, fake_train_one([]), lambda argv: 0) == 0
    trained, compared = [], []
    assert sweep.run(plan, fake_train_one(trained), lambda argv: compared.append(argv) or 0) == 0
    assert trained == [] and len(compared) == 1, "nothing trains again; the comparison is drawn"
    assert (
        "lr=1000000000.0 diverged: the loss became inf at epoch 1, step 3\n"
        in capsys.readouterr().out
    )


@pytest.mark.slow
def test_a_sweep_with_a_diverging_learning_rate_finishes_and_its_table_says_diverged(
    sample_dir, tmp_path
):
    argv = [
        "--data-dir",
        str(sample_dir.parent),
        "--run-dir",
        str(tmp_path),
        *TINY,
        "--sweep",
        "lr=1e9,0.01",
    ]
    assert train.main(argv) == 0
    rows = {
        row["options"]: row
        for row in csv.DictReader(open(tmp_path / "sweep-mlp-lr" / "comparison.csv"))
    }
    assert rows["lr=1000000000.0"]["test accuracy (%)"] == "diverged"
    assert rows["lr=0.01"]["test accuracy (%)"] not in ("diverged", "unfinished")
    assert (tmp_path / "sweep-mlp-lr" / "lr=1000000000.0" / "diverged.json").is_file()
    assert train.main(argv) == 0, "the same command again: nothing to train, the comparison again"


# ------------------------------------------------------------------------ every point checked first
def test_a_point_the_data_cannot_serve_is_a_usage_error_before_the_first_point_trains(
    sample_dir, tmp_path, capsys
):
    argv = [
        "--data-dir",
        str(sample_dir.parent),
        "--run-dir",
        str(tmp_path / "runs"),
        *TINY[:8],
        "--epochs",
        "1",
        "--sweep",
        "batch-size=50,1000",
    ]
    one_line(
        capsys, train.main(argv), 2, "--batch-size 1000 is larger than the 100 training examples"
    )
    assert not (tmp_path / "runs").exists(), "nothing trained, no sweep folder"


def test_only_the_points_still_to_train_are_checked_against_their_data(tmp_path):
    plan, checked = fake_plan(tmp_path, [0.001, 1e9, 0.01]), []
    assert sweep.run(plan, fake_train_one([]), lambda argv: 0, check_data=checked.append) == 0
    assert [config["lr"] for config in checked] == [0.001, 1e9, 0.01], (
        "all of them, before the first trains"
    )
    checked.clear()
    assert sweep.run(plan, fake_train_one([]), lambda argv: 0, check_data=checked.append) == 0
    assert checked == [], "finished and diverged points need no data to be compared again"


@pytest.mark.parametrize("key", ["data-url", "data-dir"])
def test_where_the_data_comes_from_cannot_vary_in_a_sweep(key, tmp_path, capsys):
    argv = [
        "--run-dir",
        str(tmp_path),
        *TINY,
        "--sweep",
        f"{key}={tmp_path}/a.tar.gz,{tmp_path}/b.tar.gz",
    ]
    one_line(
        capsys,
        train.main(argv),
        2,
        f"--sweep {key}: where the data comes from cannot vary in a sweep",
    )
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------- a damaged sweep.json
@pytest.mark.parametrize("damage", ['{"flags": {}, "swe', "[]", ""])
def test_a_damaged_sweep_json_is_named_damaged_and_deleting_it_lets_the_command_continue(
    damage, tmp_path, capsys
):
    plan = fake_plan(tmp_path, [0.001, 0.01])
    assert sweep.run(plan, fake_train_one([]), lambda argv: 0) == 0
    capsys.readouterr()
    (plan["folder"] / "comparison.png").write_bytes(b"")  # what the finished sweep drew
    record = plan["folder"] / "sweep.json"
    record.write_text(damage)
    with pytest.raises(
        sweep.DataError, match="sweep.json is damaged .*delete sweep.json and run the command again"
    ):
        sweep.run(plan, fake_train_one([]), lambda argv: 0)
    record.unlink()
    trained = []
    code = sweep.run(plan, fake_train_one(trained), lambda argv: 0)
    assert code == 0 and trained == [], "the finished runs are kept"
    assert json.loads(record.read_text()) == plan["command"]


def test_a_folder_holding_other_files_is_still_not_taken_over(tmp_path):
    plan = fake_plan(tmp_path, [0.001])
    plan["folder"].mkdir()
    (plan["folder"] / "notes.txt").write_text("mine")
    with pytest.raises(sweep.UsageError, match="exists and is not a sweep folder"):
        sweep.run(plan, fake_train_one([]), lambda argv: 0)
