"""Tests for train.py's command line: usage errors, presets, the device, schedules and optimizers."""

import subprocess
import sys
from pathlib import Path

import keras
import pytest
import tensorflow as tf

import train
from conftest import run_train

REPO = Path(__file__).resolve().parent.parent
SMALL = ["--num-train-examples", "128", "--val-size", "64", "--batch-size", "64"]  # 2 steps per epoch


def test_an_existing_run_folder_is_never_overwritten(mini_dir, tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    code, _ = run_train(mini_dir, tmp_path, *SMALL, name="taken")
    assert code == 2 and "already exists" in capsys.readouterr().err
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"


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
    code, run_dir = run_train(mini_dir, tmp_path, "--num-train-examples", "99999")
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

