"""MNIST and Fashion-MNIST input: the IDX file format, read into the same arrays as CIFAR-10.

Both datasets come as four gzip-compressed IDX files (training and test images and labels). An IDX
file is a big-endian header, then raw bytes:

    images: magic 2051, number of images, rows, columns, then rows * columns uint8 pixels per image
    labels: magic 2049, number of labels, then one uint8 label per image

`load_split` returns images as uint8 [N, 28, 28, 1] (one grey channel) and labels as int32 [N], the
same layout as cifar10_input.load_split, so the one pipeline (cifar10_input.make_dataset) and every
model serve all three datasets.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from plumbing import download
from plumbing.errors import DataError

NUM_CLASSES = 10  # both datasets: labels 0 to 9
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049

# Each dataset: its classes, where to get it, its sizes, its mean pixel (0-255, of the training
# images: how a subset shows which dataset it comes from), and for each file the MD5 of the official
# .gz and that of its content (a re-compressed copy, such as Debian's dataset-fashion-mnist, is
# accepted by it).
DATASETS = {
    "mnist": dict(
        class_names=tuple(str(digit) for digit in range(10)),
        # a mirror: the original host refuses scripts
        url="https://ossci-datasets.s3.amazonaws.com/mnist/",
        counts={"train": 60_000, "test": 10_000},
        mean_pixel=33.3,
        md5={
            "train-images-idx3-ubyte.gz": (
                "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                "6bbc9ace898e44ae57da46a324031adb",
            ),
            "train-labels-idx1-ubyte.gz": (
                "d53e105ee54ea40749a09fcbcd1e9432",
                "a25bea736e30d166cdddb491f175f624",
            ),
            "t10k-images-idx3-ubyte.gz": (
                "9fb629c4189551a2d022fa330f9573f3",
                "2646ac647ad5339dbf082846283269ea",
            ),
            "t10k-labels-idx1-ubyte.gz": (
                "ec29112dd5afa0611ce80d1b7f02629c",
                "27ae3e4e09519cfbb04c329615203637",
            ),
        },
    ),
    "fashion-mnist": dict(
        class_names=(
            "T-shirt/top",
            "trouser",
            "pullover",
            "dress",
            "coat",
            "sandal",
            "shirt",
            "sneaker",
            "bag",
            "ankle boot",
        ),
        url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        counts={"train": 60_000, "test": 10_000},
        mean_pixel=72.9,
        md5={
            "train-images-idx3-ubyte.gz": (
                "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                "f4a8712d7a061bf5bd6d2ca38dc4d50a",
            ),
            "train-labels-idx1-ubyte.gz": (
                "25c81989df183df01b3e8a0aad5dffbe",
                "9018921c3c673c538a1fc5bad174d6f9",
            ),
            "t10k-images-idx3-ubyte.gz": (
                "bef4ecab320f06d8554ea6380940ec79",
                "8181f5470baa50b63fa0f6fddb340f0a",
            ),
            "t10k-labels-idx1-ubyte.gz": (
                "bb300cfdad3c16e7a12a480ee83cd310",
                "15d484375f8d13e6eb1aabb0c3f46965",
            ),
        },
    ),
}


# ----------------------------------------------------------------------------- the format
def read_idx(path: Path) -> np.ndarray:
    """Reads one gzip-compressed IDX file: uint8 images [N, rows, columns, 1] or int32 labels [N].

    Raises:
        DataError: naming the file, when it is missing, not gzip, truncated, or not IDX images or
            labels.
    """
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise DataError(f"{path} is missing") from None
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path} is not a complete gzip file ({err})") from None
    magic = int.from_bytes(data[:4], "big")
    if magic not in (IMAGES_MAGIC, LABELS_MAGIC) or len(data) < 8:
        raise DataError(
            f"{path} is not an IDX file of images or labels (magic number {magic}, expected "
            f"{IMAGES_MAGIC} or {LABELS_MAGIC})"
        )
    header = 16 if magic == IMAGES_MAGIC else 8
    dims = [int.from_bytes(data[i : i + 4], "big") for i in range(4, header, 4)]
    expected = header + int(np.prod(dims))
    if len(data) != expected:
        raise DataError(
            f"{path} has {len(data):,} bytes, but its header announces {dims} and so "
            f"{expected:,}: the file is truncated or damaged"
        )
    values = np.frombuffer(data, np.uint8, offset=header)
    return (
        values.reshape(dims[0], dims[1], dims[2], 1)
        if magic == IMAGES_MAGIC
        else values.astype(np.int32)
    )


def load_split(folder: str | os.PathLike, split: str) -> tuple[np.ndarray, np.ndarray]:
    """A split as uint8 images [N, 28, 28, 1] and int32 labels [N], from the four files' folder."""
    if split not in FILES:
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    images_file, labels_file = FILES[split]
    images, labels = read_idx(Path(folder) / images_file), read_idx(Path(folder) / labels_file)
    if images.ndim != 4 or labels.ndim != 1:
        raise DataError(f"{folder}: {images_file} must hold images and {labels_file} labels")
    if len(images) != len(labels):
        raise DataError(
            f"{folder}: {len(images):,} images but {len(labels):,} labels in the {split} split"
        )
    if problem := label_problem(Path(folder) / labels_file, labels):
        raise DataError(
            f"{problem}; delete {folder} and run again: the files are copied or downloaded anew"
        )
    return images, labels


