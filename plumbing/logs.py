"""What a run shows while it trains: a progress bar per epoch and TensorBoard logs.

The bar is plumbing/progress.py's (the download's too): live on a terminal, a line every 10% of an
epoch in a log file. TensorBoard gets training and validation curves of the same quantity under the
same tag (so they share one chart) against the epoch, per-step curves against the images seen (also
in steps.csv, for compare.py), the first batch as the model sees it (one labelled grid), weight
histograms from the start, and the options a student varies with the final results (HParams).
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no window
import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf
from tensorboard.compat.proto import summary_pb2
from tensorboard.plugins.hparams import api as hparams_api
from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2
from tensorboard.plugins.hparams import metadata as hparams_metadata

from plumbing.errors import write_error
from plumbing.progress import Progress
from plumbing.steplog import StepLog


class EpochProgress:
    """One bar per epoch: loss and accuracy so far, images/s, and the time left in the whole run."""

    def __init__(
        self,
        epoch: int,
        epochs: int,
        steps: int,
        start_step: int,
        batch_size: int,
        later_steps: int,
    ):
        self.steps, self.start_step, self.batch_size = steps, start_step, batch_size
        self.later_steps = later_steps
        self.t0 = self.last = time.perf_counter()
        self.bar = Progress(
            steps,
            initial=start_step,
            desc=f"epoch {epoch}/{epochs}",
            bar_format="{desc} |{bar}| {n_fmt}/{total_fmt}{postfix}",
        )

    def due(self, step: int) -> bool:
        """Whether to redraw: 5 times a second on a terminal, each 10% of an epoch in a log."""
        return (
            time.perf_counter() - self.last >= 0.2 if self.bar.live else step >= self.bar.next_mark
        )

    def update(self, step: int, loss: float, accuracy: float, final: bool = False) -> None:
        now = time.perf_counter()
        self.last = now
        rate = (step - self.start_step) * self.batch_size / max(now - self.t0, 1e-9)
        left = (self.steps - step + self.later_steps) * self.batch_size / max(rate, 1e-9)
        when = f"took {_duration(now - self.t0)}" if final else f"{_duration(left)} left"
        text = f"loss {loss:.4f} acc {100 * accuracy:.1f}% {rate:,.0f} img/s {when}"
        self.bar.update(step, text, final=final)


def _sample(weight, most: int = 2**20):
    """At most `most` of a tensor's values, evenly spaced (a histogram takes 30 doubles a value)."""
    values = tf.reshape(weight, [-1])
    return values[:: values.shape[0] // most + 1] if values.shape[0] > most else values


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return (
        f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
        if seconds >= 3600
        else f"{seconds // 60}m{seconds % 60:02d}s"
        if seconds >= 60
        else f"{seconds}s"
    )


# ----------------------------------------------------------------------------- TensorBoard
STEP_EVERY = 640  # step-level curves: a point every 640 training images (5 steps of 128)
SKIPPED = {
    "data_dir",
    "data_url",
    "data_folder",
    "run_dir",
    "name",
    "device",
    "sweep",
    "parameters",
}
SHOWN_FIRST = ("model", "preset")  # marked as differing, with the swept options: shown by default
DESCRIPTIONS = {
    "epoch/loss": "mean cross-entropy per epoch (no label smoothing): training and validation",
    "epoch/accuracy": "fraction of images classified correctly per epoch: training and validation",
    "step/loss": "cross-entropy of one batch, against the number of training images seen",
    "step/learning_rate": "the optimizer's learning rate, against the training images seen",
    "step/step_time_ms": "milliseconds one training step took (one batch, forward and backward)",
    "step/weight_penalty": "the L2 term added to the loss: weight decay x sum of squared kernels",
    "results/test_accuracy": "test accuracy of the best epoch's model (the number to report)",
    "results/best_val_accuracy": "validation accuracy of the best epoch (the one tested)",
    "results/test_loss": "test cross-entropy of the best epoch's model",
}
GRADIENT_NORM = "L2 norm of the loss's gradient for this weight, on the first batch (0: first step)"
METRICS = (  # (tag, folder under tb/, name): the HParams columns, in this order
    ("results/test_accuracy", "", "test accuracy"),
    ("results/best_val_accuracy", "", "best validation accuracy"),
    ("results/test_loss", "", "test loss"),
    ("epoch/accuracy", "val", "validation accuracy (last epoch)"),
    ("epoch/loss", "train", "training loss (last epoch)"),
)


def session_name(run_dir: Path) -> str:
    """The run's path under the runs folder (sweep-mlp-lr/lr=0.001 for a sweep's run).

    Unique, so that TensorBoard does not merge two sweeps' runs of the same value into one row."""
    import plots  # here: a lesson file

    return plots.run_name(run_dir)


def swept_options(run_dir: Path) -> list[str]:
    """The options the run's sweep varies (from the sweep folder's sweep.json), or none."""
    try:
        command = json.loads((Path(run_dir).parent / "sweep.json").read_text())
        return list(command["sweeps"])
    except (OSError, ValueError, KeyError, TypeError):
        return []


def hyper_parameters(config: dict, data: dict | None = None) -> dict:
    """The options a student varies, as numbers, text or true/false: no paths, names or devices.

    The sizes are the real counts (the data knows them): num_train_examples is 45000, not None."""
    values = {key: value for key, value in config.items() if key not in SKIPPED}
    if data is not None:
        values["num_train_examples"] = data["num_train"]
        values["val_size"] = data["options"]["val_size"]
        values["image_size"] = data["shape"][0]
    shown = {}
    for key, value in values.items():
        if isinstance(value, (list, tuple)):
            value = "x".join(map(str, value))  # widths 512x256, as sweep folders write them
        if value is not None:  # None means "not set" (steps: train by epochs): nothing to show
            shown[key] = value
    return shown


def _data_type(value) -> int:
    if isinstance(value, bool):
        return api_pb2.DATA_TYPE_BOOL
    return (
        api_pb2.DATA_TYPE_FLOAT64 if isinstance(value, (int, float)) else api_pb2.DATA_TYPE_STRING
    )


def experiment_summary(hparams: dict, differing: list[str]) -> bytes:
    """The HParams dashboard's columns, declared up front.

    The options are typed, so that numbers get a numeric axis; the metrics come test accuracy first.
    TensorBoard shows 5 options by default, those marked as differing first: the swept options, the
    model and the preset (alphabetically), then the others."""
    infos = [
        api_pb2.HParamInfo(name=key, type=_data_type(value), differs=key in differing)
        for key, value in hparams.items()
    ]
    metrics = [
        api_pb2.MetricInfo(
            name=api_pb2.MetricName(tag=tag, group=group),
            display_name=name,
            description=DESCRIPTIONS[tag],
        )
        for tag, group, name in METRICS
    ]
    experiment = api_pb2.Experiment(
        hparam_infos=infos, metric_infos=metrics, time_created_secs=time.time()
    )
    content = plugin_data_pb2.HParamsPluginData(
        experiment=experiment, version=hparams_metadata.PLUGIN_DATA_VERSION
    )
    summary = summary_pb2.Summary()
    summary.value.add(
        tag=hparams_metadata.EXPERIMENT_TAG,
        metadata=hparams_metadata.create_summary_metadata(content),
        tensor=hparams_metadata.NULL_TENSOR,
    )
    return summary.SerializeToString()


def training_mean_std(data: dict) -> tuple[np.ndarray, np.ndarray]:
    """The per-channel mean and std the pipeline normalised with: the training examples'."""
    import cifar10_input  # here: a lesson file, which imports this folder's neighbours

    split = data["options"]
    return cifar10_input.split_arrays(
        data["folder"], "train", split["val_size"], split["num_train_examples"], split["seed"]
    )[2:]


def as_seen(images, mean, std) -> np.ndarray:
    """Normalised float images back to uint8 RGB: x * std + mean, clipped to [0, 1], times 255.

    What the model sees, augmentation included (a --brightness run looks brighter)."""
    pixels = np.clip(np.asarray(images) * std + mean, 0.0, 1.0)
    pixels = np.round(pixels * 255).astype(np.uint8)
    return np.repeat(pixels, 3, axis=-1) if pixels.shape[-1] == 1 else pixels


LABEL_HEIGHT, MARGIN = 14, 2  # pixels: the class name above each tile, and a margin either side


def tile_origin(i: int, height: int, width: int, columns: int = 8, zoom: int = 2):
    """Where image `i`'s tile starts (top, left) in `labelled_grid`'s picture."""
    cell_h, cell_w = zoom * height + LABEL_HEIGHT, zoom * width + 2 * MARGIN
    return (i // columns) * cell_h + LABEL_HEIGHT - 1, (i % columns) * cell_w + MARGIN


def labelled_grid(pixels: np.ndarray, labels, class_names, columns: int = 8, zoom: int = 2):
    """uint8 images in a grid, each enlarged `zoom` times (pixel for pixel) under its class name.

    Matplotlib writes the names; the images are then copied in unchanged, so that the grid holds
    exactly the pixels the model was given."""
    count, height, width = pixels.shape[:3]
    rows, columns = -(-count // columns), min(columns, count)
    cell_h, cell_w = zoom * height + LABEL_HEIGHT, zoom * width + 2 * MARGIN
    fig = plt.figure(figsize=(columns * cell_w / 100, rows * cell_h / 100), dpi=100)
    for i, label in enumerate(labels[:count]):
        x, y = (i % columns + 0.5) * cell_w, (i // columns) * cell_h + 1
        name = class_names[int(label)]
        fig.text(
            x / (columns * cell_w), 1 - y / (rows * cell_h), name, ha="center", va="top", fontsize=8
        )
    fig.canvas.draw()
    drawn = np.asarray(fig.canvas.buffer_rgba())[..., :3]
    plt.close(fig)
    grid = np.full((rows * cell_h, columns * cell_w, 3), 255, np.uint8)  # exact, whatever the dpi
    height_drawn, width_drawn = min(len(grid), len(drawn)), min(grid.shape[1], drawn.shape[1])
    grid[:height_drawn, :width_drawn] = drawn[:height_drawn, :width_drawn]
    for i in range(count):
        top, left = tile_origin(i, height, width, columns, zoom)
        tile = pixels[i].repeat(zoom, axis=0).repeat(zoom, axis=1)
        grid[top : top + zoom * height, left : left + zoom * width] = tile
    return grid


class TensorBoard:
    """tb/train and tb/val (one chart per quantity, two curves), and tb itself for the HParams
    dashboard (the run's options and results); steps.csv beside them.

    Learning curves are drawn against the epoch, step-level curves against the number of training
    images seen, so that runs with other batch or data sizes line up."""

    def __init__(self, run_dir: Path, config: dict, data: dict | None = None, model=None):
        self.folder = Path(run_dir) / "tb"
        self.batch_size, self.data, self.model = config.get("batch_size", 1), data, model
        self.probe = None  # the first batch: gradient norms are measured on it
        self.steps = StepLog(Path(run_dir) / "steps.csv")
        fresh = not (self.folder / "train").exists()  # not resumed: log the initial weights
        hparams = hyper_parameters(config, data)
        differing = [*swept_options(run_dir), *SHOWN_FIRST]
        first = {key: hparams[key] for key in differing if key in hparams}
        with self.writing():
            self.train = tf.summary.create_file_writer(str(self.folder / "train"))
            self.val = tf.summary.create_file_writer(str(self.folder / "val"))
            self.session = tf.summary.create_file_writer(str(self.folder))
            with self.session.as_default():
                tf.summary.experimental.write_raw_pb(
                    experiment_summary({**first, **hparams}, differing), step=0
                )
                hparams_api.hparams({**first, **hparams}, trial_id=session_name(run_dir))
            if model is not None and fresh:
                self.histograms(0, model.trainable_weights)

    @contextlib.contextmanager
    def writing(self):
        """Turns TensorFlow's OpError for a failed write (a full disk, tb/ being a file), which says
        in words only what went wrong, into the OSError that every other write raises."""
        try:
            yield
        except tf.errors.OpError as err:
            if "OOM when allocating" in err.message:  # not a write: reported as out of memory
                raise
            raise write_error(
                err.message, self.folder, "could not write the TensorBoard logs"
            ) from None

    def due(self, step: int) -> bool:
        """Whether `step` gets a point on the step-level curves: step 1, then every STEP_EVERY
        images (a fixed rate in images, the same in a terminal and in a log file)."""
        seen = step * self.batch_size
        return step == 1 or seen // STEP_EVERY > (seen - self.batch_size) // STEP_EVERY

    def step(
        self,
        step: int,
        *,
        loss,
        learning_rate,
        step_time_ms: float,
        weight_penalty,
        images=None,
        labels=None,
    ) -> None:
        """Step-level curves when due (see `due`), and the first batch as the model sees it."""
        if images is not None and labels is not None and self.data is not None:
            self.inputs(images, labels)
        if not self.due(step):
            return
        seen = step * self.batch_size
        epoch = seen / self.data["num_train"] if self.data else step
        row = dict(step=step, images=seen, epoch=round(epoch, 4), loss=float(loss))
        row["learning_rate"] = float(learning_rate)
        with self.writing():
            with self.train.as_default(step=seen):
                self.scalar("step/loss", loss)
                self.scalar("step/learning_rate", learning_rate)
                self.scalar("step/step_time_ms", step_time_ms)
                self.scalar("step/weight_penalty", weight_penalty)
        self.steps.write(row)

    def scalar(self, tag: str, value) -> None:
        tf.summary.scalar(tag, value, description=DESCRIPTIONS[tag])

    def inputs(self, images, labels, count: int = 32) -> None:
        """One labelled grid of the batch's first images, un-normalised: what the model sees.

        The batch is kept to measure the gradient norms on (now, as epoch 0, then with the
        histograms)."""
        self.probe = (images, labels)
        self.gradient_norms(0)
        mean, std = training_mean_std(self.data)
        pixels = as_seen(np.asarray(images)[:count], mean, std)
        grid = labelled_grid(pixels, np.asarray(labels), self.data["class_names"])
        with self.writing():
            with self.train.as_default(step=0):
                tf.summary.image(
                    "inputs/first_batch",
                    grid[None],
                    description="the first training batch as the model sees it (augmented, "
                    "un-normalised with the training mean and std, clipped to [0, 1])",
                )

    def epoch(self, step: int, row: dict, weights=None) -> None:
        """Training and validation loss and accuracy under the same tags, against the epoch; weight
        histograms when given. (`step`, the global step, is not used: the x axis is the epoch.)"""
        with self.writing():
            for writer, prefix in ((self.train, "train"), (self.val, "val")):
                if row[f"{prefix}_loss"] is None:
                    continue
                with writer.as_default(step=row["epoch"]):
                    self.scalar("epoch/loss", row[f"{prefix}_loss"])
                    self.scalar("epoch/accuracy", row[f"{prefix}_accuracy"])
        if weights:
            self.histograms(row["epoch"], weights)

    def histograms(self, epoch: int, weights) -> None:
        """The distribution of every weight after `epoch` epochs (0: as initialised)."""
        with self.writing():
            with self.train.as_default(step=epoch):
                for weight in weights:
                    tf.summary.histogram(
                        f"weights/{weight.path}",
                        _sample(weight),
                        description="weight values after this many epochs (0: initialised)",
                    )
        self.gradient_norms(epoch)

    def gradient_norms(self, epoch: int) -> None:
        """The size of each weight's gradient (its L2 norm) of the cross-entropy on the first batch,
        in inference mode (batch norm's statistics stay as they are): a layer whose gradients are
        far smaller than the others' learns slowly (vanishing gradients)."""
        if self.model is None or self.probe is None:
            return
        images, labels = self.probe
        with tf.GradientTape() as tape:
            logits = tf.cast(self.model(images, training=False), tf.float32)
            loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(tf.cast(labels, tf.int32), logits)
            )
        weights = self.model.trainable_weights
        with self.writing():
            with self.train.as_default(step=epoch):
                for weight, gradient in zip(weights, tape.gradient(loss, weights)):
                    if gradient is not None:
                        tf.summary.scalar(
                            f"gradient_norm/{weight.path}",
                            tf.norm(gradient),
                            description=GRADIENT_NORM,
                        )

    def results(self, step: int, results: dict) -> None:
        """The final figures (the HParams dashboard's metric columns), in their own tag group."""
        with self.writing():
            with self.session.as_default(step=step):
                for key in ("test_accuracy", "test_loss", "best_val_accuracy"):
                    if results.get(key) is not None:
                        self.scalar(f"results/{key}", results[key])

    def close(self) -> None:
        self.steps.close()
        with self.writing():
            for writer in (self.train, self.val, self.session):
                writer.close()
