"""Run folders and --resume (not graded): a damaged checkpoint state file, lost checkpoints, other
data, a config.json of another shape, a finished run with a damaged best.keras, a folder left while
its config.json was written. Each case resumes exactly where the run was, or gives one line; a run
is never started over silently."""

import json
import shutil
from pathlib import Path

import pytest

import train
from helpers import (
    TINY,
    assert_one_line,
    assert_same_outcome,
    check_run_folder,
    run_outcome,
    run_train,
)


@pytest.fixture
def run(trained, tmp_path) -> Path:
    """A copy of the finished run, with metrics.json removed so that --resume has work to do."""
    copy = tmp_path / "runs" / trained.name
    shutil.copytree(trained, copy)
    (copy / "metrics.json").unlink()
    return copy


# ----------------------------------------------------------------------------- the checkpoints
@pytest.mark.parametrize(
    "state_file",
    [  # the default run checks "missing"; -m slow the other two (the 5-minute budget)
        pytest.param("garbage", marks=pytest.mark.slow),
        pytest.param("empty", marks=pytest.mark.slow),
        "missing",
    ],
)
def test_resume_finds_the_checkpoint_when_its_state_file_is_damaged(
    run, trained, state_file, capsys
):
    metrics = (run / "metrics.csv").read_text()
    state = run / "checkpoints" / "checkpoint"
    if state_file == "missing":
        state.unlink()
    else:
        state.write_bytes(b"" if state_file == "empty" else b"\x00\x01 not a checkpoint state \xff")
    assert train.main(["--resume", str(run)]) == 0
    out = capsys.readouterr().out
    assert "resuming from epoch 2, step 0" in out, "the run must go on, not start over"
    assert (run / "metrics.csv").read_text() == metrics, "the epoch was not trained again"
    assert_same_outcome(run_outcome(run), run_outcome(trained), f"state file {state_file}")
    assert sorted(p.name for p in (run / "checkpoints").iterdir())[0] == "checkpoint"


def test_resume_refuses_a_run_whose_checkpoints_were_deleted(run, capsys):
    metrics = (run / "metrics.csv").read_text()
    for path in (run / "checkpoints").glob("ckpt-*"):
        path.unlink()
    code = train.main(["--resume", str(run)])
    assert_one_line(
        capsys, code, 1, "holds no checkpoint (its ckpt-* files are gone), but the run had"
    )
    assert (run / "metrics.csv").read_text() == metrics, "nothing was overwritten"
    shutil.rmtree(run / "checkpoints")  # the whole folder gone: the same
    assert_one_line(capsys, train.main(["--resume", str(run)]), 1, "holds no checkpoint")
    assert (run / "metrics.csv").read_text() == metrics


def test_resume_skips_a_damaged_newer_checkpoint_for_the_newest_intact_one(run, trained, capsys):
    folder = run / "checkpoints"
    index = next(folder.glob("ckpt-*.index"))
    number = int(index.stem.removeprefix("ckpt-"))
    (folder / f"ckpt-{number + 1}.index").write_bytes(
        index.read_bytes()[:50]
    )  # as if cut while saving
    assert train.main(["--resume", str(run)]) == 0
    out = capsys.readouterr().out
    assert (
        f"skipped the damaged checkpoint ckpt-{number + 1}" in out
        and "resuming from epoch 2" in out
    )
    assert_same_outcome(run_outcome(run), run_outcome(trained), "after skipping the damaged one")


# ----------------------------------------------------------------------------- the data
def test_resume_refuses_a_data_folder_other_than_the_runs(run, sample_dir, tmp_path, capsys):
    other = tmp_path / "other" / sample_dir.name
    shutil.copytree(sample_dir, other)
    batch = other / "data_batch_1.bin"
    batch.write_bytes(b"\x03" + batch.read_bytes()[1:])  # one label changed: other data
    metrics = (run / "metrics.csv").read_text()
    code = train.main(["--resume", str(run), "--data-dir", str(other.parent)])
    line = assert_one_line(capsys, code, 2, f"{other} holds other data than {run} was trained on")
    assert "resume it on its own data (drop --data-dir/--data-url), or start a new run" in line
    assert (run / "metrics.csv").read_text() == metrics and not (run / "metrics.json").exists()


def test_resume_follows_the_same_data_to_another_folder(run, trained, sample_dir, tmp_path, capsys):
    moved = tmp_path / "moved" / sample_dir.name
    shutil.copytree(sample_dir, moved)
    assert train.main(["--resume", str(run), "--data-dir", str(moved.parent)]) == 0
    assert f"from {moved}" in capsys.readouterr().out
    assert_same_outcome(run_outcome(run), run_outcome(trained), "on the moved data")


