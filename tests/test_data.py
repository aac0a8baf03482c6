"""The data is what the command names, or the command says why not, in one line: a data folder
remembers what it was made from, archives are read by their official paths, a dataset's identity
and labels are checked, and the messages name the flag or variable to change. Not graded."""

import errno
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

import cifar10_input as ci
import mnist_input as mi
from helpers import known_images
from plumbing import download
from plumbing.errors import DataError, UsageError, report
from test_mnist_input import idx_images, idx_labels, known_digits, write_idx_folder

RECORDS = {name: 20 for name in ci.TRAIN_FILES} | {"test_batch.bin": 10}


def records(count: int, first_id: int, labels=None) -> bytes:
    """CIFAR-10 records of known pixels (from image `first_id` on) and labels (default: id % 10)."""
    labels = np.arange(first_id, first_id + count) % 10 if labels is None else np.asarray(labels)
    images = known_images(count, first_id=first_id).reshape(count, -1)
    return np.concatenate([labels.astype(np.uint8)[:, None], images], axis=1).tobytes()


def cifar_archive(path: Path, first_id: int = 0, members: dict[str, bytes] | None = None) -> Path:
    """A .tar.gz in the official layout (cifar-10-batches-bin/...), images from `first_id` on;
    `members` (name: bytes) are added after the official ones, or replace them (None: left out)."""
    contents, start = {}, first_id
    for name, count in RECORDS.items():
        contents[f"{ci.BATCHES_DIRNAME}/{name}"] = records(count, start)
        start += count
    contents.update(members or {})
    with tarfile.open(path, "w:gz") as tar:
        for name, data in contents.items():
            if data is not None:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def one_line(capsys, code: int, expected_code: int, text: str) -> str:
    err = capsys.readouterr().err
    assert code == expected_code and "Traceback" not in err, err
    line = err.strip().splitlines()[-1]
    assert text in line, line
    return line


# --------------------------------------------------------------------- 1: a folder knows its source
def test_a_data_folder_refuses_an_archive_other_than_its_own(tmp_path, capsys):
    x, y = cifar_archive(tmp_path / "x.tar.gz"), cifar_archive(tmp_path / "y.tar.gz", first_id=500)
    folder = ci.maybe_download_and_extract(tmp_path / "data", str(x))
    before = (folder / "data_batch_1.bin").read_bytes()
    code = report(ci.main, ["--data-dir", str(tmp_path / "data"), "--data-url", str(y)])
    line = one_line(
        capsys,
        code,
        2,
        f"usage error: {folder} holds the data of {x}, not of {y} (given by "
        f"--data-url); choose another --data-dir for it, or delete {folder}",
    )
    assert (folder / "data_batch_1.bin").read_bytes() == before, line
    assert ci.maybe_download_and_extract(tmp_path / "data", f"file://{x}") == folder, (
        "the same, as a URL"
    )
    assert ci.maybe_download_and_extract(tmp_path / "data") == folder, (
        "no source named: the folder's own"
    )
    copy = tmp_path / "elsewhere" / "copy.tar.gz"
    copy.parent.mkdir()
    shutil.copyfile(x, copy)
    assert ci.maybe_download_and_extract(tmp_path / "data", str(copy)) == folder, "the same archive"
    fresh = ci.maybe_download_and_extract(tmp_path / "other", str(y))  # another folder for y
    expected = known_images(10, 600).transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(ci.load_split(fresh, "test")[0], expected)


def test_a_changed_archive_or_the_variable_naming_another_is_refused(tmp_path, monkeypatch):
    x = cifar_archive(tmp_path / "x.tar.gz")
    folder = ci.maybe_download_and_extract(tmp_path / "data", str(x))
    monkeypatch.setenv("CIFAR10_URL", str(cifar_archive(tmp_path / "y.tar.gz", first_id=500)))
    with pytest.raises(UsageError, match=r"not of .*y\.tar\.gz \(given by \$CIFAR10_URL\)"):
        ci.maybe_download_and_extract(tmp_path / "data")
    monkeypatch.delenv("CIFAR10_URL")
    cifar_archive(x, first_id=500)  # other data under the same name
    with pytest.raises(
        UsageError, match=f"{x} has changed since {folder} was extracted from it; delete"
    ):
        ci.maybe_download_and_extract(tmp_path / "data", str(x))


