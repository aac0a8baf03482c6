"""The training state that --resume restores, saved as one TensorFlow checkpoint.

The checkpoint is the single source of truth: it holds the model and optimizer, the position in the
data (epoch and step), the running sums of an unfinished epoch, the finished epochs' metrics rows,
and the best model so far. metrics.csv and best.keras are written from it after every save, so a
crash between any two writes leaves a folder that --resume completes exactly: a row is never lost
or doubled, and best.keras always holds the epoch that metrics.json names.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import re
import shlex
import time
from pathlib import Path

import keras
import tensorflow as tf

from plumbing import files, runs
from plumbing.errors import DataError, write_error


@dataclasses.dataclass
class EpochSums:
    """The running sums of the epoch being trained: its mean loss and accuracy so far come from
    them. A run stopped in the middle of an epoch saves them, so that the resumed epoch's row is
    exact."""

    loss: float = 0.0  # of the steps' mean losses
    correct: float = 0.0  # examples classified correctly
    images: float = 0.0  # examples seen
    seconds: float = 0.0  # time spent training (not validating)

    def add(self, loss, correct, images: int) -> None:
        """Adds one step (loss and correct as the step returns them: tensors)."""
        self.loss, self.correct, self.images = (
            self.loss + loss,
            self.correct + correct,
            self.images + images,
        )

    def mean_loss(self, batch_size: int) -> float:
        """The mean over the steps so far of each step's mean loss."""
        return float(self.loss) / (self.images / batch_size)

    def accuracy(self) -> float:
        return float(self.correct) / self.images


