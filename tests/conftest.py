"""Shared fixtures: tiny CIFAR-format files with known pixels, the real sample shipped in
tests/data, and the real mini archive (for end-to-end tests, when $CIFAR10_MINI_ARCHIVE names it).
The helper functions tests call are in tests/helpers.py.

No student file is imported here at load time: a student file that does not import (a syntax error
in cifar10_input.py, say) then costs only the tests that need it, not the whole run.

Tests never touch the network (only servers they start on 127.0.0.1) or the home folder: Keras and
matplotlib are pointed at a temporary folder before they are imported.
"""

import os
import shutil
import tarfile
import tempfile
from pathlib import Path

# Keras' and matplotlib's folders, unless a parent (a test, the grader) has set them for us
_scratch = None
if not (os.environ.get("KERAS_HOME") and os.environ.get("MPLCONFIGDIR")):
    _scratch = tempfile.mkdtemp(prefix="cifar10-tests-")  # removed when the session ends (below)
    os.environ.setdefault("KERAS_HOME", os.path.join(_scratch, "keras"))
    os.environ.setdefault("MPLCONFIGDIR", os.path.join(_scratch, "matplotlib"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")
# a student's own data folder must not change what tests see
os.environ.pop("CIFAR10_DATA_DIR", None)
os.environ.pop("CIFAR10_URL", None)
MINI_ARCHIVE_ENV, MNIST_MINI_ENV = "CIFAR10_MINI_ARCHIVE", "MNIST_MINI_DIR"
for _name in (MINI_ARCHIVE_ENV, MNIST_MINI_ENV):  # relative to where pytest started: pin them now
    if os.environ.get(_name):
        os.environ[_name] = str(Path(os.environ[_name]).resolve())

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import grading  # noqa: E402  (tests/grading.py: points and the summary table)
from helpers import (  # noqa: E402
    SAMPLE_DIR,
    TINY,
    end_to_end_input,
    known_images,
    run_train,
    start_server,
    write_records,
)


def pytest_configure(config):
    config.pluginmanager.register(grading.GradingPlugin(config), "grading")


def pytest_unconfigure(config):
    """Removes the scratch folder this process made: the first test process, whose session ends
    after every process that inherited its KERAS_HOME and MPLCONFIGDIR."""
    if _scratch is not None:
        shutil.rmtree(_scratch, ignore_errors=True)


@pytest.fixture
def synthetic_dir(tmp_path: Path) -> Path:
    """A cifar-10-batches-bin folder: five train files of 20 records and a test file of 10."""
    import cifar10_input

    folder = tmp_path / cifar10_input.BATCHES_DIRNAME
    folder.mkdir()
    for i, name in enumerate(cifar10_input.TRAIN_FILES):
        ids = np.arange(i * 20, (i + 1) * 20)
        write_records(folder / name, ids % 10, known_images(20, first_id=i * 20))
    write_records(
        folder / "test_batch.bin", (np.arange(10) * 3) % 10, known_images(10, first_id=1000)
    )
    return folder


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """The real CIFAR-10 sample in tests/data: 500 training and 100 test images, official format."""
    if not (SAMPLE_DIR / "test_batch.bin").is_file():
        pytest.fail(
            f"{SAMPLE_DIR} is missing: it ships with the repository; git checkout tests/data"
        )
    return SAMPLE_DIR


@pytest.fixture(scope="session")
def real_images(sample_dir):
    """The sample's 500 training images, normalised (float32 NHWC), and their labels."""
    import cifar10_input

    images, labels = cifar10_input.load_split(sample_dir, "train")
    mean, std = cifar10_input.channel_stats(images)
    return ((images / 255.0 - mean) / std).astype(np.float32), labels


@pytest.fixture(scope="session")
def mini_archive() -> Path:
    """The real mini CIFAR-10 archive (5,085 + 500 images) named by $CIFAR10_MINI_ARCHIVE."""
    return end_to_end_input(MINI_ARCHIVE_ENV, "a file", Path.is_file)


@pytest.fixture(scope="session")
def mini_dir(mini_archive: Path, tmp_path_factory) -> Path:
    """The mini archive extracted once per test session through the real extraction code."""
    import cifar10_input

    return cifar10_input.maybe_download_and_extract(
        tmp_path_factory.mktemp("mini"), str(mini_archive)
    )


@pytest.fixture(scope="session")
def mnist_mini() -> Path:
    """The folder of 4,000 + 1,000 real MNIST digits (official IDX files): $MNIST_MINI_DIR."""
    return end_to_end_input(MNIST_MINI_ENV, "a folder", Path.is_dir)


# ----------------------------------------------------------------------------- a local HTTP server
@pytest.fixture
def serve():
    """Starts servers on 127.0.0.1 serving a payload (helpers.start_server: the options); returns
    (url, server) for each, and stops them after the test."""
    servers = []

    def start(payload: bytes, **options):
        url, server = start_server(payload, **options)
        servers.append(server)
        return url, server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def sample_archive(tmp_path_factory) -> Path:
    """A .tar.gz of the real sample in tests/data, laid out like the official archive."""
    import cifar10_input

    path = tmp_path_factory.mktemp("archive") / "cifar-10-sample-binary.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(SAMPLE_DIR, arcname=cifar10_input.BATCHES_DIRNAME)
    return path


@pytest.fixture(scope="session")
def trained(sample_dir, tmp_path_factory) -> Path:
    """A finished one-epoch run of the linear model on the sample, trained once per session: tests
    that change a run work on a copy of it."""
    code, run_dir = run_train(
        sample_dir.parent, tmp_path_factory.mktemp("trained"), *TINY, "--epochs", "1"
    )
    assert code == 0
    return run_dir