def test_a_folder_from_an_older_version_stands_for_the_official_archive_only(tmp_path):
    folder = ci.maybe_download_and_extract(
        tmp_path / "data", str(cifar_archive(tmp_path / "x.tar.gz"))
    )
    (folder / download.SOURCE_FILE).unlink()  # as an older version left it
    assert ci.maybe_download_and_extract(tmp_path / "data") == folder
    assert ci.maybe_download_and_extract(tmp_path / "data", ci.DATA_URL) == folder, (
        "no network needed"
    )
    with pytest.raises(UsageError, match="does not record which archive it was extracted from"):
        ci.maybe_download_and_extract(tmp_path / "data", str(tmp_path / "x.tar.gz"))


def test_the_record_names_the_archive_and_its_checksum(tmp_path):
    x = cifar_archive(tmp_path / "x.tar.gz")
    record = json.loads(
        (ci.maybe_download_and_extract(tmp_path, str(x)) / "source.json").read_text()
    )
    assert record["source"] == str(x) and record["md5"] == hashlib.md5(x.read_bytes()).hexdigest()


def test_an_mnist_folder_refuses_files_other_than_its_own(tmp_path):
    write_idx_folder(tmp_path / "a")
    folder = mi.maybe_download(tmp_path / "data", "mnist", str(tmp_path / "a"))
    write_idx_folder(
        tmp_path / "recompressed", level=1
    )  # the same content, other bytes: the same data
    assert mi.maybe_download(tmp_path / "data", "mnist", str(tmp_path / "recompressed")) == folder
    write_idx_folder(tmp_path / "b", train_count=40)
    with pytest.raises(
        UsageError,
        match=f"{folder} holds the data of {tmp_path / 'a'}, not of "
        f"{tmp_path / 'b'} .given by --data-url.",
    ):
        mi.maybe_download(tmp_path / "data", "mnist", str(tmp_path / "b"))
    assert len(mi.load_split(folder, "train")[1]) == 30


def test_an_mnist_folder_begun_from_another_source_is_started_afresh(tmp_path):
    write_idx_folder(tmp_path / "a")
    write_idx_folder(tmp_path / "b", train_count=40)
    target = tmp_path / "data" / "mnist"
    target.mkdir(parents=True)
    shutil.copyfile(
        tmp_path / "a" / mi.FILES["train"][0], target / mi.FILES["train"][0]
    )  # then killed
    (target / "source.json").write_text(json.dumps({"source": str(tmp_path / "a")}))
    folder = mi.maybe_download(tmp_path / "data", "mnist", str(tmp_path / "b"))
    images, labels = mi.load_split(folder, "train")
    assert len(images) == len(labels) == 40, "all four files from b, none from a"


# ------------------------------------------------------------------------- 4: official member paths
def test_a_stray_member_with_a_known_name_does_not_replace_the_real_file(tmp_path):
    archive = cifar_archive(
        tmp_path / "stray.tar.gz", members={"junk/data_batch_1.bin": records(7, 900)}
    )
    folder = ci.maybe_download_and_extract(tmp_path / "data", str(archive))
    assert (folder / "data_batch_1.bin").read_bytes() == records(20, 0)
    assert len(ci.load_split(folder, "train")[1]) == 100


def test_an_archive_repacked_in_one_other_folder_is_read_from_it(tmp_path):
    moved = {f"{ci.BATCHES_DIRNAME}/{name}": None for name in RECORDS}
    moved |= {f"./my-copy/{name}": records(count, 0) for name, count in RECORDS.items()}
    archive = cifar_archive(tmp_path / "a.tgz", 0, moved)
    folder = ci.maybe_download_and_extract(tmp_path / "data", str(archive))
    assert (folder / "test_batch.bin").read_bytes() == records(10, 0)