class TrainingState:
    """Everything --resume needs, in tf.Variables that one tf.train.Checkpoint saves together."""

    def __init__(self, model: keras.Model, optimizer, run_dir: Path):
        self.run_dir, self.model = Path(run_dir), model
        self.best_model = keras.models.clone_model(model)
        self.best_model.set_weights(model.get_weights())
        self.epoch = tf.Variable(0, dtype=tf.int64)  # finished epochs
        self.step = tf.Variable(0, dtype=tf.int64)  # finished steps of the next epoch
        self.sums = tf.Variable([0.0] * 4, dtype=tf.float64)  # its EpochSums, in field order
        self.best_epoch = tf.Variable(0, dtype=tf.int64)
        self.best_score = tf.Variable(-1.0, dtype=tf.float64)
        self.rows_json = tf.Variable("[]")  # the finished epochs' metrics rows
        checkpoint = tf.train.Checkpoint(
            model=model,
            optimizer=optimizer,
            model_variables=model.variables,
            best_variables=self.best_model.variables,
            epoch=self.epoch,
            step=self.step,
            sums=self.sums,
            best_epoch=self.best_epoch,
            best_score=self.best_score,
            rows=self.rows_json,
        )
        self.folder = self.run_dir / "checkpoints"
        self.checkpoint = checkpoint
        self.manager = self._manager()

    @property
    def rows(self) -> list[dict]:
        return json.loads(self.rows_json.numpy().decode())

    def restore(self) -> bool:
        """Loads the newest intact checkpoint, if any (True), and rewrites metrics.csv and
        best.keras from it.

        The checkpoints are found by their own files (ckpt-N.index), not by the small state file
        `checkpoints/checkpoint` that only names the latest one: a state file that is damaged, empty
        or missing must not make a run start over. A run that saved and lost its checkpoints is
        refused."""
        if self.folder.exists() and not self.folder.is_dir():  # said as any other file in the way
            raise NotADirectoryError(errno.ENOTDIR, "Not a directory", str(self.folder))
        candidates = sorted(self.folder.glob("ckpt-*.index"), key=_number, reverse=True)
        if not candidates:
            if self._started():
                raise DataError(
                    f"{self.folder} holds no checkpoint (its ckpt-* files are gone), but the run "
                    f"had started; it cannot be resumed: start a new run (another --name)"
                )
            return False
        damaged = []
        for index in candidates:  # newest first; an older one only if the newer is damaged
            prefix = str(index.with_suffix(""))
            try:
                self.checkpoint.restore(prefix).assert_existing_objects_matched()
                rows = self.rows
                break
            except Exception as err:  # a damaged file fails in many ways (OpError, IndexError ...)
                damaged.append(f"{index.stem} ({type(err).__name__})")
        else:
            raise DataError(
                f"the checkpoint in {self.folder} is damaged or belongs to another model "
                f"({', '.join(damaged)}); it cannot be resumed: start a new run (another --name)"
            )
        if damaged:
            print(
                f"skipped the damaged checkpoint {', '.join(damaged)}; resuming from {index.stem}"
            )
        if (
            self.manager.latest_checkpoint != prefix
        ):  # the state file is wrong: make it name this one
            self._write_state_file(index.stem)
            self.manager = self._manager()
        self.write_derived_files(rows)
        return True

    def save(self, new_best: bool = False) -> None:
        """Commits the state, then writes the files derived from it."""
        try:
            self.manager.save()
        except (
            tf.errors.OpError
        ) as err:  # a full disk, a file in the way: the OSError of any other write
            where = self.run_dir / "checkpoints"
            raise write_error(err.message, where, "could not save the checkpoint") from None
        self.write_derived_files(self.rows, best_model=new_best)

    def start(self) -> None:
        """Restores the checkpoint of a run that was stopped (and says from where), or saves the
        first one: from then on the run can be resumed. Then says where the run folder is."""
        if self.restore():
            print(f"resuming from epoch {self.epochs_done + 1}, step {self.steps_done}")
        else:
            self.save()
        parent = shlex.quote(str(self.run_dir.parent))
        print(f"run folder: {self.run_dir}   (tensorboard --logdir {parent})")

    @property
    def epochs_done(self) -> int:
        return int(self.epoch)

    @property
    def steps_done(self) -> int:
        """The steps done of the epoch that is not finished (0 at the start of an epoch)."""
        return int(self.step)

    def unfinished_epoch(self) -> EpochSums:
        """The running sums of the epoch to train: zeros, or what a stopped run had done of it."""
        return EpochSums(*self.sums.numpy())

    def save_mid_epoch(self, step: int, sums: EpochSums) -> None:
        """Saves a run stopped in the middle of an epoch: the steps done and the epoch's running
        sums."""
        self.step.assign(step)
        self.sums.assign([float(value) for value in dataclasses.astuple(sums)])
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

    def _manager(self) -> tf.train.CheckpointManager | None:
        """Keeps one checkpoint, ckpt-N (the older one is deleted after the next save). None when
        the state file is empty and no checkpoint is left: restore() then refuses the run."""
        try:
            return tf.train.CheckpointManager(self.checkpoint, self.folder, max_to_keep=1)
        except (
            ValueError
        ):  # an empty state file (an unreadable one counts as none): name the newest
            candidates = sorted(self.folder.glob("ckpt-*.index"), key=_number, reverse=True)
            if not candidates:
                return None
            self._write_state_file(candidates[0].stem)
            return tf.train.CheckpointManager(self.checkpoint, self.folder, max_to_keep=1)

    def _write_state_file(self, name: str) -> None:
        """Rewrites `checkpoints/checkpoint` (a text protocol buffer) naming the one checkpoint
        `name`."""
        files.write_text(
            self.folder / "checkpoint",
            f'model_checkpoint_path: "{name}"\n'
            f'all_model_checkpoint_paths: "{name}"\n'
            f"all_model_checkpoint_timestamps: {time.time()}\n",
        )

    def _started(self) -> bool:
        """Whether the run had saved a checkpoint once: the state file or the files written after
        it."""
        return any(
            path.exists()
            for path in (
                self.folder / "checkpoint",
                self.run_dir / "metrics.csv",
                self.run_dir / "best.keras",
            )
        )


def _number(index: Path) -> int:
    """N of ckpt-N.index (0 for a name of another form)."""
    match = re.fullmatch(r"ckpt-(\d+)\.index", index.name)
    return int(match.group(1)) if match else 0
