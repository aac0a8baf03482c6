"""Tests for mnist_input (the IDX format of MNIST and Fashion-MNIST) and those datasets in the
shared pipeline, the presets and train.py. Tiny IDX files with known bytes are written in tmp_path;
the real mini MNIST ($MNIST_MINI_DIR, 4,000 + 1,000 digits) serves the end-to-end checks. Not
graded."""

import gzip
import hashlib
import json

import numpy as np
import pytest

import cifar10_input as ci
import mnist_input as mi
import train
from helpers import run_train
from plumbing import options
from plumbing.errors import DataError

FAST = {"retries": 1, "backoff_s": 0.01, "timeout_s": 5.0, "show_progress": False}


def idx_images(images: np.ndarray) -> bytes:
    n, rows, cols = images.shape
    return (
        b"".join(v.to_bytes(4, "big") for v in (mi.IMAGES_MAGIC, n, rows, cols)) + images.tobytes()
    )


def idx_labels(labels: np.ndarray) -> bytes:
    header = mi.LABELS_MAGIC.to_bytes(4, "big") + len(labels).to_bytes(4, "big")
    return header + labels.astype(np.uint8).tobytes()


def known_digits(n: int, first: int = 0) -> np.ndarray:
    """uint8 [n, 28, 28] whose pixels differ by image, row and column."""
    image, row, col = np.ogrid[first : first + n, :28, :28]
    return ((image * 31 + row * 5 + col * 3) % 256).astype(np.uint8)


def write_idx_folder(folder, train_count: int = 30, test_count: int = 10, level: int = 9) -> dict:
    """The four .gz files of a tiny dataset; returns {name: raw content}."""
    folder.mkdir(parents=True, exist_ok=True)
    contents = {
        mi.FILES["train"][0]: idx_images(known_digits(train_count)),
        mi.FILES["train"][1]: idx_labels(np.arange(train_count) % 10),
        mi.FILES["test"][0]: idx_images(known_digits(test_count, first=500)),
        mi.FILES["test"][1]: idx_labels((np.arange(test_count) * 7) % 10),
    }
    for name, raw in contents.items():
        (folder / name).write_bytes(gzip.compress(raw, compresslevel=level, mtime=0))
    return contents


def test_idx_files_are_read_byte_for_byte(tmp_path):
    write_idx_folder(tmp_path)
    images, labels = mi.load_split(tmp_path, "train")
    assert images.dtype == np.uint8 and images.shape == (30, 28, 28, 1)
    np.testing.assert_array_equal(images[..., 0], known_digits(30))
    assert images[7, 2, 5, 0] == (7 * 31 + 2 * 5 + 5 * 3) % 256
    np.testing.assert_array_equal(labels, np.arange(30) % 10)
    test_images, test_labels = mi.load_split(tmp_path, "test")
    np.testing.assert_array_equal(test_images[..., 0], known_digits(10, first=500))
    np.testing.assert_array_equal(test_labels, (np.arange(10) * 7) % 10)


def test_the_shared_pipeline_serves_grey_28x28_images(tmp_path):
    write_idx_folder(tmp_path)
    x, y = next(iter(ci.make_dataset(tmp_path, "test", batch_size=10)))
    assert tuple(x.shape) == (10, 28, 28, 1) and x.dtype.name == "float32"
    mean, std = ci.channel_stats(mi.load_split(tmp_path, "train")[0])
    np.testing.assert_allclose(
        (x.numpy() * std + mean) * 255, mi.load_split(tmp_path, "test")[0], atol=1e-3
    )
    np.testing.assert_array_equal(y.numpy(), (np.arange(10) * 7) % 10)
    augmented = next(iter(ci.make_dataset(tmp_path, "train", batch_size=8, crop=2, cutout=4)))[0]
    assert tuple(augmented.shape) == (8, 28, 28, 1)


@pytest.mark.parametrize(
    "damage,message",
    [
        (lambda raw: raw[:-100], "has .* bytes, but its header announces"),
        (
            lambda raw: (1234).to_bytes(4, "big") + raw[4:],
            "is not an IDX file .* .magic number 1234",
        ),
    ],
)
def test_a_damaged_idx_file_is_named_in_one_line(tmp_path, damage, message):
    contents = write_idx_folder(tmp_path)
    name = mi.FILES["train"][0]
    (tmp_path / name).write_bytes(gzip.compress(damage(contents[name])))
    with pytest.raises(DataError, match=f"{name} {message}") as info:
        mi.load_split(tmp_path, "train")
    assert "\n" not in str(info.value)
    (tmp_path / name).write_bytes(b"<html>not gzip</html>")
    with pytest.raises(DataError, match=f"{name} is not a complete gzip file"):
        mi.load_split(tmp_path, "train")


@pytest.fixture
def tiny_dataset(monkeypatch):
    """A dataset 'tiny' in mnist_input's table, whose official files are those write_idx_folder
    writes at the highest compression."""
    import tempfile
    from pathlib import Path

    folder = Path(tempfile.mkdtemp())
    contents = write_idx_folder(folder / "official")
    md5 = {
        name: (
            hashlib.md5((folder / "official" / name).read_bytes()).hexdigest(),
            hashlib.md5(raw).hexdigest(),
        )
        for name, raw in contents.items()
    }
    monkeypatch.setitem(
        mi.DATASETS,
        "tiny",
        dict(
            class_names=tuple("abcdefghij"), url="unused", counts={"train": 30, "test": 10}, md5=md5
        ),
    )
    return folder