@pytest.mark.parametrize(
    "members,message",
    [
        (
            {
                f"./{ci.BATCHES_DIRNAME}/data_batch_2.bin": records(20, 900)
            },  # the same path, spelt otherwise
            f"holds {ci.BATCHES_DIRNAME}/data_batch_2.bin more than once: it is ambiguous; "
            f"not extracting it",
        ),
        (
            {f"{ci.BATCHES_DIRNAME}/{name}": None for name in RECORDS}
            | {
                f"{where}/{name}": records(count, 0)
                for where in ("a", "b")
                for name, count in RECORDS.items()
            },
            f"holds the data files in several folders (a, b), none of them {ci.BATCHES_DIRNAME}/: "
            "it is ambiguous",
        ),
    ],
    ids=["a file twice", "two folders"],
)
def test_an_ambiguous_archive_is_refused(tmp_path, members, message):
    archive = cifar_archive(tmp_path / "twice.tar.gz", members=members)
    with pytest.raises(DataError, match=re.escape(message)) as info:
        ci.maybe_download_and_extract(tmp_path / "data", str(archive))
    assert str(info.value).endswith("check the file, or download a fresh copy")
    assert not (tmp_path / "data" / ci.BATCHES_DIRNAME).exists()


# ------------------------------------------------------------------------ 5: the dataset's identity
def subset(folder: Path, images: np.ndarray) -> None:
    """A subset of a dataset (other counts than the official ones) with these training images."""
    write_idx_folder(folder)
    labels = np.arange(len(images)) % 10
    (folder / mi.FILES["train"][0]).write_bytes(gzip.compress(idx_images(images)))
    (folder / mi.FILES["train"][1]).write_bytes(gzip.compress(idx_labels(labels)))


def digits_like(mean_pixel: int, count: int = 200) -> np.ndarray:
    """Images of mean pixel about `mean_pixel`: a bright patch on black, like digits or clothes."""
    images = np.zeros((count, 28, 28), np.uint8)
    rows = round(28 * mean_pixel / 255)
    images[:, :rows, :] = 255
    return images


def test_fashion_mnist_refuses_mnist_digits(tmp_path, capsys):
    subset(tmp_path / "digits", digits_like(33))
    code = report(
        ci.main,
        [
            "--dataset",
            "fashion-mnist",
            "--data-dir",
            str(tmp_path / "data"),
            "--data-url",
            str(tmp_path / "digits"),
        ],
    )
    one_line(
        capsys,
        code,
        1,
        f"{tmp_path / 'digits' / mi.FILES['train'][0]} holds mnist images, not "
        f"fashion-mnist ones (mean pixel 36: mnist's is 33, fashion-mnist's 73): "
        f"check --dataset; check the files in {tmp_path / 'digits'}",
    )
    assert not (tmp_path / "data" / "fashion-mnist" / mi.FILES["train"][0]).exists()
    subset(tmp_path / "clothes", digits_like(73))
    assert mi.maybe_download(tmp_path / "data", "fashion-mnist", str(tmp_path / "clothes")).is_dir()
    with pytest.raises(DataError, match="holds fashion-mnist images, not mnist ones"):
        mi.maybe_download(tmp_path / "data", "mnist", str(tmp_path / "clothes"))


def test_fashion_mnist_refuses_the_real_mnist_mini_set(mnist_mini, tmp_path):
    with pytest.raises(
        DataError, match=r"holds mnist images, not fashion-mnist ones \(mean pixel 33"
    ):
        mi.maybe_download(tmp_path, "fashion-mnist", str(mnist_mini))


def test_a_full_size_file_of_the_other_dataset_is_named(tmp_path, monkeypatch):
    contents = write_idx_folder(tmp_path / "mnist-files")
    name = mi.FILES["test"][1]
    content_md5 = hashlib.md5(contents[name]).hexdigest()
    monkeypatch.setitem(
        mi.DATASETS["mnist"]["md5"], name, ("0" * 32, content_md5)
    )  # as if official MNIST
    monkeypatch.setitem(mi.DATASETS["fashion-mnist"], "counts", {"train": 30, "test": 10})
    with pytest.raises(
        DataError,
        match=f"has the size of the official fashion-mnist {name} but not its "
        f"content .MD5 {content_md5}, expected .*.: it is mnist's",
    ):
        mi.check_file(tmp_path / "mnist-files" / name, name, "fashion-mnist")


