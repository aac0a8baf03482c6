"""Tests for cifar10_input: parsing, download, extraction, and the tf.data pipeline."""

import hashlib
import io
import socket
import tarfile
from pathlib import Path

import numpy as np
import pytest

import cifar10_input as ci
from helpers import known_images
from plumbing import download
from plumbing.errors import DataError


# ----------------------------------------------------------------------------- parsing
def test_load_split_reads_every_label_and_pixel(synthetic_dir):
    images, labels = ci.load_split(synthetic_dir, "train")
    assert images.dtype == np.uint8 and images.shape == (100, 32, 32, 3)
    np.testing.assert_array_equal(
        labels, np.arange(100) % 10, err_msg="train labels, in file order"
    )
    expected_hwc = known_images(100).transpose(0, 2, 3, 1)  # CHW on disk -> HWC in memory
    np.testing.assert_array_equal(images, expected_hwc, err_msg="pixels: CHW-to-HWC order is wrong")
    # One pixel by hand: image 7, row 2, column 5, green = (7*37 + 1*101 + 2*7 + 5*3) % 256.
    assert images[7, 2, 5, 1] == (7 * 37 + 101 + 14 + 15) % 256

    test_images, test_labels = ci.load_split(synthetic_dir, "test")
    np.testing.assert_array_equal(test_labels, (np.arange(10) * 3) % 10)
    np.testing.assert_array_equal(
        test_images, known_images(10, first_id=1000).transpose(0, 2, 3, 1)
    )


def test_tf_data_path_gives_the_same_pixels_and_labels(synthetic_dir):
    images, labels = ci.load_split(synthetic_dir, "test")
    train_images, _ = ci.load_split(synthetic_dir, "train")
    mean, std = ci.channel_stats(train_images)
    batches = list(ci.make_dataset(synthetic_dir, "test", batch_size=4))
    assert [len(y) for _, y in batches] == [4, 4, 2]
    x = np.concatenate([b[0].numpy() for b in batches])
    y = np.concatenate([b[1].numpy() for b in batches])
    assert x.dtype == np.float32 and y.dtype == np.int32
    np.testing.assert_array_equal(y, labels)
    restored = (x * std + mean) * 255.0
    np.testing.assert_allclose(
        restored, images, atol=1e-3, err_msg="normalisation is not (x/255-mean)/std"
    )


def test_truncated_or_missing_bin_names_the_file(synthetic_dir):
    bad = synthetic_dir / "data_batch_3.bin"
    bad.write_bytes(bad.read_bytes()[:-100])
    with pytest.raises(
        DataError, match=r"data_batch_3\.bin has .* not a whole number of 3073-byte"
    ):
        ci.load_split(synthetic_dir, "train")
    bad.unlink()
    with pytest.raises(DataError, match=r"data_batch_3\.bin is missing"):
        ci.load_split(synthetic_dir, "train")


def test_bad_split_name():
    with pytest.raises(ValueError, match="'train' or 'test'"):
        ci.load_split(".", "validation")


FAST = {"retries": 3, "backoff_s": 0.01, "timeout_s": 5.0}


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


# ----------------------------------------------------------------------------- download
def test_download_with_progress_then_no_network(sample_archive, serve, tmp_path, capsys):
    payload = sample_archive.read_bytes()
    url, server = serve(payload)
    folder = ci.maybe_download_and_extract(tmp_path, url, md5=_md5(payload), **FAST)
    assert (tmp_path / "cifar-10-mini-binary.tar.gz").read_bytes() == payload
    assert not list(tmp_path.glob("*.part")), "the temporary download file was left behind"
    assert ci.load_split(folder, "test")[1].shape == (100,)
    err = capsys.readouterr().err
    assert "MB" in err and "100%" in err and "MB/s" in err, f"no progress line in: {err!r}"
    # A second run with the data in place makes no request at all.
    assert ci.maybe_download_and_extract(tmp_path, url, **FAST) == folder
    assert len(server.requests) == 1


@pytest.mark.parametrize("ranges", [True, False], ids=["resumes", "restarts"])
def test_dropped_connection_is_retried(sample_archive, serve, tmp_path, ranges):
    payload = sample_archive.read_bytes()
    url, server = serve(payload, ranges=ranges, drops=1)
    dest = download.fetch(
        url, tmp_path / "a.tar.gz", md5=_md5(payload), show_progress=False, **FAST
    )
    assert dest.read_bytes() == payload
    assert server.requests[0] is None and len(server.requests) == 2
    if ranges:  # the second request asks only for the missing half
        assert server.requests[1] == f"bytes={len(payload) // 2}-"


def test_wrong_checksum_deletes_the_file(sample_archive, serve, tmp_path):
    url, _ = serve(sample_archive.read_bytes())
    with pytest.raises(DataError, match="checksum mismatch .* the damaged file was deleted"):
        ci.maybe_download_and_extract(tmp_path, url, md5="0" * 32, **FAST)
    assert [p.name for p in tmp_path.iterdir()] == [".lock"], (
        "a file was left after a checksum mismatch"
    )