def test_a_recompressed_copy_is_accepted_by_its_content(tiny_dataset, tmp_path):
    write_idx_folder(tmp_path / "debian", level=1)  # other bytes, the same content
    folder = mi.maybe_download(tmp_path / "data", "tiny", str(tmp_path / "debian"))
    assert folder == tmp_path / "data" / "tiny"
    name = mi.FILES["test"][1]
    assert (folder / name).read_bytes() == (tmp_path / "debian" / name).read_bytes(), (
        "copied as it is"
    )
    assert mi.load_split(folder, "train")[0].shape == (30, 28, 28, 1)
    for name in mi.FILES["train"] + mi.FILES["test"]:  # the source is not read again
        (tmp_path / "debian" / name).unlink()
    again = mi.maybe_download(tmp_path / "data", "tiny", str(tmp_path / "debian"))
    assert again == folder, "nothing to do twice"


def test_a_full_size_file_with_other_content_is_rejected(tiny_dataset, tmp_path):
    contents = write_idx_folder(tmp_path / "modified")
    name = mi.FILES["train"][1]
    changed = bytearray(contents[name])
    changed[-1] = (changed[-1] + 1) % 10  # one label changed: the same count, other content
    (tmp_path / "modified" / name).write_bytes(gzip.compress(bytes(changed)))
    with pytest.raises(
        DataError, match=f"{name} but not its content .*damaged or modified; check the files"
    ):
        mi.maybe_download(tmp_path / "data", "tiny", str(tmp_path / "modified"))
    assert not (tmp_path / "data" / "tiny" / name).exists()


def test_the_four_files_download_from_a_base_url(tiny_dataset, serve, tmp_path):
    names = mi.FILES["train"] + mi.FILES["test"]
    files = {name: (tiny_dataset / "official" / name).read_bytes() for name in names}
    url, server = serve(b"", files=files)
    folder = mi.maybe_download(tmp_path, "tiny", url.rsplit("/", 1)[0] + "/", **FAST)
    placed = sorted(
        p.name for p in folder.iterdir() if p.name != "source.json"
    )  # and what they came from
    assert placed == sorted(files) and len(server.requests) == 4
    (tiny_dataset / "official" / names[2]).unlink()
    with pytest.raises(
        DataError, match=f"has no {names[2]}: --data-url must name the folder holding"
    ):
        mi.maybe_download(tmp_path / "other", "tiny", str(tiny_dataset / "official"))


def test_dataset_defaults_where_they_must_differ():
    mnist = options.resolve({"dataset": "mnist"}, train.DEFAULTS)
    assert (mnist["flip"], mnist["tta"], mnist["crop"]) == (False, False, 2), (
        "digits are not mirrored"
    )
    fashion = options.resolve({"dataset": "fashion-mnist"}, train.DEFAULTS)
    assert (fashion["flip"], fashion["tta"], fashion["crop"]) == (True, True, 2)
    # the 28x28 tuned recipe as bench/fashion_mnist.py measured it (docs/benchmarks.md)
    assert (fashion["convs_per_stage"], fashion["epochs"]) == (1, 16), "the 28x28 tuned recipe"
    cnn_stage = options.resolve({"dataset": "fashion-mnist", "preset": "cnn"}, train.DEFAULTS)
    assert "convs_per_stage" not in cnn_stage, "the stage presets keep their networks"
    assert options.resolve({"dataset": "fashion-mnist", "epochs": 3}, train.DEFAULTS)["epochs"] == 3
    assert options.resolve({"dataset": "mnist", "flip": True}, train.DEFAULTS)["flip"], (
        "a flag given stays"
    )
    assert options.resolve({"dataset": "mnist", "preset": "cnn"}, train.DEFAULTS)["crop"] == 0, (
        "off stays"
    )


def test_kernel_size_and_the_bias_penalty_reach_the_model():
    config = options.resolve(
        {"kernel_size": 5, "regularize_bias": True, "dense_units": 8, "widths": (4,)},
        train.DEFAULTS,
    )
    model = train.build_model(config, (28, 28, 1))
    assert model.get_layer("stage1_conv1").kernel.shape == (5, 5, 1, 4)
    model(np.zeros((1, 28, 28, 1), np.float32))
    dense, logits = model.get_layer("dense"), model.get_layer("logits")
    assert dense.bias_regularizer is not None and logits.bias_regularizer is not None
    assert len(model.losses) == 2 + 2 + 2, (
        "L2 on 2 conv, the dense and classifier kernels, and 2 biases"
    )


@pytest.mark.slow
def test_mini_mnist_trains_end_to_end(mnist_mini, tmp_path):
    images, labels = mi.load_split(mnist_mini, "train")
    assert images.shape == (4000, 28, 28, 1) and labels[:5].tolist() == [4, 2, 0, 9, 6]
    code, run_dir = run_train(
        tmp_path / "data",
        tmp_path / "runs",
        "--dataset",
        "mnist",
        "--data-url",
        str(mnist_mini),
        "--preset",
        "cnn",
        "--epochs",
        "2",
        "--num-train-examples",
        "1000",
    )
    assert code == 0
    results = json.loads((run_dir / "metrics.json").read_text())
    assert results["test_accuracy"] > 0.8, "a CNN learns digits in one short epoch"
    assert set(results["per_class_accuracy"]) == {str(d) for d in range(10)}
    header = (run_dir / "confusion_matrix.csv").read_text().splitlines()[0]
    assert header == "true\\predicted," + ",".join(str(d) for d in range(10))


def test_offline_the_message_says_where_the_four_files_go(tiny_dataset, tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DataError) as info:
        mi.maybe_download(tmp_path, "tiny", f"http://127.0.0.1:{port}/", **FAST)
    assert "download the four files elsewhere and pass --data-url with their folder" in str(
        info.value
    )
    assert f"place them in {tmp_path / 'tiny'}/" in str(info.value) and "\n" not in str(info.value)
