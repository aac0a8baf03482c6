"""Shared fixtures: tiny CIFAR-format files with known pixels, the real sample shipped in tests/data,
and the real mini archive (for end-to-end tests, when $CIFAR10_MINI_ARCHIVE names it). The helper
functions tests call are in tests/helpers.py.

No student file is imported here at load time: a student file that does not import (a syntax error
in cifar10_input.py, say) then costs only the tests that need it, not the whole run.

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
os.environ.pop(
    "CIFAR10_DATA_DIR", None
)  # a student's own data folder must not change what tests see
os.environ.pop("CIFAR10_URL", None)
MINI_ARCHIVE_ENV, MNIST_MINI_ENV = "CIFAR10_MINI_ARCHIVE", "MNIST_MINI_DIR"
for _name in (MINI_ARCHIVE_ENV, MNIST_MINI_ENV):  # relative to where pytest started: pin them now
    if os.environ.get(_name):
        os.environ[_name] = str(Path(os.environ[_name]).resolve())

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import grading  # noqa: E402  (tests/grading.py: points and the summary table)
from helpers import SAMPLE_DIR, TINY, known_images, run_train, write_records  # noqa: E402


def pytest_configure(config):
    config.pluginmanager.register(grading.GradingPlugin(config), "grading")


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


def _mini(env: str, what: str, check) -> Path:
    """A path from the environment for an (ungraded) end-to-end test: skipped when unset, except under CI."""
    value = os.environ.get(env)
    path = Path(value) if value else None
    if path is None or not check(path):
        example = "cifar-10-mini-binary.tar.gz" if "CIFAR" in env else "mnist-mini"
        message = (
            f"{env} is {'unset' if value is None else repr(value) + ', not ' + what}; set it to run "
            f"this end-to-end test, e.g. {env}=../shared/data/{example} pytest"
        )
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
    import cifar10_input

    return cifar10_input.maybe_download_and_extract(
        tmp_path_factory.mktemp("mini"), str(mini_archive)
    )


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

    def start(
        payload: bytes,
        *,
        ranges: bool = True,
        drops: int = 0,
        status: int = 0,
        send_length: bool = True,
        cut_at: int | None = None,
        stall: bool = False,
        name: str = "cifar-10-mini-binary.tar.gz",
        files: dict[str, bytes] | None = None,
    ):
        server = _Server(("127.0.0.1", 0), _Handler)
        server.payload, server.ranges, server.drops_left, server.requests = (
            payload,
            ranges,
            drops,
            [],
        )
        server.status, server.send_length, server.cut_at, server.stall = (
            status,
            send_length,
            cut_at,
            stall,
        )
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
    import cifar10_input

    path = tmp_path_factory.mktemp("archive") / "cifar-10-sample-binary.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(SAMPLE_DIR, arcname=cifar10_input.BATCHES_DIRNAME)
    return path


@pytest.fixture(scope="session")
def trained(sample_dir, tmp_path_factory) -> Path:
    """A finished one-epoch run of the linear model on the sample, trained once per session: tests that
    change a run work on a copy of it."""
    code, run_dir = run_train(
        sample_dir.parent, tmp_path_factory.mktemp("trained"), *TINY, "--epochs", "1"
    )
    assert code == 0
    return run_dir
