"""What TensorBoard shows of a run, read back with TensorBoard's own readers: the HParams rows (one
per run, named by its path under the runs folder, numbers as numbers, test accuracy first), the
first batch as the model sees it, step-level curves against the images seen (and steps.csv),
histograms from the start. The logs are made through plumbing/logs.py with small fake runs, not by
training. Not graded."""

import io
import json
from pathlib import Path

import numpy as np
import pytest

import cifar10_input
from plumbing import logs, steplog

DATA = dict(num_train=1000, options=dict(val_size=500), shape=(32, 32, 3))
CONFIG = dict(
    model="linear",
    preset="linear",
    lr=0.001,
    batch_size=128,
    num_train_examples=None,
    data_dir="/somewhere",
    run_dir="runs",
    name=None,
    device="auto",
    steps=None,
    flip=False,
    widths=(512, 256),
)


def make_sweeps(root: Path) -> None:
    """Two sweeps over the same learning rates (a linear model's and an MLP's), with known
    results."""
    for sweep, model, accuracies in (
        ("sweep-linear-lr", "linear", (0.2, 0.3)),
        ("sweep-mlp-lr", "mlp", (0.4, 0.5)),
    ):
        (root / sweep).mkdir(parents=True)
        record = {"flags": {}, "sweeps": {"lr": [0.001, 0.01]}}
        (root / sweep / "sweep.json").write_text(json.dumps(record))
        for lr, accuracy in zip((0.001, 0.01), accuracies):
            config = {**CONFIG, "model": model, "preset": model, "lr": lr}
            board = logs.TensorBoard(root / sweep / f"lr={lr}", config, DATA)
            results = dict(test_accuracy=accuracy, best_val_accuracy=accuracy + 0.01, test_loss=1.5)
            board.results(2, results)
            board.close()


def hparams_dashboard(root: Path):
    """What TensorBoard's HParams dashboard is sent for a log folder: (experiment, session
    groups)."""
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import (
        api_pb2,
        backend_context,
        get_experiment,
        list_session_groups,
    )

    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(root))
    multiplexer.Reload()
    provider = data_provider.MultiplexerDataProvider(multiplexer, str(root))
    plugin_context = base_plugin.TBContext(
        data_provider=provider, logdir=str(root), multiplexer=multiplexer
    )
    backend = backend_context.Context(plugin_context)
    request = context.RequestContext()
    experiment = get_experiment.Handler(request, backend, "", api_pb2.GetExperimentRequest()).run()
    statuses = [api_pb2.STATUS_UNKNOWN, api_pb2.STATUS_SUCCESS, api_pb2.STATUS_RUNNING]
    query = api_pb2.ListSessionGroupsRequest(
        start_index=0, slice_size=100, allowed_statuses=statuses
    )
    groups = list_session_groups.Handler(request, backend, "", query).run().session_groups
    return experiment, groups


def test_two_sweeps_over_the_same_values_are_separate_correctly_valued_hparams_rows(tmp_path):
    make_sweeps(tmp_path)
    experiment, groups = hparams_dashboard(tmp_path)
    rows = {
        group.name: (
            group.hparams["model"].string_value,
            group.hparams["lr"].number_value,
            {metric.name.tag: round(metric.value, 4) for metric in group.metric_values},
        )
        for group in groups
    }
    assert rows == {
        "sweep-linear-lr/lr=0.001": ("linear", 0.001, _results(0.2)),
        "sweep-linear-lr/lr=0.01": ("linear", 0.01, _results(0.3)),
        "sweep-mlp-lr/lr=0.001": ("mlp", 0.001, _results(0.4)),
        "sweep-mlp-lr/lr=0.01": ("mlp", 0.01, _results(0.5)),
    }, "4 runs: 4 rows, none merged, each with its own results"
    metrics = [(m.name.tag, m.name.group) for m in experiment.metric_infos]
    assert metrics[:2] == [("results/test_accuracy", ""), ("results/best_val_accuracy", "")]


def _results(accuracy: float) -> dict:
    return {
        "results/test_accuracy": accuracy,
        "results/best_val_accuracy": round(accuracy + 0.01, 4),
        "results/test_loss": 1.5,
    }


