"""What a run shows while it trains: a progress bar per epoch and TensorBoard logs.

The bar is plumbing/progress.py's (the download's too): live on a terminal, a line every 10% of an
epoch in a log file. TensorBoard gets training and validation curves of the same
quantity under the same tag (so they share one chart), per-step curves, augmented input images,
weight histograms, and the run's hyper-parameters and final results (the HParams dashboard).
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import tensorflow as tf
from tensorboard.plugins.hparams import api as hparams_api

from plumbing.errors import write_error
from plumbing.progress import Progress


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
        """Whether to redraw: 5 times a second on a terminal, every 10% of the epoch in a log file."""
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
    """At most `most` of a tensor's values, evenly spaced: a histogram takes 30 doubles per value."""
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


class TensorBoard:
    """tb/train and tb/val (one chart per quantity, two curves), and tb itself for the hyper-parameters."""

    def __init__(self, run_dir: Path, hyper_parameters: dict):
        self.folder = Path(run_dir) / "tb"
        with self.writing():
            self.train = tf.summary.create_file_writer(str(self.folder / "train"))
            self.val = tf.summary.create_file_writer(str(self.folder / "val"))
            self.session = tf.summary.create_file_writer(str(self.folder))
            with self.session.as_default():
                hparams_api.hparams(
                    {
                        k: v if isinstance(v, (bool, int, float, str)) else str(v)
                        for k, v in hyper_parameters.items()
                    },
                    trial_id=Path(run_dir).name,
                )

    @contextlib.contextmanager
    def writing(self):
        """TensorFlow reports a failed write (a full disk, tb/ being a file) as an OpError, which says in
        words only what went wrong: turned into the OSError that every other write raises."""
        try:
            yield
        except tf.errors.OpError as err:
            if "OOM when allocating" in err.message:  # not a write: reported as out of memory
                raise
            raise write_error(
                err.message, self.folder, "could not write the TensorBoard logs"
            ) from None

    def step(
        self, step: int, *, loss, learning_rate, step_time_ms: float, weight_penalty, images=None
    ) -> None:
        """Per-step curves (in the train run) and, once, the augmented inputs the model sees."""
        with self.writing():
            with self.train.as_default(step=step):
                tf.summary.scalar("step/loss", loss)
                tf.summary.scalar("step/learning_rate", learning_rate)
                tf.summary.scalar("step/step_time_ms", step_time_ms)
                tf.summary.scalar("step/weight_penalty", weight_penalty)
                if images is not None:
                    low = tf.reduce_min(images, axis=[1, 2, 3], keepdims=True)
                    high = tf.reduce_max(images, axis=[1, 2, 3], keepdims=True)
                    shown = (images - low) / tf.maximum(
                        high - low, 1e-6
                    )  # each image stretched to [0, 1]
                    tf.summary.image("augmented_inputs", shown, max_outputs=8)

    def epoch(self, step: int, row: dict, weights=None) -> None:
        """Training and validation loss and accuracy under the same tags; weight histograms when given."""
        with self.writing():
            for writer, prefix in ((self.train, "train"), (self.val, "val")):
                if row[f"{prefix}_loss"] is None:
                    continue
                with writer.as_default(step=step):
                    tf.summary.scalar("epoch/loss", row[f"{prefix}_loss"])
                    tf.summary.scalar("epoch/accuracy", row[f"{prefix}_accuracy"])
            with self.train.as_default(step=step):
                for weight in weights or ():
                    tf.summary.histogram(weight.path, _sample(weight))

    def results(self, step: int, results: dict) -> None:
        """The final figures, beside the hyper-parameters (the HParams dashboard's metric columns)."""
        with self.writing():
            with self.session.as_default(step=step):
                for key in ("test_accuracy", "test_loss", "best_val_accuracy"):
                    if results.get(key) is not None:
                        tf.summary.scalar(key, results[key])

    def close(self) -> None:
        with self.writing():
            for writer in (self.train, self.val, self.session):
                writer.close()
