"""steps.csv: the training loss as training goes, one row per logged step, written by the run
itself.

plumbing/logs.py writes it (at the rate of TensorBoard's step-level curves); compare.py reads it
with the csv module, without loading TensorFlow. Columns: step, images seen, epoch (images seen /
training examples, a fraction), loss, learning rate.
"""

from __future__ import annotations

import csv
from pathlib import Path

from plumbing import files

STEPS_CSV = ("step", "images", "epoch", "loss", "learning_rate")


class StepLog:
    """steps.csv: one row per logged step (step, images seen, epoch, loss, learning rate), appended
    and flushed row by row, so compare.py can read a run without TensorBoard. A resumed run first
    drops the rows after the step it resumes from (it trains those steps again)."""

    def __init__(self, path: Path):
        self.path, self.handle = Path(path), None

    def write(self, row: dict) -> None:
        if self.handle is None:
            self._open(row["step"])
        self.handle.write(",".join(str(row[key]) for key in STEPS_CSV) + "\n")
        self.handle.flush()

    def _open(self, first_step: int) -> None:
        kept = [row for row in read_steps(self.path) if row["step"] < first_step]
        lines = [",".join(STEPS_CSV)] + [",".join(str(r[k]) for k in STEPS_CSV) for r in kept]
        files.write_text(self.path, "\n".join(lines) + "\n")
        self.handle = open(self.path, "a")

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None


def read_steps(path: Path) -> list[dict]:
    """The rows of a steps.csv as numbers; none if there is no file; a torn last line is skipped."""
    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error):
        return []
    numbers = []
    for row in rows:
        try:
            numbers.append({key: float(row[key]) for key in STEPS_CSV})
        except (KeyError, TypeError, ValueError):
            continue  # a line cut short by a kill: the rows before it are good
    for row in numbers:
        row["step"], row["images"] = int(row["step"]), int(row["images"])
    return numbers