# ----------------------------------------------------------------------------- config.json
def edit_options(run_dir: Path, change) -> None:
    path = run_dir / "config.json"
    saved = json.loads(path.read_text())
    saved["options"] = change(saved["options"])
    path.write_text(json.dumps(saved))


@pytest.mark.parametrize(
    "change,message",
    [
        (
            lambda o: {k: v for k, v in o.items() if k != "cutout"},
            "has no option 'cutout' (written by an older",
        ),
        (lambda o: [], "is damaged (not the JSON train.py writes)"),
        (lambda o: None, "is damaged (not the JSON train.py writes)"),
        (lambda o: {**o, "batch_size": "64"}, "option 'batch_size' is \"64\", not a whole number"),
        (lambda o: {**o, "flip": 1}, "option 'flip' is 1, not true or false"),
        (lambda o: {**o, "lr": -1.0}, "a saved value is wrong (--lr must be positive)"),
        (
            lambda o: {**o, "model": "resnet"},
            "its model, preset or dataset is not one this version knows",
        ),
        (
            lambda o: {**o, "optimizer": "lbfgs"},
            "option 'optimizer' is \"lbfgs\", not one of ('sgd', ",
        ),
        (lambda o: {**o, "val_size": [50]}, "option 'val_size' is [50], not a whole number"),
    ],
)
def test_resume_and_eval_only_give_one_line_for_a_config_of_another_shape(
    run, change, message, capsys
):
    edit_options(run, change)
    for argv in (["--resume", str(run)], ["--eval-only", str(run / "best.keras")]):
        line = assert_one_line(capsys, train.main(argv), 1, message)
        assert line.startswith(f"error: {run / 'config.json'}"), line


def test_a_config_with_a_wrong_model_option_gives_one_line(sample_dir, tmp_path, capsys):
    code, run_dir = run_train(
        sample_dir.parent,
        tmp_path,
        "--model",
        "mlp",
        "--hidden-units",
        "16",
        *TINY[2:],
        "--epochs",
        "1",
    )
    assert code == 0
    (run_dir / "metrics.json").unlink()
    edit_options(run_dir, lambda o: {**o, "hidden_units": ["16"]})
    assert_one_line(
        capsys,
        train.main(["--resume", str(run_dir)]),
        1,
        "option 'hidden_units' is [\"16\"], not a list of whole numbers",
    )
    edit_options(run_dir, lambda o: {**o, "hidden_units": [16], "activation": "swish"})
    code = train.main(["--resume", str(run_dir)])
    assert_one_line(capsys, code, 1, "option 'activation' is \"swish\", not one of ('relu',")


# ----------------------------------------------------------------------------- finished runs
def test_resume_rewrites_the_damaged_best_model_of_a_finished_run(trained, tmp_path, capsys):
    run = tmp_path / trained.name
    shutil.copytree(trained, run)
    best = run / "best.keras"
    best.write_bytes(best.read_bytes()[:500])
    assert_one_line(
        capsys,
        train.main(["--eval-only", str(best)]),
        1,
        f"rewrite it from its run's checkpoint with python train.py --resume {run}",
    )
    assert train.main(["--resume", str(run)]) == 0  # what the line above advises
    out = capsys.readouterr().out
    assert f"{run} is finished, but its best.keras is damaged: rewriting" in out
    assert_same_outcome(run_outcome(run), run_outcome(trained), "after rewriting best.keras")
    check_run_folder(run, epochs=1)
    assert train.main(["--resume", str(run)]) == 0
    assert "is finished: 1 epochs" in capsys.readouterr().out, "repaired: nothing more to do"


# ----------------------------------------------------------------------- folders that never started
@pytest.mark.parametrize(
    "temporary",
    [pytest.param("config.tmp-999999.json", marks=pytest.mark.slow), "config.json.tmp-999999"],
)  # one name in the default run
def test_a_folder_killed_while_writing_its_config_is_started_by_the_same_command(
    sample_dir, tmp_path, temporary, capsys
):
    folder = tmp_path / "early"
    folder.mkdir()
    (folder / ".lock").touch()
    (folder / temporary).write_text('{"options": {"mod')  # cut by a kill during the atomic write
    assert_one_line(
        capsys,
        train.main(["--resume", str(folder)]),
        2,
        "holds no run (it was stopped before it started); start it again with the same command",
    )
    code, run_dir = run_train(sample_dir.parent, tmp_path, *TINY, "--epochs", "1", name="early")
    assert code == 0
    check_run_folder(run_dir, epochs=1)  # the stale temporary file is gone too


def test_a_folder_holding_other_files_is_not_taken_for_a_run_that_never_started(
    sample_dir, tmp_path, capsys
):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("my own notes")
    code, _ = run_train(sample_dir.parent, tmp_path, *TINY, "--epochs", "1", name="mine")
    assert_one_line(capsys, code, 2, f"{folder} already exists; choose another --name")
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