def test_a_recompressed_fashion_mnist_copy_is_still_accepted_by_content(tmp_path, monkeypatch):
    contents = write_idx_folder(tmp_path / "debian", level=1)
    md5 = {name: ("0" * 32, hashlib.md5(raw).hexdigest()) for name, raw in contents.items()}
    monkeypatch.setitem(
        mi.DATASETS["fashion-mnist"], "md5", md5
    )  # the official content, other .gz bytes
    monkeypatch.setitem(mi.DATASETS["fashion-mnist"], "counts", {"train": 30, "test": 10})
    folder = mi.maybe_download(tmp_path / "data", "fashion-mnist", str(tmp_path / "debian"))
    np.testing.assert_array_equal(mi.load_split(folder, "train")[0][..., 0], known_digits(30))


# ---------------------------------------------------------------------- 9: labels that are no class
def test_an_out_of_range_cifar_label_names_the_file_when_read(synthetic_dir):
    labels = np.arange(20) % 10
    labels[16] = 200
    (synthetic_dir / "data_batch_3.bin").write_bytes(records(20, 40, labels))
    with pytest.raises(DataError) as info:
        ci.load_split(synthetic_dir, "train")
    assert str(info.value) == (
        f"{synthetic_dir / 'data_batch_3.bin'} has label 200 in record 17, but "
        f"CIFAR-10's labels are 0 to 9 (the file is damaged or not CIFAR-10); delete "
        f"its folder and run again: the data is extracted anew"
    )


def test_an_out_of_range_test_label_stops_training_before_it_starts(
    synthetic_dir, tmp_path, capsys
):
    (synthetic_dir / "test_batch.bin").write_bytes(records(10, 1000, [0] * 9 + [10]))
    import train

    code = train.main(
        [
            "--data-dir",
            str(synthetic_dir.parent),
            "--run-dir",
            str(tmp_path / "runs"),
            "--preset",
            "linear",
            "--batch-size",
            "10",
            "--epochs",
            "1",
        ]
    )
    one_line(
        capsys,
        code,
        1,
        "test_batch.bin has label 10 in record 10, but CIFAR-10's labels are 0 to 9",
    )
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir()), (
        "no run was started"
    )


def test_an_archive_with_an_out_of_range_label_is_not_extracted(tmp_path):
    archive = cifar_archive(
        tmp_path / "bad.tar.gz",
        members={f"{ci.BATCHES_DIRNAME}/data_batch_5.bin": records(20, 80, [3] * 19 + [255])},
    )
    with pytest.raises(
        DataError,
        match=r"bad\.tar\.gz is damaged: data_batch_5\.bin has label 255 in record "
        r"20, .*; check the file, or download a fresh copy$",
    ):
        ci.maybe_download_and_extract(tmp_path / "data", str(archive))
    assert not (tmp_path / "data" / ci.BATCHES_DIRNAME).exists()


def test_an_out_of_range_mnist_label_is_refused_when_copied_and_when_read(tmp_path):
    write_idx_folder(tmp_path / "bad")
    name = mi.FILES["test"][1]
    labels = np.array([1, 2, 12, 3, 4, 5, 6, 7, 8, 9])
    (tmp_path / "bad" / name).write_bytes(gzip.compress(idx_labels(labels)))
    with pytest.raises(
        DataError,
        match=f"{name} has label 12 at position 3, but the labels are 0 to 9 .*; "
        f"check the files in {tmp_path / 'bad'}, or download fresh copies",
    ):
        mi.maybe_download(tmp_path / "data", "mnist", str(tmp_path / "bad"))
    with pytest.raises(
        DataError,
        match=f"{name} has label 12 at position 3, .*; delete {tmp_path / 'bad'} and run again",
    ):
        mi.load_split(tmp_path / "bad", "test")


