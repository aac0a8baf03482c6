"""Hides TensorFlow's start-up noise, which it writes to stderr from C++ before reading any setting.

Dropped: the absl banner (printed twice), CUDA probes on a machine without an NVIDIA driver
('Could not find cuda drivers', 'failed call to cuInit'), the oneDNN and CPU-instruction notices,
and cuDNN/cuFFT/cuBLAS registration notices. Every other line (real errors) still reaches stderr.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading

NOISE = re.compile(
    "|".join(
        [
            r"All log messages before absl::InitializeLog\(\) is called are written to STDERR",
            r"Could not find cuda drivers on your machine",
            r"failed call to cuInit",
            r"oneDNN custom operations are on",
            r"This TensorFlow binary is optimized to use available CPU instructions",
            r"To enable the following instructions: .* rebuild TensorFlow",
            r"Unable to register cu(DNN|FFT|BLAS) factory",
            r"computation placer already registered",
            r"TF-TRT Warning: Could not find TensorRT",
            r"Unable to register cuda ",
        ]
    )
)


class _NoRetracingWarnings(logging.Filter):
    """TensorFlow warns when a tf.function is traced again; train.py builds each model's functions
    once, but a sweep builds many models in one process, which that count mistakes for a mistake."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


@contextlib.contextmanager
def tensorflow_start_up():
    """While active, stderr (file descriptor 2) passes through a filter that drops NOISE lines."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (e.g. under some IDEs): nothing to filter
        yield
        return
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def forward():
        with os.fdopen(read_end, "rb") as pipe:
            for line in pipe:
                if not NOISE.search(line.decode(errors="replace")):
                    os.write(saved, line)

    thread = threading.Thread(target=forward, daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # closes the pipe's last write end: the thread sees the end and stops
        thread.join(timeout=5)
        os.close(saved)
        hide_retracing_warnings()


def hide_retracing_warnings() -> None:
    """Adds the filter above to TensorFlow's logger (once)."""
    logger = logging.getLogger("tensorflow")
    if not any(isinstance(f, _NoRetracingWarnings) for f in logger.filters):
        logger.addFilter(_NoRetracingWarnings())
