"""Short runs learn: the tuned CNN ends at least as accurate as the linear model for every number of
epochs from 1 to 3 and every training-set size from 500 to 2,000 images of the real mini CIFAR-10
(the batch shrinks with the data: --min-epoch-steps; one-cycle peaks lower on a run too short to
warm up; batch norm's moving averages follow the run). Slow: 18 runs, about 10 minutes on 2
cores."""

import json

import pytest

from helpers import run_train

pytestmark = pytest.mark.slow


def accuracy_of(run_dir) -> float:
    return json.loads((run_dir / "metrics.json").read_text())["test_accuracy"]


@pytest.mark.parametrize("num_train", [500, 1000, 2000])
@pytest.mark.parametrize("epochs", [1, 2, 3])
def test_the_tuned_cnn_beats_the_linear_model_on_every_short_run(
    mini_dir, tmp_path, epochs, num_train
):
    setting = ("--epochs", str(epochs), "--num-train-examples", str(num_train))
    accuracy = {}
    for model in ("cnn", "linear"):
        code, run_dir = run_train(mini_dir.parent, tmp_path, "--model", model, *setting, name=model)
        assert code == 0, model
        accuracy[model] = accuracy_of(run_dir)
    assert accuracy["cnn"] >= accuracy["linear"], accuracy
    assert accuracy["cnn"] > 0.2, accuracy  # well above guessing (10%)


def test_a_learning_rate_far_too_high_ends_with_a_warning_or_the_divergence_error(
    mini_dir, tmp_path, capsys
):
    setting = ("--epochs", "2", "--num-train-examples", "1000", "--lr", "3")
    code, _ = run_train(mini_dir.parent, tmp_path, "--model", "cnn", *setting)
    out = capsys.readouterr()
    warned = "is far above ln(10) = 2.30, the loss of guessing" in out.out
    stopped = code == 1 and "training diverged: " in out.err
    assert warned or stopped, (code, out.out[-2000:], out.err[-2000:])