# ---------------------------------------------------------------------- 21: variables named as such
def test_environment_variables_are_named_in_their_errors(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CIFAR10_URL", "ftp://example.org/cifar.tar.gz")
    code = report(ci.main, ["--data-dir", str(tmp_path)])
    line = one_line(
        capsys,
        code,
        2,
        "usage error: $CIFAR10_URL 'ftp://example.org/cifar.tar.gz': ftp:// is "
        "not supported; use http(s)://, file:// or a path",
    )
    assert "--data-url" not in line
    monkeypatch.delenv("CIFAR10_URL")
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("CIFAR10_DATA_DIR", str(tmp_path / "a-file"))
    for dataset in ("cifar10", "mnist"):
        code = report(ci.main, ["--dataset", dataset])
        one_line(
            capsys,
            code,
            2,
            f"usage error: $CIFAR10_DATA_DIR {tmp_path / 'a-file'} is a file, not a "
            f"folder; choose a folder",
        )
    code = report(ci.main, ["--data-dir", str(tmp_path / "a-file")])  # a flag wins, and is named
    one_line(capsys, code, 2, f"usage error: --data-dir {tmp_path / 'a-file'} is a file")


# ---------------------------------------------------------------------- 22: a full disk, extracting
@pytest.mark.parametrize(
    "error,advice",
    [
        (errno.ENOSPC, "free some space (the data takes 0.3 MB) or choose another --data-dir"),
        (errno.EACCES, "choose another --data-dir you can write to"),
    ],
    ids=["full", "no permission"],
)
def test_a_full_disk_while_extracting_names_the_path_and_what_works(
    error, advice, tmp_path, monkeypatch, capsys
):
    archive = cifar_archive(tmp_path / "x.tar.gz")

    def failing(*args, **kwargs):
        raise OSError(error, os.strerror(error))

    monkeypatch.setattr(tarfile, "copyfileobj", failing)  # what tarfile writes each member with
    monkeypatch.setattr(shutil, "copyfileobj", failing)  # (before Python 3.11.4)
    code = report(ci.main, ["--data-dir", str(tmp_path / "data"), "--data-url", str(archive)])
    one_line(
        capsys,
        code,
        1,
        f"error: could not extract {archive} into {tmp_path / 'data'} "
        f"({os.strerror(error)}): {advice}, then run the same command again",
    )
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [".lock"], (
        "nothing half-extracted"
    )


# ----------------------------------------------------------------------------- 25: the right words
def test_archive_read_reasons_are_whole(tmp_path):
    archive = tmp_path / "my-copy.tar.gz"
    archive.write_bytes(gzip.compress(b"not a tar file"))
    with pytest.raises(DataError) as info:
        ci.maybe_download_and_extract(tmp_path / "data", str(archive))
    assert str(info.value) == (
        f"{archive} is not a readable tar archive (neither a plain tar file nor a "
        f"gzip-, bzip2- or xz-compressed one); check the file, or download a fresh "
        f"copy"
    )


def test_paths_of_the_wrong_kind_are_called_what_they_are(tmp_path):
    (tmp_path / "folder").mkdir()
    with pytest.raises(
        DataError,
        match=f"^{tmp_path / 'folder'} is a folder, not an archive: --data-url "
        f"must name the archive file itself",
    ):
        ci.maybe_download_and_extract(tmp_path / "data", str(tmp_path / "folder"))
    with pytest.raises(
        DataError, match=f"^no such file {tmp_path / 'nothing.tar.gz'}: check the path"
    ):
        ci.maybe_download_and_extract(tmp_path / "data", str(tmp_path / "nothing.tar.gz"))
    (tmp_path / "file.gz").write_bytes(b"")
    with pytest.raises(
        DataError,
        match=f"^{tmp_path / 'file.gz'} is a file, not a folder: --data-url must name the folder",
    ):
        mi.maybe_download(tmp_path / "data", "mnist", str(tmp_path / "file.gz"))
    with pytest.raises(
        DataError, match=f"^{tmp_path / 'nowhere'} does not exist: --data-url must name"
    ):
        mi.maybe_download(tmp_path / "data", "mnist", str(tmp_path / "nowhere"))