def test_hparams_are_the_options_a_student_varies_with_numbers_as_numbers(tmp_path):
    from tensorboard.plugins.hparams import api_pb2

    make_sweeps(tmp_path)
    experiment, groups = hparams_dashboard(tmp_path)
    infos = {info.name: info for info in experiment.hparam_infos}
    assert not {"data_dir", "run_dir", "name", "device", "parameters", "steps"} & set(infos)
    number, text = api_pb2.DATA_TYPE_FLOAT64, api_pb2.DATA_TYPE_STRING
    types = {key: infos[key].type for key in ("lr", "num_train_examples", "model", "widths")}
    assert types == {"lr": number, "num_train_examples": number, "model": text, "widths": text}
    assert infos["flip"].type == api_pb2.DATA_TYPE_BOOL
    hparams = groups[0].hparams
    assert hparams["num_train_examples"].number_value == 1000, "the real count, not None"
    assert (hparams["val_size"].number_value, hparams["widths"].string_value) == (500, "512x256")
    # TensorBoard shows the first 5 options, those marked as differing first (by name).
    shown = [info.name for info in experiment.hparam_infos][:5]
    assert shown[:3] == ["lr", "model", "preset"], shown


def read_events(folder: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    return EventAccumulator(str(folder), size_guidance={"tensors": 0}).Reload()


def logged_grid(run_dir: Path) -> np.ndarray:
    import matplotlib.image
    from tensorboard.util.tensor_util import make_ndarray

    (event,) = read_events(run_dir / "tb" / "train").Tensors("inputs/first_batch")
    png = make_ndarray(event.tensor_proto)[2]
    return np.round(matplotlib.image.imread(io.BytesIO(png))[..., :3] * 255).astype(np.uint8)


def first_batch(sample_dir: Path, **augmentation):
    split = dict(val_size=50, num_train_examples=200, seed=0, batch_size=16)
    batches = cifar10_input.make_dataset(sample_dir, "train", **split, **augmentation)
    images, labels = next(iter(batches))
    data = dict(folder=sample_dir, options=split, num_train=200, shape=(32, 32, 3))
    data["class_names"] = cifar10_input.class_names()
    return images.numpy(), labels.numpy(), data


def log_first_batch(run_dir: Path, images, labels, data) -> np.ndarray:
    board = logs.TensorBoard(run_dir, {**CONFIG, "batch_size": 16}, data)
    board.step(
        1,
        loss=2.3,
        learning_rate=0.1,
        step_time_ms=1.0,
        weight_penalty=0.0,
        images=images,
        labels=labels,
    )
    board.close()
    return logged_grid(run_dir)


def test_logged_inputs_are_the_pipeline_output_unnormalised_and_show_brightness(
    sample_dir, tmp_path
):
    plain, labels, data = first_batch(sample_dir)
    brighter, same_labels, _ = first_batch(sample_dir, brightness=1.0, contrast=0.6)
    assert (labels == same_labels).all(), "the same images, augmented otherwise"
    grid = log_first_batch(tmp_path / "plain", plain, labels, data)
    bright_grid = log_first_batch(tmp_path / "bright", brighter, labels, data)
    train_images = cifar10_input.split_arrays(sample_dir, "train", 50, 200, 0)[0] / 255.0
    mean, std = train_images.mean(axis=(0, 1, 2)), train_images.std(axis=(0, 1, 2))
    for images, shown in ((plain, grid), (brighter, bright_grid)):
        expected = np.round(np.clip(images * std + mean, 0, 1) * 255)
        for i in range(len(images)):
            top, left = logs.tile_origin(i, 32, 32)
            tile = shown[top : top + 64 : 2, left : left + 64 : 2]
            assert np.abs(tile.astype(int) - expected[i]).max() <= 1, f"image {i}"
    assert np.abs(grid.astype(int) - bright_grid).mean() > 10, "brightness shows in the images"


def test_step_level_curves_are_logged_every_640_images_against_the_images_seen(tmp_path):
    board = logs.TensorBoard(tmp_path / "run", {**CONFIG, "batch_size": 100}, DATA)
    for step in range(1, 21):
        if step == 1 or board.due(step):
            board.step(
                step, loss=3.0 - step / 10, learning_rate=0.1, step_time_ms=5.0, weight_penalty=0.5
            )
    board.close()
    losses = read_events(tmp_path / "run" / "tb" / "train").Tensors("step/loss")
    assert [event.step for event in losses] == [100, 700, 1300, 2000], "x: images seen"
    rows = steplog.read_steps(tmp_path / "run" / "steps.csv")
    assert [(row["step"], row["images"], row["epoch"]) for row in rows] == [
        (1, 100, 0.1),
        (7, 700, 0.7),
        (13, 1300, 1.3),
        (20, 2000, 2.0),
    ]
    assert rows[1]["loss"] == pytest.approx(2.3)


def test_a_resumed_run_drops_the_steps_it_trains_again_and_a_torn_line(tmp_path):
    path = tmp_path / "steps.csv"
    log = steplog.StepLog(path)
    for step in range(1, 11):
        log.write(dict(step=step, images=10 * step, epoch=step / 10, loss=1.0, learning_rate=0.1))
    log.close()
    with open(path, "a") as handle:
        handle.write("11,110,1.1,0.")  # killed in the middle of a line
    resumed = steplog.StepLog(path)
    resumed.write(dict(step=6, images=60, epoch=0.6, loss=0.5, learning_rate=0.1))
    resumed.close()
    rows = steplog.read_steps(path)
    assert [row["step"] for row in rows] == [1, 2, 3, 4, 5, 6] and rows[-1]["loss"] == 0.5


def test_histograms_start_at_epoch_0_and_every_summary_has_a_description(tmp_path):
    import keras

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3, name="logits")(inputs))
    board = logs.TensorBoard(tmp_path / "run", CONFIG, DATA, model)
    row = dict(epoch=1, train_loss=2.0, train_accuracy=0.3, val_loss=2.1, val_accuracy=0.25)
    board.epoch(8, row, model.trainable_weights)
    board.step(1, loss=2.3, learning_rate=0.1, step_time_ms=1.0, weight_penalty=0.0)
    board.results(1, dict(test_accuracy=0.2, best_val_accuracy=0.25, test_loss=2.2))
    board.close()
    train = read_events(tmp_path / "run" / "tb" / "train")
    assert [e.step for e in train.Tensors("weights/logits/kernel")] == [0, 1], "0: initialised"
    assert [e.step for e in train.Tensors("epoch/accuracy")] == [1], "x: the epoch"
    session = read_events(tmp_path / "run" / "tb")
    assert [tag for tag in session.Tags()["tensors"] if tag.startswith("results/")] == [
        "results/test_accuracy",
        "results/test_loss",
        "results/best_val_accuracy",
    ], "the results in their own group"
    for events in (train, session):
        for tag in events.Tags()["tensors"]:
            if not tag.startswith("_hparams_"):
                assert events.SummaryMetadata(tag).summary_description, tag


