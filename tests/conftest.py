"""Shared fixtures: tiny CIFAR-format files with known pixels, the real sample shipped in tests/data,
and the real mini archive (for end-to-end tests, when $CIFAR10_MINI_ARCHIVE names it).

Tests never touch the network (only servers they start on 127.0.0.1) or the home folder: Keras and
matplotlib are pointed at a temporary folder before they are imported.
"""

import http.server
import os
import socket
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

_scratch = tempfile.mkdtemp(prefix="cifar10-tests-")
os.environ.setdefault("KERAS_HOME", os.path.join(_scratch, "keras"))
os.environ.setdefault("MPLCONFIGDIR", os.path.join(_scratch, "matplotlib"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.pop("CIFAR10_DATA_DIR", None)  # a student's own data folder must not change what tests see
os.environ.pop("CIFAR10_URL", None)
MINI_ARCHIVE_ENV, MNIST_MINI_ENV = "CIFAR10_MINI_ARCHIVE", "MNIST_MINI_DIR"
for _name in (MINI_ARCHIVE_ENV, MNIST_MINI_ENV):  # relative to where pytest started: pin them now
    if os.environ.get(_name):
        os.environ[_name] = str(Path(os.environ[_name]).resolve())

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import cifar10_input  # noqa: E402
import grading  # noqa: E402  (tests/grading.py: points, the summary table, --grades-json)

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DIR = REPO_ROOT / "tests" / "data" / cifar10_input.BATCHES_DIRNAME  # 500 + 100 real images


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
def sample_dir() -> Path:
    """The real CIFAR-10 sample in tests/data: 500 training and 100 test images, official format."""
    if not (SAMPLE_DIR / "test_batch.bin").is_file():
        pytest.fail(f"{SAMPLE_DIR} is missing: it ships with the repository; git checkout tests/data")
    return SAMPLE_DIR


@pytest.fixture(scope="session")
def real_images(sample_dir):
    """The sample's 500 training images, normalised (float32 NHWC), and their labels."""
    images, labels = cifar10_input.load_split(sample_dir, "train")
    mean, std = cifar10_input.channel_stats(images)
    return ((images / 255.0 - mean) / std).astype(np.float32), labels


def _mini(env: str, what: str, check) -> Path:
    """A path from the environment for an (ungraded) end-to-end test: skipped when unset, except under CI."""
    value = os.environ.get(env)
    path = Path(value) if value else None
    if path is None or not check(path):
        example = "cifar-10-mini-binary.tar.gz" if "CIFAR" in env else "mnist-mini"
        message = (f"{env} is {'unset' if value is None else repr(value) + ', not ' + what}; set it to run "
                   f"this end-to-end test, e.g. {env}=../shared/data/{example} pytest")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def mini_archive() -> Path:
    """The real mini CIFAR-10 archive (5,085 + 500 images) named by $CIFAR10_MINI_ARCHIVE."""
    return _mini(MINI_ARCHIVE_ENV, "a file", Path.is_file)


@pytest.fixture(scope="session")
def mini_dir(mini_archive: Path, tmp_path_factory) -> Path:
    """The mini archive extracted once per test session through the real extraction code."""
    return cifar10_input.maybe_download_and_extract(tmp_path_factory.mktemp("mini"), str(mini_archive))


@pytest.fixture(scope="session")
def mnist_mini() -> Path:
    """The folder of 4,000 + 1,000 real MNIST digits (official IDX files) named by $MNIST_MINI_DIR."""
    return _mini(MNIST_MINI_ENV, "a folder", Path.is_dir)


# ----------------------------------------------------------------------------- a local HTTP server
class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves one payload. It can honour Range, drop the first responses half-way, answer with an
    error status, leave out Content-Length, stop after some bytes, or stall (send nothing more)."""

    def do_GET(self):
        server = self.server
        server.requests.append(self.headers.get("Range"))
        if server.status:
            self.send_error(server.status)
            return
        data, start = server.payload, 0
        if server.files is not None:  # several files, by name
            data = server.files.get(self.path.rsplit("/", 1)[-1])
            if data is None:
                self.send_error(404)
                return
        if server.ranges and (header := self.headers.get("Range")):
            start = int(header.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        if server.send_length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if server.drops_left > 0 or server.cut_at is not None:  # send part, then hang up
            server.drops_left -= 1
            self.wfile.write(body[: len(body) // 2 if server.cut_at is None else server.cut_at])
            self.wfile.flush()
            if server.stall:
                time.sleep(300)  # a server that stops sending: only the client can end this
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        """Clients that hang up mid-body are what several tests do on purpose: no traceback on stderr
        (it would land in the next capsys read, in whichever test runs then)."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@pytest.fixture
def serve():
    """Starts servers on 127.0.0.1 serving a payload; returns (url, server) for each."""
    servers = []

    def start(payload: bytes, *, ranges: bool = True, drops: int = 0, status: int = 0,
              send_length: bool = True, cut_at: int | None = None, stall: bool = False,
              name: str = "cifar-10-mini-binary.tar.gz", files: dict[str, bytes] | None = None):
        server = _Server(("127.0.0.1", 0), _Handler)
        server.payload, server.ranges, server.drops_left, server.requests = payload, ranges, drops, []
        server.status, server.send_length, server.cut_at, server.stall = status, send_length, cut_at, stall
        server.files = files
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}/{name}", server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def sample_archive(tmp_path_factory) -> Path:
    """A .tar.gz of the real sample in tests/data, laid out like the official archive."""
    path = tmp_path_factory.mktemp("archive") / "cifar-10-sample-binary.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(SAMPLE_DIR, arcname=cifar10_input.BATCHES_DIRNAME)
    return path


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


def check_overfits(build, real_images, learning_rate: float, steps: int, num_images: int = 64) -> None:
    """Adam reaches 100% training accuracy on a few real images within `steps` full-batch steps."""
    import keras
    keras.utils.set_random_seed(0)
    x, y = real_images[0][:num_images], real_images[1][:num_images]
    model = build((32, 32, 3), 10)
    model.compile(keras.optimizers.Adam(learning_rate),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    for _ in range(steps):
        model.train_on_batch(x, y)
    accuracy = np.mean(np.argmax(model.predict_on_batch(x), axis=1) == y)
    assert accuracy == 1.0, f"{model.name} reached {accuracy:.0%} on {num_images} images after {steps} steps"


def preset_builder(preset: str):
    """build_cnn with the model options of one of the course's presets (python train.py --list-presets)."""
    from cnn import build_cnn
    from plumbing.options import PRESETS, builder_options

    options = {k: v for k, v in PRESETS[preset].items() if k in builder_options("cnn")}
    return lambda input_shape, num_classes: build_cnn(input_shape, num_classes, **options)


def cnn_count(in_channels, widths, convs, batch_norm, head_inputs, dense_units=0, classes=10, kernel=3):
    """build_cnn's parameter count from the formula: kernels, biases or batch norm, dense, classifier."""
    count, c_in = 0, in_channels
    for width in widths:
        for _ in range(convs):
            # batch norm: gamma, beta and two moving statistics per channel, instead of a bias
            count += kernel * kernel * c_in * width + (4 * width if batch_norm else width)
            c_in = width
    if dense_units:
        count += head_inputs * dense_units + dense_units
        head_inputs = dense_units
    return count + head_inputs * classes + classes


def check_run_folder(run_dir: Path, epochs: int) -> dict:
    """A finished run on the sample (tests/data): every file is there, and the rows, the confusion matrix
    and test_accuracy agree with each other and with best.keras. Returns metrics.json."""
    import csv
    import json
    import math

    import keras
    import tensorflow as tf
    expected = ["config.json", "metrics.csv", "metrics.json", "best.keras", "learning_curves.png",
                "confusion_matrix.png", "confusion_matrix.csv", "per_class_accuracy.png",
                "confident_mistakes.png"]
    missing = [f for f in expected if not (run_dir / f).is_file()]
    assert not missing, f"run folder lacks {missing}"
    assert list((run_dir / "tb" / "train").glob("events.out.tfevents.*")), "no TensorBoard events"
    assert (run_dir / "checkpoints" / "checkpoint").is_file(), "no checkpoint for --resume"
    assert not list(run_dir.glob("*.tmp-*")), "a temporary file was left behind"

    config = json.loads((run_dir / "config.json").read_text())
    assert config["versions"]["tensorflow"] == tf.__version__ and "git_commit" in config
    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == list(range(1, epochs + 1)), "one metrics.csv row per epoch"
    for row in rows:
        assert 0 <= float(row["train_accuracy"]) <= 1 and math.isfinite(float(row["train_loss"]))
        assert float(row["weight_penalty"]) > 0 and float(row["images_per_second"]) > 0

    with open(run_dir / "confusion_matrix.csv") as f:
        matrix = np.array([[int(v) for v in line.split(",")[1:]] for line in list(f)[1:]])
    assert matrix.shape == (10, 10) and matrix.sum() == 100, "the confusion matrix covers the 100 test images"

    # test_accuracy must equal a recomputation from the saved model (with the same test-time flip).
    results = json.loads((run_dir / "metrics.json").read_text())
    best_row = max(rows, key=lambda r: float(r["val_accuracy"]))
    assert results["best_epoch"] == int(best_row["epoch"]), "metrics.json names the best validation epoch"
    option = config["options"]
    model = keras.models.load_model(run_dir / "best.keras")
    val_size = 50 if option["val_size"] is None else option["val_size"]  # None: 10% of the 500
    test = cifar10_input.make_dataset(Path(config["data_folder"]), "test", batch_size=50, val_size=val_size,
                                      num_train_examples=option["num_train_examples"], seed=option["seed"])
    correct = 0
    for images, labels in test:
        logits = model(images, training=False)
        if option["tta"]:
            logits = (logits + model(tf.reverse(images, axis=[2]), training=False)) / 2
        correct += int(np.sum(np.argmax(logits, 1) == labels.numpy()))
    assert abs(results["test_accuracy"] - correct / 100) <= 1 / 100, "at most one near-tie may differ"
    assert np.trace(matrix) == round(results["test_accuracy"] * 100)
    return results


def run_train(data_dir: Path, run_root: Path, *args: str, name: str = "run") -> tuple[int, Path]:
    """train.main on the data in `data_dir` (a folder holding cifar-10-batches-bin), returning
    (exit code, run folder).

    On the exercise version train.py exits 2 with 'NOT IMPLEMENTED: file::function: hint'; that is
    raised as NotImplementedError, so the test is reported as the missing piece like every other test.
    """
    import contextlib
    import io
    import sys

    import train
    argv = ["--data-dir", str(data_dir), "--run-dir", str(run_root), "--name", name, *args]
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
