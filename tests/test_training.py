"""Tests for train.py: presets end to end, the run folder, resume, the NaN guard, usage errors."""

import csv
import json
import math
import signal
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import cifar10_input as ci
import train

REPO = Path(__file__).resolve().parent.parent
SMALL = ["--num-train-examples", "128", "--val-size", "64", "--batch-size", "64"]  # 2 steps per epoch


def _run(mini_dir, tmp_path, *args, name="run"):
    argv = ["--data-dir", str(mini_dir.parent), "--run-dir", str(tmp_path), "--name", name, *args]
    return train.main(argv), tmp_path / name


def _check_run_folder(run_dir: Path, mini_dir: Path, epochs: int) -> None:
    expected = ["config.json", "metrics.csv", "metrics.json", "best.keras", "learning_curves.png",
                "confusion_matrix.png", "confusion_matrix.csv", "per_class_accuracy.png", "confident_mistakes.png"]
    missing = [f for f in expected if not (run_dir / f).is_file()]
    assert not missing, f"run folder lacks {missing}"
    assert list((run_dir / "tensorboard" / "train").glob("events.out.tfevents.*")), "no TensorBoard events"
    assert (run_dir / "checkpoints" / "checkpoint").is_file(), "no checkpoint for --resume"

    config = json.loads((run_dir / "config.json").read_text())
    assert config["versions"]["tensorflow"] == tf.__version__ and "git_commit" in config
    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == list(range(1, epochs + 1)), "one metrics.csv row per epoch"
    for row in rows:
        assert 0 <= float(row["train_accuracy"]) <= 1 and math.isfinite(float(row["train_loss"]))
        assert float(row["weight_penalty"]) > 0 and float(row["images_per_second"]) > 0

    with open(run_dir / "confusion_matrix.csv") as f:
        matrix = np.array([[int(v) for v in line.split(",")[1:]] for line in list(f)[1:]])
    assert matrix.shape == (10, 10) and matrix.sum() == 500, "the confusion matrix must cover the 500 test images"

    # test_accuracy must equal a recomputation from the saved model (with the same test-time flip).
    results = json.loads((run_dir / "metrics.json").read_text())
    options = config["options"]
    model = keras.models.load_model(run_dir / "best.keras")
    test = ci.make_dataset(mini_dir, "test", batch_size=100, val_size=options["val_size"] or 508,
                           num_train_examples=options["num_train_examples"], seed=options["seed"])
    correct = 0
    for images, labels in test:
        logits = model(images, training=False)
        if options["tta"]:
            logits = (logits + model(tf.reverse(images, axis=[2]), training=False)) / 2
        correct += int(np.sum(np.argmax(logits, 1) == labels.numpy()))
    assert abs(results["test_accuracy"] - correct / 500) <= 1 / 500, "at most one near-tie may differ"
    assert np.trace(matrix) == round(results["test_accuracy"] * 500)


def test_default_cnn_end_to_end(mini_dir, tmp_path, capsys):
    code, run_dir = _run(mini_dir, tmp_path, *SMALL, "--epochs", "2")
    out = capsys.readouterr().out
    assert code == 0
    assert "training on the CPU" in out and "TensorFlow 2." in out and "Total params" in out
    assert "128 training, 64 validation, 500 test images" in out
    assert f"run folder: {run_dir}" in out
    _check_run_folder(run_dir, mini_dir, epochs=2)
    # --eval-only re-evaluates the saved model the way the run did, giving metrics.json's figure.
    assert train.main(["--eval-only", str(run_dir / "best.keras"), "--data-dir", str(mini_dir.parent)]) == 0
    accuracy = json.loads((run_dir / "metrics.json").read_text())["test_accuracy"]
    assert f"test accuracy {100 * accuracy:.2f}% ({round(accuracy * 500)}/500) with test-time flip" in \
        capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("preset", [p for p in train.PRESETS if p != "tuned"])
def test_each_preset_end_to_end(mini_dir, tmp_path, preset):
    code, run_dir = _run(mini_dir, tmp_path, "--preset", preset, *SMALL, "--epochs", "1")
    assert code == 0
    _check_run_folder(run_dir, mini_dir, epochs=1)
    assert json.loads((run_dir / "config.json").read_text())["options"]["preset"] == preset


