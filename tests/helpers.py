"""Helpers the tests call: known pixels, CIFAR-10 records, model checks, whole runs on the sample,
the end-to-end inputs and local HTTP servers.

Student files (cifar10_input, cnn, train, ...) are imported inside the functions that need them, so
a test module importing this one does not depend on every student file importing.
"""

import http.server
import os
import socket
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from plumbing.todo import NotWrittenError

# For tests that run pytest on a suite: pytest.ini's parallel workers, and a single process (-n 0)
WORKERS = pytest.mark.parametrize("workers", [[], ["-n", "0"]], ids=["workers", "one-process"])

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DIR = REPO_ROOT / "tests" / "data" / "cifar-10-batches-bin"  # 500 + 100 real images
# The smallest run train.py makes on the sample: the linear model, 100 images, one batch of 50 a
# step.
SMALL_DATA = ["--num-train-examples", "100", "--val-size", "50", "--batch-size", "50"]
TINY = ["--preset", "linear", *SMALL_DATA]
# The smallest MLP run (sweeps over its options): the slices tests take depend on this order.
TINY_MLP = ["--model", "mlp", "--hidden-units", "32", *SMALL_DATA, "--epochs", "1"]


def known_images(num_images: int, first_id: int = 0) -> np.ndarray:
    """uint8 [N, 3, 32, 32] (CHW, as on disk) whose pixels differ by image, channel, row, column."""
    image = np.arange(first_id, first_id + num_images)[:, None, None, None]
    channel = np.arange(3)[None, :, None, None]
    row = np.arange(32)[None, None, :, None]
    col = np.arange(32)[None, None, None, :]
    return ((image * 37 + channel * 101 + row * 7 + col * 3) % 256).astype(np.uint8)


def write_records(path: Path, labels: np.ndarray, images_chw: np.ndarray) -> None:
    """Writes CIFAR-10 binary records: one label byte, then 3,072 pixel bytes in CHW order."""
    records = np.concatenate(
        [np.asarray(labels, np.uint8)[:, None], images_chw.reshape(len(labels), -1)], axis=1
    )
    path.write_bytes(records.tobytes())


def random_images(shape, batch: int = 4, seed: int = 0):
    """A batch of standard-normal images [batch, *shape], the same for the same seed."""
    import tensorflow as tf

    return tf.random.stateless_normal((batch, *shape), [seed, 0])


def check_logits(model, input_shape) -> None:
    """The model maps a batch of images to float32 logits [B, 10] (not probabilities)."""
    import tensorflow as tf

    logits = model(random_images(input_shape, batch=3), training=False)
    assert tuple(logits.shape) == (3, 10), (
        f"logits of shape {tuple(logits.shape)}, expected (3, 10)"
    )
    assert logits.dtype == tf.float32, f"logits of type {logits.dtype.name}, expected float32"
    assert not np.allclose(np.sum(np.exp(logits.numpy()), axis=1), 1.0), (
        "outputs must be logits, not softmax"
    )


def check_initial_loss(build, real_images) -> None:
    """Before training, the mean cross-entropy on real images is ln(10): no class is favoured."""
    import keras

    keras.utils.set_random_seed(0)
    x, y = real_images
    logits = build((32, 32, 3), 10)(x, training=False)
    loss = float(keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, logits))
    assert abs(loss - np.log(10)) < 0.05, f"initial loss {loss:.3f}, expected about ln(10) = 2.303"


