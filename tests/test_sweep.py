"""Tests for sweeps (train.py --sweep) and compare.py: the grid's run folders, continuing an
interrupted sweep, the picture and the tables, the data-size curve, TensorBoard's HParams. Not
graded."""

import csv
import json
import subprocess
import sys

import matplotlib.image
import pytest

import compare
import forking
import train
from helpers import REPO_ROOT, check_run_folder
from helpers import TINY_MLP as TINY
from plumbing import files, runs


def test_a_two_run_sweep_leaves_both_runs_the_picture_and_true_tables(sample_dir, tmp_path, capsys):
    code = train.main(
        [
            "--data-dir",
            str(sample_dir.parent),
            "--run-dir",
            str(tmp_path),
            *TINY,
            "--sweep",
            "lr=0.0001,0.01",
        ]
    )
    assert code == 0
    sweep_dir = tmp_path / "sweep-mlp-lr"
    assert sorted(p.name for p in sweep_dir.iterdir() if p.is_dir()) == ["lr=0.0001", "lr=0.01"]
    for run in ("lr=0.0001", "lr=0.01"):
        check_run_folder(sweep_dir / run, epochs=1)
    assert matplotlib.image.imread(sweep_dir / "comparison.png").shape[1] > 800
    rows = list(csv.DictReader(open(sweep_dir / "comparison.csv")))
    assert [row["options"] for row in rows] == ["lr=0.0001", "lr=0.01"]
    for row in rows:
        results = json.loads((sweep_dir / row["runs"] / "metrics.json").read_text())
        assert row["test accuracy (%)"] == f"{100 * results['test_accuracy']:.1f}"
        assert row["best val accuracy (%)"] == f"{100 * results['best_val_accuracy']:.1f}"
        assert row["best epoch"] == "1" and row["epochs"] == "1"
        assert row["parameters"] == f"{results['parameters']:,}"
    assert "| lr=0.01 | lr=0.01 |" in (sweep_dir / "comparison.md").read_text()
    assert "compared 2 runs" in capsys.readouterr().out
    result = subprocess.run(
        [sys.executable, "compare.py", str(sweep_dir), "--out", str(tmp_path / "c.png")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )  # as a student runs it
    assert (result.returncode, result.stderr) == (0, ""), (
        "TensorFlow's start-up noise must not show"
    )
    assert (tmp_path / "c.md").read_text() == (sweep_dir / "comparison.md").read_text()


@pytest.mark.slow  # 17 s: pytest -m slow
@pytest.mark.skipif(not forking.can_fork, reason="needs os.fork on Linux")
def test_an_interrupted_sweep_continues_with_the_same_command(sample_dir, tmp_path):
    argv = [
        "--data-dir",
        str(sample_dir.parent),
        "--run-dir",
        str(tmp_path),
        *TINY[:-1],
        "2",
        "--sweep",
        "seed=0,1",
    ]
    job = dict(root=str(REPO_ROOT), cwd=str(tmp_path), module="train", argv=argv)
    # 4 steps per run: the kill lands in the second run's first epoch
    killed, again = forking.run_jobs(
        [{**job, "fault": {"at": "step", "after": 5, "signal": 9}}, job]
    )
    assert killed["code"] == -9 and again["code"] == 0, again["output"][-2000:]
    assert "sweep-mlp-seed/seed=0 is finished" in again["output"], "the finished run is skipped"
    assert "resuming from epoch 1" in again["output"] or "sweep-mlp-seed/seed=1" in again["output"]
    for seed in (0, 1):
        check_run_folder(tmp_path / "sweep-mlp-seed" / f"seed={seed}", epochs=2)
    assert (tmp_path / "sweep-mlp-seed" / "comparison.md").is_file()


@pytest.mark.slow  # 8 s: pytest -m slow
def test_two_jobs_share_a_sweep_and_the_last_one_compares(sample_dir, tmp_path, capsys):
    argv = [
        "--data-dir",
        str(sample_dir.parent),
        "--run-dir",
        str(tmp_path),
        *TINY,
        "--sweep",
        "lr=0.0001,0.01",
    ]
    sweep_dir = tmp_path / "sweep-mlp-lr"
    sweep_dir.mkdir()
    with files.locked(sweep_dir / ".lr=0.0001.lock"):  # another job is training the first point
        assert train.main(argv) == 0
    out = capsys.readouterr().out
    assert "lr=0.0001 is being trained by another job" in out and "1 run(s)" in out
    assert not (sweep_dir / "lr=0.0001").exists(), "the other job's point is left alone"
    check_run_folder(sweep_dir / "lr=0.01", epochs=1)
    assert not (sweep_dir / "comparison.png").exists(), "only the job that finishes last compares"
    assert train.main(argv) == 0  # the other job stopped: the same command finishes the sweep
    check_run_folder(sweep_dir / "lr=0.0001", epochs=1)
    assert "lr=0.01 is finished" in capsys.readouterr().out
    assert (sweep_dir / "comparison.png").is_file()


@pytest.mark.parametrize(
    "sweep,message",
    [
        ("lr=0.1,x", "--sweep lr=x: argument --lr: invalid float value"),
        ("no_such_key=1,2", "--sweep no_such_key=1: unrecognized arguments"),
        ("lr", "--sweep 'lr': write KEY=V1,V2"),
        ("optimizer=adam,bogus", "argument --optimizer: invalid choice"),
        ("dropout=0.5,1.5", "--dropout must be in [0, 1)"),
        ("deterministic=true,false", "--sweep deterministic: that option cannot vary in a sweep"),
    ],
)
def test_bad_sweeps_are_usage_errors_before_anything_runs(sweep, message, tmp_path, capsys):
    assert train.main(["--run-dir", str(tmp_path), *TINY, "--sweep", sweep]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_compare_draws_the_data_size_curve_and_averages_seeds(sample_dir, tmp_path, capsys):
    assert (
        train.main(
            [
                "--data-dir",
                str(sample_dir.parent),
                "--run-dir",
                str(tmp_path),
                *TINY[:4],
                *TINY[6:],
                "--sweep",
                "num-train-examples=50,100",
                "--sweep",
                "seed=0,1",
                "--name",
                "size",
            ]
        )
        == 0
    )
    image = matplotlib.image.imread(tmp_path / "size" / "comparison.png")
    assert image.shape[1] > 1400, "a third panel: accuracy against the number of training examples"
    rows = list(csv.DictReader(open(tmp_path / "size" / "comparison.csv")))
    assert [(row["options"], row["runs"]) for row in rows] == [
        ("num-train-examples=50", "2 seeds"),
        ("num-train-examples=100", "2 seeds"),
    ]
    tests = [
        json.loads(
            (tmp_path / "size" / f"num-train-examples=50_seed={s}" / "metrics.json").read_text()
        )["test_accuracy"]
        for s in (0, 1)
    ]
    assert rows[0]["test accuracy (%)"].startswith(f"{50 * (tests[0] + tests[1]):.1f}")
    results = json.loads(
        (tmp_path / "size" / "num-train-examples=50_seed=0" / "metrics.json").read_text()
    )
    assert results["train_examples"] == 50, "the curve's x: the images the run trained on"


def test_compare_rejects_a_folder_that_is_not_a_run(tmp_path, capsys):
    (tmp_path / "notes").mkdir()
    assert compare.main([str(tmp_path / "notes")]) == 2
    err = capsys.readouterr().err
    assert (
        "is not a run folder (no config.json) nor a folder of runs" in err and err.count("\n") == 1
    )


def test_each_run_logs_its_hyper_parameters_for_tensorboard(sample_dir, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    argv = ["--data-dir", str(sample_dir.parent), "--run-dir", str(tmp_path), *TINY, "--name", "hp"]
    assert train.main(argv) == 0
    events = EventAccumulator(str(tmp_path / "hp" / "tb")).Reload()
    content = events.PluginTagToContent("hparams")
    data = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hparams = data.session_start_info.hparams
    assert (
        hparams["lr"].number_value == pytest.approx(1e-3) and hparams["model"].string_value == "mlp"
    )
    assert "results/test_accuracy" in events.Tags()["tensors"]
    assert runs.summary(tmp_path / "hp").startswith("1 epochs, test accuracy")