def test_gradient_norms_per_weight_are_logged_from_the_first_batch_at_epoch_0(sample_dir, tmp_path):
    import keras
    from tensorboard.util.tensor_util import make_ndarray

    images, labels, data = first_batch(sample_dir)
    inputs = keras.Input((32, 32, 3))
    flat = keras.layers.Flatten()(inputs)
    model = keras.Model(inputs, keras.layers.Dense(10, name="logits")(flat))
    board = logs.TensorBoard(tmp_path / "run", {**CONFIG, "batch_size": 16}, data, model)
    board.step(
        1,
        loss=2.3,
        learning_rate=0.1,
        step_time_ms=1.0,
        weight_penalty=0.0,
        images=images,
        labels=labels,
    )
    board.close()
    train = read_events(tmp_path / "run" / "tb" / "train")
    (event,) = train.Tensors("gradient_norm/logits/kernel")
    x = images.reshape(len(images), -1)
    logits = x @ model.layers[-1].kernel.numpy() + model.layers[-1].bias.numpy()
    softmax = np.exp(logits - logits.max(1, keepdims=True))
    softmax /= softmax.sum(1, keepdims=True)
    expected = np.linalg.norm(x.T @ (softmax - np.eye(10)[labels]) / len(x))
    assert event.step == 0 and float(make_ndarray(event.tensor_proto)) == pytest.approx(
        expected, rel=1e-4
    )
    assert "gradient_norm/logits/bias" in train.Tags()["tensors"]


@pytest.mark.slow
def test_the_browser_check_screenshots_each_dashboard_and_stops_tensorboard(tmp_path, capsys):
    """tools/tensorboard_screenshots.py against two fake sweeps (needs Chromium; about 2
    minutes)."""
    import shutil
    import urllib.request

    import matplotlib.image

    from tools import tensorboard_screenshots

    if not any(shutil.which(name) for name in tensorboard_screenshots.BROWSERS):
        pytest.skip("no Chromium: apt-get install chromium")
    make_sweeps(tmp_path / "runs")
    out = tmp_path / "shots"
    argv = [str(tmp_path / "runs"), "--out", str(out), "--size", "1200,800"]
    assert tensorboard_screenshots.main(argv) == 0
    printed = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in printed] == [
        str(out / f"{name}.png") for name in tensorboard_screenshots.DASHBOARDS
    ]
    for name in tensorboard_screenshots.DASHBOARDS:
        assert matplotlib.image.imread(out / f"{name}.png").shape[:2] == (800, 1200)
    url = printed[0].split(": ", 1)[1].split("/#")[0]
    with pytest.raises(OSError):
        urllib.request.urlopen(url, timeout=2)  # TensorBoard was stopped