def test_connection_refused_gives_the_offline_message(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/cifar-10-binary.tar.gz"
    with pytest.raises(DataError) as info:
        ci.maybe_download_and_extract(tmp_path, url, **FAST)
    message = str(info.value)
    assert url in message and "\n" not in message
    assert "--data-url /path/to/cifar-10-binary.tar.gz" in message
    assert f"place it in {tmp_path}" in message


def test_http_404_fails_at_once(serve, tmp_path):
    url, server = serve(b"", status=404)
    with pytest.raises(DataError, match=f"could not download {url}: HTTP 404"):
        download.fetch(url, tmp_path / "x.tar.gz", md5=None, **FAST)
    assert len(server.requests) == 1, "a 404 must not be retried"


def test_server_error_is_retried_then_reported(serve, tmp_path):
    url, server = serve(b"", status=503)
    with pytest.raises(DataError, match=r"after 4 tries \(HTTP 503\)"):
        download.fetch(url, tmp_path / "x.tar.gz", md5=None, **FAST)
    assert len(server.requests) == 4


# ----------------------------------------------------------------------------- extraction
def _tar_with(tmp_path: Path, name: str, *, link: bool = False) -> Path:
    path = tmp_path / "evil.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(name)
        if link:
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
        else:
            info.size = 3
            tar.addfile(info, io.BytesIO(b"abc"))
    return path


@pytest.mark.parametrize(
    "name,link,why",
    [
        ("../escape.bin", False, "unsafe member path"),
        ("cifar-10-batches-bin/../../escape.bin", False, "unsafe member path"),
        ("/tmp/absolute.bin", False, "unsafe member path"),
        ("cifar-10-batches-bin/data_batch_1.bin", True, "link member"),
    ],
)
def test_unsafe_archives_are_refused(tmp_path, name, link, why):
    archive = _tar_with(tmp_path, name, link=link)
    data_dir = tmp_path / "data"
    with pytest.raises(DataError, match=why):
        ci.maybe_download_and_extract(data_dir, str(archive))
    assert not (tmp_path / "escape.bin").exists() and not Path("/tmp/absolute.bin").exists()
    assert [p.name for p in data_dir.iterdir()] == [".lock"], (
        "something was extracted from an unsafe archive"
    )


def test_archive_without_batches_is_refused(tmp_path):
    archive = _tar_with(tmp_path, "something/else.txt")
    with pytest.raises(
        DataError, match="lacks cifar-10-batches-bin/data_batch_1.bin: it is not the"
    ):
        ci.maybe_download_and_extract(tmp_path / "data", str(archive))


def test_damaged_extracted_folder_is_reported(synthetic_dir):
    (synthetic_dir / "test_batch.bin").write_bytes(b"x" * 10)
    with pytest.raises(DataError, match=r"test_batch\.bin has 10 bytes.*delete .* and run again"):
        ci.maybe_download_and_extract(synthetic_dir.parent, "http://127.0.0.1:9/never-used")


def test_official_name_requires_official_checksum(sample_archive, tmp_path):
    renamed = tmp_path / ci.ARCHIVE_NAME  # the sample is not the official archive
    renamed.write_bytes(sample_archive.read_bytes())
    with pytest.raises(DataError, match="not the official archive"):
        ci.maybe_download_and_extract(tmp_path / "data", str(renamed))


# -------------------------------------------------------------------------- splits and the pipeline
def test_validation_split_is_disjoint_and_seeded():
    train, val = ci.split_indices(5085, val_size=500, num_train_examples=None, seed=0)
    assert len(val) == 500 and len(train) == 4585 and not set(train) & set(val)
    again, val_again = ci.split_indices(5085, val_size=500, num_train_examples=None, seed=0)
    np.testing.assert_array_equal(val, val_again)
    _, val_other = ci.split_indices(5085, val_size=500, num_train_examples=None, seed=1)
    assert len(set(val) & set(val_other)) < 200, "another seed should draw another validation set"
    subset, val_sub = ci.split_indices(5085, val_size=500, num_train_examples=1000, seed=0)
    np.testing.assert_array_equal(val_sub, val)  # the subset size does not move the validation set
    assert len(subset) == 1000 and set(subset) <= set(train)


def test_validation_dataset_comes_from_the_training_files(synthetic_dir):
    train_images, train_labels = ci.load_split(synthetic_dir, "train")
    train_idx, val_idx = ci.split_indices(100, val_size=30, num_train_examples=None, seed=3)
    mean, std = ci.channel_stats(train_images[train_idx])
    x, y = next(
        iter(
            ci.make_dataset(
                synthetic_dir,
                "validation",
                val_size=30,
                seed=3,
                batch_size=100,
                flip=True,
                crop=4,
                cutout=8,
            )
        )
    )  # augmentation must be ignored
    np.testing.assert_array_equal(y.numpy(), train_labels[val_idx])
    np.testing.assert_allclose((x.numpy() * std + mean) * 255, train_images[val_idx], atol=1e-3)


def test_training_data_is_normalised_and_shuffled_by_seed(sample_dir):
    def first_labels(**kw):
        return next(iter(ci.make_dataset(sample_dir, "train", batch_size=64, val_size=100, **kw)))[
            1
        ].numpy()

    x = np.concatenate(
        [b[0].numpy() for b in ci.make_dataset(sample_dir, "train", batch_size=100, val_size=100)]
    )
    pixels = x.reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(pixels.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(pixels.std(axis=0), 1, atol=1e-4)
    np.testing.assert_array_equal(first_labels(seed=0), first_labels(seed=0))
    assert (first_labels(seed=0) != first_labels(seed=0, epoch=1)).any()