def label_problem(path: Path, labels: np.ndarray) -> str | None:
    """What is wrong with a labels file (a value that is no class id); None if none is."""
    bad = np.flatnonzero(labels >= NUM_CLASSES)
    if bad.size == 0:
        return None
    return (
        f"{path} has label {labels[bad[0]]} at position {bad[0] + 1:,}, but the labels are 0 to "
        f"{NUM_CLASSES - 1} (the file is damaged or not MNIST or Fashion-MNIST)"
    )


def is_idx_folder(folder: str | os.PathLike) -> bool:
    return (Path(folder) / FILES["train"][0]).is_file()


# ------------------------------------------------------------------------ making the data available
def maybe_download(
    data_dir: str | os.PathLike, dataset: str, url: str | None = None, **download_options
) -> Path:
    """Makes MNIST or Fashion-MNIST available in data_dir/<dataset>/ and returns that folder.

    Args:
        data_dir: the data folder.
        dataset: "mnist" or "fashion-mnist".
        url: a folder or base URL holding the four files (http(s)://, file:// or a plain path);
            None: the official source (and then whatever the folder holds is used). Files from
            elsewhere are copied in; the folder remembers its source, and a call naming other files
            is refused.
        **download_options: passed to plumbing.download.fetch.

    Each file is accepted when its MD5, or that of its content, is the official one; a file with
    other counts than the official ones (a subset, such as the course's mini set) is checked for
    structure, labels and (images) its mean pixel, which tells MNIST from Fashion-MNIST.
    """
    info = DATASETS[dataset]
    names = FILES["train"] + FILES["test"]
    official = (info["url"], {name: content_md5 for name, (_, content_md5) in info["md5"].items()})
    return download.prepare_files(
        Path(data_dir) / dataset,
        url or info["url"],
        names=names,
        verify=lambda path, name: check_file(path, name, dataset),
        named=url is not None,
        official=official,
        **download_options,
    )


def check_file(path: Path, name: str, dataset: str) -> None:
    """Raises DataError unless `path` (for the file `name` of `dataset`) is official, by its MD5 or
    its content's, or a whole IDX file of another size (a subset, such as the course's mini set)
    whose labels are class ids and whose images look like the dataset's."""
    info = DATASETS[dataset]
    md5, content_md5 = info["md5"][name]
    if download.file_md5(path) == md5:
        return
    values = read_idx(path)  # the structure; and a full-size file must have the official content
    if values.ndim == 1 and (problem := label_problem(path, values)):
        raise DataError(problem)
    if len(values) == info["counts"]["train" if name.startswith("train") else "test"]:
        if (actual := download.file_md5(path, gunzip=True)) != content_md5:
            other = [key for key, d in DATASETS.items() if d["md5"].get(name, (0, 0))[1] == actual]
            what = f"it is {other[0]}'s" if other else "it is damaged or modified"
            raise DataError(
                f"{path} has the size of the official {dataset} {name} but not its content (MD5 "
                f"{actual}, expected {content_md5}): {what}"
            )
    elif values.ndim == 4 and len(values) >= 100 and "mean_pixel" in info:
        check_looks_like(path, values, dataset)


def check_looks_like(path: Path, images: np.ndarray, dataset: str) -> None:
    """Raises DataError when a subset's images are nearer another dataset's mean pixel than their
    own (MNIST's digits are mostly black: 33 of 255; Fashion-MNIST's clothes 73): --dataset names
    the wrong one."""
    mean = float(images.mean())
    means = {key: d["mean_pixel"] for key, d in DATASETS.items() if "mean_pixel" in d}
    nearest = min(means, key=lambda key: abs(means[key] - mean))
    if nearest != dataset:
        raise DataError(
            f"{path} holds {nearest} images, not {dataset} ones (mean pixel {mean:.0f}: "
            f"{nearest}'s is {means[nearest]:.0f}, {dataset}'s {means[dataset]:.0f}): check "
            f"--dataset"
        )
