"""Shared fixtures: tiny CIFAR-format files with known pixels, and the real mini archive.

Tests never touch the network (only servers they start on 127.0.0.1) or the home folder: Keras and
matplotlib are pointed at a temporary folder before they are imported.
"""

import os
import tempfile

_scratch = tempfile.mkdtemp(prefix="cifar10-tests-")
os.environ.setdefault("KERAS_HOME", os.path.join(_scratch, "keras"))
os.environ.setdefault("MPLCONFIGDIR", os.path.join(_scratch, "matplotlib"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import cifar10_input  # noqa: E402

MINI_ARCHIVE_ENV = "CIFAR10_MINI_ARCHIVE"


def known_images(num_images: int, first_id: int = 0) -> np.ndarray:
    """uint8 [N, 3, 32, 32] (CHW, as stored on disk) whose pixels differ by image, channel, row, column."""
    image = np.arange(first_id, first_id + num_images)[:, None, None, None]
    channel = np.arange(3)[None, :, None, None]
    row = np.arange(32)[None, None, :, None]
    col = np.arange(32)[None, None, None, :]
    return ((image * 37 + channel * 101 + row * 7 + col * 3) % 256).astype(np.uint8)


def write_records(path: Path, labels: np.ndarray, images_chw: np.ndarray) -> None:
    """Writes CIFAR-10 binary records: one label byte, then 3,072 pixel bytes in CHW order."""
    records = np.concatenate([np.asarray(labels, np.uint8)[:, None],
                              images_chw.reshape(len(labels), -1)], axis=1)
    path.write_bytes(records.tobytes())


@pytest.fixture
def synthetic_dir(tmp_path: Path) -> Path:
    """A cifar-10-batches-bin folder: five train files of 20 records and a test file of 10."""
    folder = tmp_path / cifar10_input.BATCHES_DIRNAME
    folder.mkdir()
    for i, name in enumerate(cifar10_input.TRAIN_FILES):
        ids = np.arange(i * 20, (i + 1) * 20)
        write_records(folder / name, ids % 10, known_images(20, first_id=i * 20))
    write_records(folder / "test_batch.bin", (np.arange(10) * 3) % 10, known_images(10, first_id=1000))
    return folder


@pytest.fixture(scope="session")
def mini_archive() -> Path:
    """The real mini CIFAR-10 archive named by $CIFAR10_MINI_ARCHIVE (a failure under CI when missing)."""
    value = os.environ.get(MINI_ARCHIVE_ENV)
    path = Path(value) if value else None
    if path is None or not path.is_file():
        message = (f"{MINI_ARCHIVE_ENV} is {'unset' if value is None else repr(value) + ', not a file'}; "
                   f"set it to the mini archive, e.g. "
                   f"{MINI_ARCHIVE_ENV}=../shared/data/cifar-10-mini-binary.tar.gz pytest")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def mini_dir(mini_archive: Path, tmp_path_factory) -> Path:
    """The mini archive extracted once per test session through the real extraction code."""
    return cifar10_input.maybe_download_and_extract(tmp_path_factory.mktemp("mini"), str(mini_archive))