def check_overfits(
    build, real_images, learning_rate: float, steps: int, num_images: int = 64
) -> None:
    """Adam reaches 100% training accuracy on a few real images within `steps` full-batch steps.

    The accuracy is measured in training mode, as the network was trained: batch norm then
    normalises with the batch's own statistics. Its moving averages (inference mode) lag far behind
    after a few steps (Keras' default momentum 0.99 keeps 74% of their initial values after 30),
    which says nothing about whether the network can fit; the batch-norm tests check inference on
    their own."""
    import keras

    keras.utils.set_random_seed(0)
    x, y = real_images[0][:num_images], real_images[1][:num_images]
    model = build((32, 32, 3), 10)
    model.compile(
        keras.optimizers.Adam(learning_rate),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    for _ in range(steps):
        model.train_on_batch(x, y)
    accuracy = np.mean(np.argmax(model(x, training=True).numpy(), axis=1) == y)
    assert accuracy == 1.0, (
        f"{model.name} reached {accuracy:.0%} training accuracy (training mode) on "
        f"{num_images} images after {steps} Adam steps: the network cannot fit them"
    )


def preset_builder(preset: str):
    """build_cnn with the model options of a preset (python train.py --list-presets lists them)."""
    from cnn import build_cnn
    from plumbing.options import builder_options
    from train import PRESETS

    options = {k: v for k, v in PRESETS[preset].items() if k in builder_options("cnn")}
    return lambda input_shape, num_classes: build_cnn(input_shape, num_classes, **options)


def cnn_count(
    in_channels, widths, convs, batch_norm, head_inputs, dense_units=0, classes=10, kernel=3
):
    """build_cnn's parameter count by formula: kernels, biases or batch norm, dense, classifier."""
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
    """A finished run on the sample (tests/data): every file is there, and the rows, the confusion
    matrix and test_accuracy agree with each other and with best.keras. Returns metrics.json."""
    import csv
    import json
    import math

    import keras
    import tensorflow as tf

    import cifar10_input

    expected = [
        "config.json",
        "metrics.csv",
        "metrics.json",
        "best.keras",
        "learning_curves.png",
        "confusion_matrix.png",
        "confusion_matrix.csv",
        "per_class_accuracy.png",
        "confident_mistakes.png",
        "weights.png",
        "steps.csv",
    ]
    missing = [f for f in expected if not (run_dir / f).is_file()]
    assert not missing, f"run folder lacks {missing}"
    assert list((run_dir / "tb" / "train").glob("events.out.tfevents.*")), "no TensorBoard events"
    assert (run_dir / "checkpoints" / "checkpoint").is_file(), "no checkpoint for --resume"
    assert not list(run_dir.glob("*.tmp-*")), "a temporary file was left behind"

    config = json.loads((run_dir / "config.json").read_text())
    assert config["versions"]["tensorflow"] == tf.__version__ and "git_commit" in config
    from plumbing import machine

    chosen = machine.compute_policy(config["options"], config["machine"]["device"])
    assert config["machine"]["compute"] == chosen, "config.json names the compute it trained in"
    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == list(range(1, epochs + 1)), (
        "one metrics.csv row per epoch"
    )
    for row in rows:
        assert 0 <= float(row["train_accuracy"]) <= 1 and math.isfinite(float(row["train_loss"]))
        assert float(row["weight_penalty"]) > 0 and float(row["images_per_second"]) > 0

    with open(run_dir / "confusion_matrix.csv") as f:
        matrix = np.array([[int(v) for v in line.split(",")[1:]] for line in list(f)[1:]])
    assert matrix.shape == (10, 10) and matrix.sum() == 100, (
        "the confusion matrix covers the 100 test images"
    )

    # test_accuracy must equal a recomputation from the saved model (with the same test-time flip).
    results = json.loads((run_dir / "metrics.json").read_text())
    best_row = max(rows, key=lambda r: float(r["val_accuracy"]))
    assert results["best_epoch"] == int(best_row["epoch"]), (
        "metrics.json names the best validation epoch"
    )
    option = config["options"]
    model = keras.models.load_model(run_dir / "best.keras")
    val_size = 50 if option["val_size"] is None else option["val_size"]  # None: 10% of the 500
    test = cifar10_input.make_dataset(
        Path(config["data_folder"]),
        "test",
        batch_size=50,
        val_size=val_size,
        num_train_examples=option["num_train_examples"],
        seed=option["seed"],
    )
    correct = 0
    for images, labels in test:
        logits = model(images, training=False)
        if option["tta"]:
            logits = (logits + model(tf.reverse(images, axis=[2]), training=False)) / 2
        correct += int(np.sum(np.argmax(logits, 1) == labels.numpy()))
    assert abs(results["test_accuracy"] - correct / 100) <= 1 / 100, (
        "at most one near-tie may differ"
    )
    assert np.trace(matrix) == round(results["test_accuracy"] * 100)
    return results


def run_train(data_dir: Path, run_root: Path, *args: str, name: str = "run") -> tuple[int, Path]:
    """train.main on the data in `data_dir` (a folder holding cifar-10-batches-bin), returning
    (exit code, run folder).

    On the exercise version train.py exits 2 with 'NOT IMPLEMENTED: file::function: hint'; that is
    raised as the stub's NotWrittenError, so the test is reported as the missing piece like every
    other test.
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
    """Turns train.py's exit 2 with 'NOT IMPLEMENTED: file::function: hint' back into the stub's
    error, NotWrittenError."""
    missing = [line for line in stderr.splitlines() if line.startswith("NOT IMPLEMENTED: ")]
    if exit_code == 2 and missing:
        raise NotWrittenError(missing[-1].removeprefix("NOT IMPLEMENTED: "))


# ------------------------------------------------------------------------- a raw server (any bytes)
BAD_REPLIES = {  # replies http.client rejects, and what the one-line error says about each
    "not HTTP at all": (b"SSH-2.0-OpenSSH_9.6\r\n", "its first line is 'SSH-2.0-OpenSSH_9.6"),
    "a bad status line": (
        b"HTTP/1.1 two hundred OK\r\n\r\n",
        "its first line is 'HTTP/1.1 two hundred OK",
    ),
    "a 70 KB header line": (
        b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 70_000 + b"\r\n\r\n",
        "got more than 65536 bytes when reading header line",
    ),
    "over 100 headers": (
        b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(101)) + b"\r\n",
        "got more than 100 headers",
    ),
    "Content-Length: abc": (
        b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nbody",
        "Content-Length 'abc' is not a number of bytes",
    ),
}


def raw_server(
    reply: bytes, *, max_connections: int = 32, lifetime_s: float = 15.0, stall_s: float = 0.0
):
    """Starts a server on 127.0.0.1 answering each connection with `reply`, raw bytes that need not
    be HTTP, then (after `stall_s` seconds of silence) hanging up. Returns (base URL, requests: the
    first line of each request received).

    Bounded: its thread stops by itself after `max_connections` connections or `lifetime_s` seconds,
    whichever comes first (a daemon thread: it never holds up the end of the tests)."""
    import socket
    import threading
    import time

    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    requests: list[str] = []
    deadline = time.monotonic() + lifetime_s

    def answer(connection: socket.socket) -> None:
        with connection:
            connection.settimeout(2.0)
            received = b""
            try:
                while b"\r\n\r\n" not in received and len(received) < 65536:
                    if not (chunk := connection.recv(4096)):
                        break
                    received += chunk
                requests.append(received.split(b"\r\n", 1)[0].decode("latin-1"))
                connection.sendall(reply)
                time.sleep(stall_s)  # a server that stops sending: the client's time-out ends this
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:  # the client hung up first: what some replies make it do
                pass

    def serve() -> None:
        with listener:
            for _ in range(max_connections):
                while time.monotonic() < deadline:
                    try:
                        connection, _ = listener.accept()
                        break
                    except TimeoutError:
                        continue
                else:
                    return
                answer(connection)

    threading.Thread(target=serve, daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}", requests


# ----------------------------------------------------------------------------- runs compared
def assert_one_line(capsys, code: int, expected_code: int, text: str) -> str:
    """The command exited with `expected_code`, printing one line (no traceback) holding `text`."""
    err = capsys.readouterr().err
    assert (
        code == expected_code and text in err and err.count("\n") == 1 and "Traceback" not in err
    ), f"exit {code}:\n{err}"
    return err.strip()


def run_outcome(run_dir: Path) -> dict:
    """What two runs that are the same must agree on, bit for bit: metrics.csv's rows and
    metrics.json (times aside), the checkpoint's model weights, best.keras' weights."""
    import json

    import keras
    import tensorflow as tf

    from plumbing import runs

    rows = [
        {k: v for k, v in row.items() if k not in ("seconds", "images_per_second")}
        for row in runs.read_metrics_csv(run_dir / "metrics.csv")
    ]
    results = json.loads((run_dir / "metrics.json").read_text())
    results.pop("train_seconds")
    reader = tf.train.load_checkpoint(str(run_dir / "checkpoints"))
    names = sorted(k for k in reader.get_variable_to_shape_map() if k.startswith("model_variables"))
    weights = {k: reader.get_tensor(k) for k in names}
    best = [w.numpy() for w in keras.models.load_model(run_dir / "best.keras").weights]
    return dict(rows=rows, results=results, weights=weights, best=best)


def assert_same_outcome(outcome: dict, reference: dict, what: str) -> None:
    """Two run_outcome()s are equal, weights bit for bit."""
    assert outcome["rows"] == reference["rows"], f"{what}: metrics.csv differs"
    assert outcome["results"] == reference["results"], f"{what}: metrics.json differs"
    assert outcome["weights"].keys() == reference["weights"].keys(), f"{what}: other variables"
    for key, value in reference["weights"].items():
        np.testing.assert_array_equal(outcome["weights"][key], value, err_msg=f"{what}: {key}")
    assert len(outcome["best"]) == len(reference["best"]), f"{what}: best.keras has other weights"
    for mine, theirs in zip(outcome["best"], reference["best"]):
        np.testing.assert_array_equal(mine, theirs, err_msg=f"{what}: best.keras differs")


# ----------------------------------------------------------------------------- end-to-end inputs
def end_to_end_input(env: str, what: str, check) -> Path:
    """A path from the environment variable `env` for an (ungraded) end-to-end test; `check(path)`
    says it is `what` it must be. Skipped when unset or wrong, except under CI (then it fails)."""

    value = os.environ.get(env)
    path = Path(value) if value else None
    if path is None or not check(path):
        example = "cifar-10-mini-binary.tar.gz" if "CIFAR" in env else "mnist-mini"
        state = "unset" if value is None else f"{value!r}, not {what}"
        message = (
            f"{env} is {state}; set it to run this end-to-end test, "
            f"e.g. {env}=../shared/data/{example} pytest"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


# ----------------------------------------------------------------------------- a local HTTP server
class PayloadHandler(http.server.BaseHTTPRequestHandler):
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


class PayloadServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        """Clients that hang up mid-body are what several tests do on purpose: no traceback on
        stderr (it would land in the next capsys read, in whichever test runs then)."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def start_server(
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
) -> tuple[str, "PayloadServer"]:
    """A server on 127.0.0.1 serving `payload` (or `files`, by name) as PayloadHandler says, in a
    thread of its own; returns (its URL for `name`, the server). The caller shuts it down."""
    server = PayloadServer(("127.0.0.1", 0), PayloadHandler)
    server.payload = payload
    server.ranges = ranges
    server.drops_left = drops
    server.requests = []
    server.status = status
    server.send_length = send_length
    server.cut_at = cut_at
    server.stall = stall
    server.files = files
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}/{name}", server
