"""The training state that --resume restores, saved as one TensorFlow checkpoint.

The checkpoint is the single source of truth: it holds the model and optimizer, the position in the
data (epoch and step), the running sums of an unfinished epoch, the finished epochs' metrics rows,
and the best model so far. metrics.csv and best.keras are written from it after every save, so a
crash between any two writes leaves a folder that --resume completes exactly: a row is never lost
or doubled, and best.keras always holds the epoch that metrics.json names.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import tensorflow as tf

from plumbing import files, runs
from plumbing.errors import DataError, write_error


class TrainingState:
    """Everything --resume needs, in tf.Variables that one tf.train.Checkpoint saves together."""

    def __init__(self, model: keras.Model, optimizer, run_dir: Path):
        self.run_dir, self.model = Path(run_dir), model
        self.best_model = keras.models.clone_model(model)
        self.best_model.set_weights(model.get_weights())
        self.epoch = tf.Variable(0, dtype=tf.int64)  # finished epochs
        self.step = tf.Variable(0, dtype=tf.int64)  # finished steps of the next epoch
        self.sums = tf.Variable([0.0] * 4, dtype=tf.float64)  # its loss, correct, images, seconds so far
        self.best_epoch = tf.Variable(0, dtype=tf.int64)
        self.best_score = tf.Variable(-1.0, dtype=tf.float64)
        self.rows_json = tf.Variable("[]")  # the finished epochs' metrics rows
        checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, model_variables=model.variables,
                                         best_variables=self.best_model.variables, epoch=self.epoch,
                                         step=self.step, sums=self.sums, best_epoch=self.best_epoch,
                                         best_score=self.best_score, rows=self.rows_json)
        self.manager = tf.train.CheckpointManager(checkpoint, self.run_dir / "checkpoints", max_to_keep=1)

    @property
    def rows(self) -> list[dict]:
        return json.loads(self.rows_json.numpy().decode())

    def restore(self) -> bool:
        """Loads the latest checkpoint, if any (True), and rewrites metrics.csv and best.keras from it."""
        latest = self.manager.latest_checkpoint
        if latest is None:
            return False
        try:
            self.manager.checkpoint.restore(latest).assert_existing_objects_matched()
            rows = self.rows
        except Exception as err:  # a damaged file fails in many ways (OpError, IndexError, ValueError ...)
            raise DataError(f"the checkpoint in {self.run_dir / 'checkpoints'} is damaged or belongs to "
                            f"another model ({type(err).__name__}); it cannot be resumed: start a new run "
                            f"(another --name)") from None
        self.write_derived_files(rows)
        return True

    def save(self, new_best: bool = False) -> None:
        """Commits the state, then writes the files derived from it."""
        try:
            self.manager.save()
        except tf.errors.OpError as err:  # a full disk, a file in the way: the OSError of any other write
            where = self.run_dir / "checkpoints"
            raise write_error(err.message, where, "could not save the checkpoint") from None
        self.write_derived_files(self.rows, best_model=new_best)

    def save_mid_epoch(self, step: int, sums: list[float]) -> None:
        """Saves a run stopped in the middle of an epoch: the steps done and the epoch's running sums."""
        self.step.assign(step)
        self.sums.assign([float(value) for value in sums])
        self.save()

    def finish_epoch(self, row: dict, score: float) -> bool:
        """Records a finished epoch (not yet saved); returns whether it is the best so far."""
        self.rows_json.assign(json.dumps(self.rows + [row]))
        self.epoch.assign(row["epoch"])
        self.step.assign(0)
        self.sums.assign([0.0] * 4)
        best = score > float(self.best_score)
        if best:
            self.best_score.assign(score)
            self.best_epoch.assign(row["epoch"])
            self.best_model.set_weights(self.model.get_weights())
        return best

    def write_derived_files(self, rows: list[dict], best_model: bool = True) -> None:
        runs.write_metrics_csv(self.run_dir, rows)
        if best_model and int(self.best_epoch):
            files.atomic_write(self.run_dir / "best.keras", self.best_model.save)