def test_an_existing_run_folder_is_never_overwritten(mini_dir, tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    code, _ = _run(mini_dir, tmp_path, *SMALL, name="taken")
    assert code == 2 and "already exists" in capsys.readouterr().err
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"


def test_absurd_learning_rate_triggers_the_nan_guard(mini_dir, tmp_path, capsys):
    code, run_dir = _run(mini_dir, tmp_path, "--model", "mlp", "--optimizer", "sgd", "--lr", "1e12",
                         "--num-train-examples", "512", "--val-size", "64", "--epochs", "2")
    err = capsys.readouterr().err
    assert code == 1
    assert "the loss became nan" in err or "the loss became inf" in err
    assert "try --lr 1e+11" in err
    assert not (run_dir / "best.keras").exists(), "no model may be saved from a diverged run"


@pytest.mark.slow
def test_resume_after_a_signal_gives_identical_weights(mini_dir, tmp_path):
    args = [sys.executable, str(REPO / "train.py"), "--data-dir", str(mini_dir.parent), "--run-dir", str(tmp_path),
            "--num-train-examples", "512", "--val-size", "64", "--batch-size", "16", "--epochs", "2",
            "--widths", "8,16", "--dropout", "0.2", "--cutout", "8", "--deterministic"]
    subprocess.run([*args, "--name", "whole"], check=True, capture_output=True, cwd=tmp_path)

    child = subprocess.Popen([*args, "--name", "cut"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             cwd=tmp_path)
    for line in child.stdout:  # interrupt early in the second epoch
        if line.startswith("epoch 2/2 ["):
            child.send_signal(signal.SIGTERM)
            break
    output = child.communicate(timeout=120)[0]
    assert child.returncode == 128 + signal.SIGTERM, output
    assert "SIGTERM: saved a checkpoint at epoch 2" in output
    assert f"python train.py --resume {tmp_path / 'cut'}" in output

    resumed = subprocess.run([sys.executable, str(REPO / "train.py"), "--resume", str(tmp_path / "cut")],
                             capture_output=True, text=True, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from epoch 2, step" in resumed.stdout

    def final_weights(run):
        reader = tf.train.load_checkpoint(str(tmp_path / run / "checkpoints"))
        return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map() if k.startswith("model_variables")}
    whole, cut = final_weights("whole"), final_weights("cut")
    assert whole.keys() == cut.keys() and len(whole) > 10
    for key in whole:
        np.testing.assert_array_equal(whole[key], cut[key], err_msg=f"{key} differs after resume")
    rows = list(csv.DictReader(open(tmp_path / "cut" / "metrics.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"]


# ----------------------------------------------------------------------------- usage errors
@pytest.mark.parametrize("argv,message", [
    (["--model", "linear", "--batch-norm"], "--batch-norm does not apply to --model linear"),
    (["--model", "mlp", "--widths", "8,16"], "--widths does not apply to --model mlp"),
    (["--preset", "cnn-bn", "--model", "mlp"], "--preset cnn-bn trains the cnn model; drop --model mlp"),
    (["--lr", "-0.1"], "--lr must be positive"),
    (["--dropout", "1.5"], "--dropout must be in [0, 1)"),
    (["--weight-decay", "-1"], "--weight-decay must be >= 0"),
    (["--label-smoothing", "1"], "--label-smoothing must be in [0, 1)"),
    (["--device", "cpu", "--mixed-precision"], "--mixed-precision needs a GPU"),
    (["--resume", "nowhere"], "nowhere has no config.json and checkpoint"),
    (["--eval-only", "missing.keras"], "--eval-only missing.keras: no such file"),
])
def test_usage_errors_exit_2_with_one_line(argv, message, tmp_path, capsys):
    assert train.main([*argv, "--run-dir", str(tmp_path)] if argv[0] != "--resume" else argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == [], "a usage error must not leave a run folder"


def test_data_dependent_usage_error_leaves_no_run_folder(mini_dir, tmp_path, capsys):
    code, run_dir = _run(mini_dir, tmp_path, "--num-train-examples", "99999")
    assert code == 2 and "--num-train-examples must be between 1 and" in capsys.readouterr().err
    assert not run_dir.exists()


@pytest.mark.parametrize("argv,message", [
    (["--epochs", "2", "--steps", "3"], "usage error: argument --steps: not allowed with argument --epochs "
                                         "(see python train.py --help)"),
    (["--model", "linear", "--dropout", "0.5"], "usage error: --dropout does not apply to --model linear; drop it"),
])
def test_usage_errors_from_the_real_command(argv, message):
    result = subprocess.run([sys.executable, str(REPO / "train.py"), *argv], capture_output=True, text=True)
    assert result.returncode == 2
    # TensorFlow may print start-up lines of its own first; ours is the last line, whole.
    assert result.stderr.strip().splitlines()[-1] == message
    assert "Traceback" not in result.stderr


# ----------------------------------------------------------------------------- configuration pieces
def test_flags_override_presets_which_override_defaults():
    config = train.resolve_config({"preset": "cnn-bn", "dropout": 0.3})
    assert config["dropout"] == 0.3  # the flag
    assert config["widths"] == (32, 64) and config["head"] == "flatten"  # the preset
    assert config["batch_size"] == train.DEFAULTS["batch_size"]  # the default
    assert train.resolve_config({"model": "mlp"})["preset"] == "mlp"
    assert train.resolve_config({})["model"] == "cnn" and train.resolve_config({})["preset"] == "tuned"


def test_list_presets(capsys):
    assert train.main(["--list-presets"]) == 0
    out = capsys.readouterr().out
    assert all(line.split()[0] in train.PRESETS for line in out.strip().splitlines())
    assert len(out.strip().splitlines()) == len(train.PRESETS)


def test_device_falls_back_to_cpu_without_a_gpu(monkeypatch):
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])
    assert train.select_device("auto") == "CPU"
    assert train.select_device("cpu") == "CPU"
    with pytest.raises(train.UsageError, match="--device gpu, but TensorFlow sees no GPU"):
        train.select_device("gpu")


@pytest.mark.parametrize("kind,checks", [
    ("constant", {0: 1.0, 50: 1.0, 99: 1.0}),
    ("step", {0: 1.0, 49: 1.0, 50: 0.1, 75: 0.01}),
    ("cosine", {0: 1.0, 50: 0.5, 100: 0.0}),
    ("onecycle", {0: 0.001, 25: 1.0, 62.5: 0.5, 100: 0.001}),
])
def test_learning_rate_schedules(kind, checks):
    schedule = train.learning_rate_schedule({"lr": 1.0, "lr_schedule": kind, "warmup_epochs": 0}, 10, 100)
    for step, expected in checks.items():
        assert float(schedule(step)) == pytest.approx(expected, abs=1e-6), f"{kind} at step {step}"


def test_warmup_rises_linearly_to_the_peak():
    schedule = train.learning_rate_schedule({"lr": 0.5, "lr_schedule": "constant", "warmup_epochs": 1}, 10, 100)
    assert [round(float(schedule(s)), 6) for s in (0, 4, 9, 10)] == [0.05, 0.25, 0.5, 0.5]


@pytest.mark.parametrize("name,cls,attrs", [
    ("sgd", keras.optimizers.SGD, {"momentum": 0.0}),
    ("momentum", keras.optimizers.SGD, {"momentum": 0.8, "nesterov": True}),
    ("adam", keras.optimizers.Adam, {"beta_1": 0.91, "epsilon": 1e-4}),
    ("adamw", keras.optimizers.AdamW, {"weight_decay": 5e-4}),
    ("rmsprop", keras.optimizers.RMSprop, {"momentum": 0.8}),
    ("adagrad", keras.optimizers.Adagrad, {"epsilon": 1e-4}),
    ("adadelta", keras.optimizers.Adadelta, {"epsilon": 1e-4}),
])
def test_optimizers_get_their_hyper_parameters(name, cls, attrs):
    config = {**train.DEFAULTS, "optimizer": name, "momentum": 0.8, "beta1": 0.91, "epsilon": 1e-4}
    optimizer = train.make_optimizer(config, 0.01)
    assert type(optimizer) is cls
    for attr, value in attrs.items():
        assert getattr(optimizer, attr) == pytest.approx(value), attr


def test_adamw_moves_weight_decay_from_the_loss_to_the_optimizer():
    config = train.resolve_config({"optimizer": "adamw", "weight_decay": 1e-3})
    model = train.build_model(config, (32, 32, 3))
    model(tf.zeros((1, 32, 32, 3)))
    assert not model.losses, "with adamw the decay is decoupled, not an L2 loss term"
    config = train.resolve_config({"optimizer": "adam", "weight_decay": 1e-3})
    model = train.build_model(config, (32, 32, 3))
    model(tf.zeros((1, 32, 32, 3)))
    assert model.losses
