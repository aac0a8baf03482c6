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
import grading  # noqa: E402  (tests/grading.py: points, the summary table, --grades-json)

MINI_ARCHIVE_ENV = "CIFAR10_MINI_ARCHIVE"


def pytest_addoption(parser):
    grading.add_options(parser)


def pytest_configure(config):
    config.pluginmanager.register(grading.GradingPlugin(config), "grading")


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


@pytest.fixture(scope="session")
def real_images(mini_dir):
    """512 normalised real training images (float32 NHWC) and their labels."""
    images, labels = cifar10_input.load_split(mini_dir, "train")
    mean, std = cifar10_input.channel_stats(images)
    return ((images[:512] / 255.0 - mean) / std).astype(np.float32), labels[:512]


def random_images(shape, batch: int = 4, seed: int = 0):
    """A batch of standard-normal images [batch, *shape], the same for the same seed."""
    import tensorflow as tf
    return tf.random.stateless_normal((batch, *shape), [seed, 0])


def check_logits(model, input_shape) -> None:
    """The model maps a batch of images to float32 logits [B, 10] (not probabilities)."""
    import tensorflow as tf
    logits = model(random_images(input_shape, batch=3), training=False)
    assert tuple(logits.shape) == (3, 10) and logits.dtype == tf.float32, f"got {logits.shape} {logits.dtype}"
    assert not np.allclose(np.sum(np.exp(logits.numpy()), axis=1), 1.0), "outputs must be logits, not softmax"


def check_initial_loss(build, real_images) -> None:
    """Before training, the mean cross-entropy on real images is ln(10): no class is favoured."""
    import keras
    keras.utils.set_random_seed(0)
    x, y = real_images
    logits = build((32, 32, 3), 10)(x, training=False)
    loss = float(keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, logits))
    assert abs(loss - np.log(10)) < 0.05, f"initial loss {loss:.3f}, expected about ln(10) = 2.303"


def check_overfits(build, real_images, learning_rate: float, steps: int) -> None:
    """Adam reaches 100% training accuracy on 64 real images within `steps` full-batch steps."""
    import keras
    keras.utils.set_random_seed(0)
    x, y = real_images[0][:64], real_images[1][:64]
    model = build((32, 32, 3), 10)
    model.compile(keras.optimizers.Adam(learning_rate), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=64, epochs=steps, verbose=0)
    accuracy = np.mean(np.argmax(model.predict(x, verbose=0), axis=1) == y)
    assert accuracy == 1.0, f"{model.name} reached {accuracy:.0%} on 64 images after {steps} steps"


def run_train(mini_dir: Path, run_root: Path, *args: str, name: str = "run") -> tuple[int, Path]:
    """train.main with the mini data, returning (exit code, run folder).

    On the exercise version train.py exits 2 with 'NOT IMPLEMENTED: file::function: hint'; that is
    raised as NotImplementedError, so the test is reported as the missing piece like every other test.
    """
    import contextlib
    import io
    import sys

    import train
    argv = ["--data-dir", str(mini_dir.parent), "--run-dir", str(run_root), "--name", name, *args]
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = train.main(argv)
    sys.stderr.write(err.getvalue())
    raise_if_not_implemented(code, err.getvalue())
    return code, run_root / name


def raise_if_not_implemented(exit_code: int, stderr: str) -> None:
    """Turns train.py's exit 2 with 'NOT IMPLEMENTED: file::function: hint' back into NotImplementedError."""
    missing = [line for line in stderr.splitlines() if line.startswith("NOT IMPLEMENTED: ")]
    if exit_code == 2 and missing:
        raise NotImplementedError(missing[-1].removeprefix("NOT IMPLEMENTED: "))
