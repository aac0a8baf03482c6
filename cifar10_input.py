"""CIFAR-10 input: download, verify, extract, parse, and a shared tf.data pipeline.

Read this file top to bottom:
  1. where the data comes from, and the file format (one record = 1 label byte + 3,072 pixel bytes);
  2. `maybe_download_and_extract`: makes the data available, safely (verified, atomic, resumable);
  3. `load_split`: the binary records as NumPy arrays;
  4. `augment_batch` and `make_dataset`: the tf.data pipeline every model trains on.

Run it on its own to fetch the data and look at it:
    python cifar10_input.py --show samples.png
"""

from __future__ import annotations

import argparse
import functools
import gzip
import hashlib
import http.client
import os
import shutil
import socket
import ssl
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from pathlib import Path, PurePosixPath

import numpy as np

# ----------------------------------------------------------------------------- data source and format
DATA_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
DATA_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"  # of the official archive (170,052,171 bytes)
ARCHIVE_NAME = "cifar-10-binary.tar.gz"  # an archive of this name must have DATA_MD5
BATCHES_DIRNAME = "cifar-10-batches-bin"  # the folder inside the archive
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILES = ("test_batch.bin",)
OPTIONAL_FILES = ("batches.meta.txt", "readme.html")  # extracted when present, never needed

CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer",
               "dog", "frog", "horse", "ship", "truck")
NUM_CLASSES = len(CLASS_NAMES)
IMAGE_SIZE = 32
NUM_CHANNELS = 3
IMAGE_BYTES = IMAGE_SIZE * IMAGE_SIZE * NUM_CHANNELS  # 3,072: 1,024 red, then green, then blue
RECORD_BYTES = 1 + IMAGE_BYTES  # 3,073: the label byte comes first

DEFAULT_DATA_DIR = "data"  # used when neither --data-dir nor CIFAR10_DATA_DIR is given


class DataError(Exception):
    """A problem with the data that the user can fix; the message says how, in one line."""


def _way_out(data_dir: Path) -> str:
    return (f"Either download {ARCHIVE_NAME} on another machine and pass "
            f"--data-url file:///path/to/{ARCHIVE_NAME}, or place it in {data_dir}/ and run again.")


def default_data_dir() -> Path:
    """The data folder when none is given: $CIFAR10_DATA_DIR, else ./data."""
    return Path(os.environ.get("CIFAR10_DATA_DIR") or DEFAULT_DATA_DIR)


def default_data_url() -> str:
    """Where to fetch the archive when no URL is given: $CIFAR10_URL, else the official URL."""
    return os.environ.get("CIFAR10_URL") or DATA_URL


# ----------------------------------------------------------------------------- download
# Errors worth another try: the server or the path to it may recover in a moment.
_TRANSIENT = (ConnectionError, TimeoutError, socket.timeout, http.client.IncompleteRead,
              http.client.RemoteDisconnected)


def file_md5(path: Path) -> str:
    """MD5 hex digest of a file, read in 1 MiB chunks so big archives need no big memory."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class _Progress:
    """Prints 'bytes / total (percent) rate' on one line, at most twice a second."""

    def __init__(self, total: int | None, start_bytes: int):
        self.total, self.done = total, start_bytes
        self.start_bytes, self.t0, self.last = start_bytes, time.monotonic(), 0.0

    def update(self, num_bytes: int, final: bool = False) -> None:
        self.done += num_bytes
        now = time.monotonic()
        if not final and now - self.last < 0.5:
            return
        self.last = now
        rate = (self.done - self.start_bytes) / max(now - self.t0, 1e-6) / 1e6
        total = f" / {self.total / 1e6:.1f} MB ({100 * self.done / self.total:.0f}%)" if self.total else " MB"
        print(f"\r  {self.done / 1e6:.1f}{total}  {rate:.1f} MB/s", end="\n" if final else "",
              file=sys.stderr, flush=True)


def _fetch_once(url: str, part: Path, timeout: float, show_progress: bool) -> None:
    """Fetches `url` into `part`, continuing a partial file when the server honours Range."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # nothing left to fetch: the checksum decides
            return
        raise
    with response:
        if have and response.status != 206:  # the server ignored Range: start again
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length else None
        progress = _Progress(total, have) if show_progress else None
        with open(part, "ab" if have else "wb") as out:
            while chunk := response.read(1 << 16):
                out.write(chunk)
                if progress:
                    progress.update(len(chunk))
        if progress:
            progress.update(0, final=True)
    if total is not None and part.stat().st_size < total:
        raise ConnectionResetError(f"connection closed after {part.stat().st_size:,} of {total:,} bytes")


def download(url: str, dest: Path, *, md5: str | None, retries: int = 4, backoff_s: float = 1.0,
             timeout_s: float = 30.0, show_progress: bool = True) -> Path:
    """Downloads `url` to `dest` atomically: into `dest.part`, renamed only once verified.

    Transient errors (dropped connections, time-outs, 5xx) are retried with exponential back-off,
    resuming the partial file when the server supports ranges. DNS, TLS and other HTTP errors fail
    at once. SSL certificates are always verified.

    Args:
        url: http(s) URL of the file.
        dest: final path; its folder must exist.
        md5: expected MD5 hex digest, or None when unknown (then only the length is checked).
        retries: how many times a transient error is retried.
        backoff_s: first wait between tries; doubled each time.
        timeout_s: socket time-out for connecting and for each read.
        show_progress: print bytes, percent and rate to stderr.

    Returns:
        `dest`.

    Raises:
        DataError: with the URL, the reason and the ways out.
    """
    part = dest.with_name(dest.name + ".part")
    for attempt in range(retries + 1):
        try:
            _fetch_once(url, part, timeout_s, show_progress)
            break
        except urllib.error.HTTPError as err:
            if err.code < 500 and err.code != 429:
                raise DataError(f"could not download {url}: HTTP {err.code} {err.reason}. "
                                f"{_way_out(dest.parent)}") from None
            reason = f"HTTP {err.code}"
        except urllib.error.URLError as err:
            if not isinstance(err.reason, _TRANSIENT) or isinstance(err.reason, ssl.SSLError):
                raise DataError(f"could not download {url}: {err.reason}. "
                                f"{_way_out(dest.parent)}") from None
            reason = str(err.reason)
        except _TRANSIENT as err:
            reason = str(err) or type(err).__name__
        if attempt == retries:
            raise DataError(f"could not download {url} after {retries + 1} tries ({reason}). "
                            f"{_way_out(dest.parent)}")
        wait = backoff_s * 2 ** attempt
        print(f"  download interrupted ({reason}); retrying in {wait:.0f} s", file=sys.stderr)
        time.sleep(wait)
    if md5 is not None and (actual := file_md5(part)) != md5:
        part.unlink()
        raise DataError(f"checksum mismatch for {url}: MD5 {actual}, expected {md5}; "
                        f"the damaged file was deleted. Run again, or use another mirror with --data-url.")
    os.replace(part, dest)
    return dest


# ----------------------------------------------------------------------------- extract
def _check_batches(batches_dir: Path) -> str | None:
    """Returns what is wrong with an extracted folder, or None when every batch file looks whole."""
    for name in TRAIN_FILES + TEST_FILES:
        path = batches_dir / name
        if not path.is_file():
            return f"{path} is missing"
        size = path.stat().st_size
        if size == 0 or size % RECORD_BYTES:
            return f"{path} has {size:,} bytes, not a whole number of {RECORD_BYTES}-byte records"
    return None


def safe_extract(archive: Path, data_dir: Path) -> Path:
    """Extracts the CIFAR-10 batch files from `archive` into `data_dir/cifar-10-batches-bin`.

    Only the expected members are taken; absolute paths, '..' and links are refused, since a tar
    file can otherwise write anywhere on disk. Files go to a temporary folder first, which is
    renamed into place only when complete, so an interrupted run never leaves half a data set.

    Raises:
        DataError: unreadable archive, unsafe or missing members, or a target folder that exists.
    """
    wanted = set(TRAIN_FILES + TEST_FILES + OPTIONAL_FILES)
    target = data_dir / BATCHES_DIRNAME
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = {}
            for member in tar.getmembers():
                path = PurePosixPath(member.name)
                if path.is_absolute() or ".." in path.parts or member.name.startswith("\\"):
                    raise DataError(f"{archive} has an unsafe member path {member.name!r}; refusing to extract it")
                if member.issym() or member.islnk():
                    raise DataError(f"{archive} has a link member {member.name!r}; refusing to extract it")
                if member.isfile() and path.parent.name == BATCHES_DIRNAME and path.name in wanted:
                    members[path.name] = member
            missing = sorted(set(TRAIN_FILES + TEST_FILES) - set(members))
            if missing:
                raise DataError(f"{archive} is not a CIFAR-10 binary archive: it lacks "
                                f"{BATCHES_DIRNAME}/{missing[0]}")
            staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=data_dir))
            try:
                for name, member in members.items():
                    with tar.extractfile(member) as src, open(staging / name, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                if problem := _check_batches(staging):
                    raise DataError(f"{archive} is damaged: {problem}")
                os.rename(staging, target)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise DataError(f"could not read {archive} ({err}); delete it and run again to fetch a fresh copy") from None
    except OSError as err:  # disk full, no permission, or the target appeared meanwhile
        raise DataError(f"could not extract {archive} into {data_dir} ({err})") from None
    return target


def _local_archive(url: str) -> Path | None:
    """The path named by a file:// URL or a plain path; None for http(s)."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        return Path(urllib.request.url2pathname(parsed.path))
    if parsed.scheme in ("http", "https"):
        return None
    return Path(url)


def maybe_download_and_extract(data_dir: str | os.PathLike, url: str = DATA_URL, *,
                               md5: str | None = None, **download_options) -> Path:
    """Makes CIFAR-10 available in `data_dir` and returns the folder of batch files.

    A second call with the data in place touches neither the network nor the archive.

    Args:
        data_dir: folder for the archive and the extracted files; created when missing.
        url: an http(s) URL, a file:// URL, or a path to a local archive (classrooms, offline use).
        md5: the archive's expected MD5. When None it is known only for an archive named
            `cifar-10-binary.tar.gz`, which must be the official one.
        **download_options: passed to `download` (retries, backoff_s, timeout_s, show_progress).

    Returns:
        The folder holding data_batch_1..5.bin and test_batch.bin.

    Raises:
        DataError: one line saying what went wrong and what to do.
    """
    data_dir = Path(data_dir)
    batches_dir = data_dir / BATCHES_DIRNAME
    if batches_dir.exists():
        if problem := _check_batches(batches_dir):
            raise DataError(f"{problem}; delete {batches_dir} and run again to re-extract it")
        return batches_dir
    data_dir.mkdir(parents=True, exist_ok=True)

    archive = _local_archive(url)
    if archive is None:  # http(s): reuse an archive already in the data folder, else download it
        name = PurePosixPath(urllib.parse.urlparse(url).path).name or ARCHIVE_NAME
        archive = data_dir / name
    elif not archive.is_file():
        raise DataError(f"no archive at {archive}: check the path given with --data-url")
    expected_md5 = md5 or (DATA_MD5 if archive.name == ARCHIVE_NAME else None)

    if archive.is_file():
        if expected_md5 and (actual := file_md5(archive)) != expected_md5:
            raise DataError(f"{archive} is damaged or not the official archive (MD5 {actual}, "
                            f"expected {expected_md5}); delete it and run again")
    else:
        print(f"Downloading {url} to {archive}", file=sys.stderr)
        download(url, archive, md5=expected_md5, **download_options)
    return safe_extract(archive, data_dir)


# ----------------------------------------------------------------------------- parse
def read_records(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Parses one CIFAR-10 .bin file into (uint8 images [N, 32, 32, 3], int32 labels [N])."""
    if not path.is_file():
        raise DataError(f"{path} is missing; run `python cifar10_input.py` to download and extract the data")
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % RECORD_BYTES:
        raise DataError(f"{path} has {raw.size:,} bytes, not a whole number of {RECORD_BYTES}-byte "
                        f"records; the file is truncated or damaged: delete its folder and run again")
    records = raw.reshape(-1, RECORD_BYTES)
    labels = records[:, 0].astype(np.int32)
    # Each image is stored channel by channel (CHW); models want height, width, channel (HWC).
    images = records[:, 1:].reshape(-1, NUM_CHANNELS, IMAGE_SIZE, IMAGE_SIZE).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def load_split(batches_dir: str | os.PathLike, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Loads a split as NumPy arrays.

    Args:
        batches_dir: the folder returned by `maybe_download_and_extract`.
        split: "train" (the five data batches, in order) or "test".

    Returns:
        images: uint8 [N, 32, 32, 3], RGB, height-width-channel order.
        labels: int32 [N], class ids indexing CLASS_NAMES.
    """
    files = {"train": TRAIN_FILES, "test": TEST_FILES}.get(split)
    if files is None:
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    parts = [read_records(Path(batches_dir) / name) for name in files]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


@functools.lru_cache(maxsize=4)
def _load_split_cached(batches_dir: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = load_split(batches_dir, split)
    images.flags.writeable = labels.flags.writeable = False  # shared between callers
    return images, labels


def split_indices(num_examples: int, *, val_size: int, num_train_examples: int | None,
                  seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Chooses which training-file examples are used for training and which are held out.

    The validation examples are a seeded random draw from the training files, never from the test
    file; the training examples are drawn from the rest, so the two never overlap.

    Returns:
        (train_indices, val_indices), each sorted.
    """
    if not 0 <= val_size < num_examples:
        raise ValueError(f"val_size must be between 0 and {num_examples - 1}, not {val_size}")
    order = np.random.default_rng(seed).permutation(num_examples)
    val, rest = order[:val_size], order[val_size:]
    if num_train_examples is not None:
        if not 0 < num_train_examples <= len(rest):
            raise ValueError(f"num_train_examples must be between 1 and {len(rest)} "
                             f"(the training files minus the validation set), not {num_train_examples}")
        rest = rest[:num_train_examples]
    return np.sort(rest), np.sort(val)


def channel_stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of uint8 images, on the [0, 1] scale (float32 [C] each)."""
    pixels = images.reshape(-1, images.shape[-1]).astype(np.float64) / 255.0
    return pixels.mean(axis=0).astype(np.float32), pixels.std(axis=0).astype(np.float32)


# ----------------------------------------------------------------------------- tf.data pipeline
def augment_batch(images, seed, *, flip: bool = False, crop: int = 0, brightness: float = 0.0,
                  contrast: float = 0.0, cutout: int = 0):
    """Randomly augments a whole batch at once (faster than one image at a time).

    Every image gets its own random draw; `seed` (a shape [2] int tensor) makes the draws
    reproducible, which is what lets an interrupted run resume bit for bit.

    Args:
        images: float32 [B, H, W, C], already normalised (so 0 is the mean colour).
        seed: shape [2] integer seed for the stateless random ops.
        flip: mirror each image left-right with probability 1/2.
        crop: pad by this many pixels (with the mean colour) and crop back at a random offset.
        brightness: add a random shift in [-brightness, brightness] (in units of the pixel std).
        contrast: scale each image about its mean by a factor in [1 - contrast, 1 + contrast].
        cutout: blank a random square of this side (0 = off), centred anywhere in the image.

    Returns:
        float32 [B, H, W, C].
    """
    import tensorflow as tf

    seeds = tf.random.experimental.stateless_split(seed, num=5)  # one seed per augmentation
    batch, height, width = tf.shape(images)[0], tf.shape(images)[1], tf.shape(images)[2]
    # BEGIN SOLUTION: each augmentation asked for, drawn per image with tf.random.stateless_uniform(..., seeds[k])
    if brightness:
        shift = tf.random.stateless_uniform([batch, 1, 1, 1], seeds[0], -brightness, brightness)
        images = images + shift
    if contrast:
        factor = tf.random.stateless_uniform([batch, 1, 1, 1], seeds[1], 1 - contrast, 1 + contrast)
        mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
        images = (images - mean) * factor + mean
    if flip or crop:
        # Flip and crop both only move pixels, so they share one gather: for each output pixel,
        # the (row, column) it comes from in the padded image.
        pad = crop
        rows = tf.tile(tf.range(height)[None, :], [batch, 1])  # [B, H]
        cols = tf.tile(tf.range(width)[None, :], [batch, 1])  # [B, W]
        if flip:
            mirror = tf.random.stateless_uniform([batch, 1], seeds[2]) < 0.5
            cols = tf.where(mirror, width - 1 - cols, cols)
        if crop:
            images = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
            offsets = tf.random.stateless_uniform([batch, 2], seeds[3], 0, 2 * pad + 1, dtype=tf.int32)
            rows, cols = rows + offsets[:, :1], cols + offsets[:, 1:]
        source = rows[:, :, None] * (width + 2 * pad) + cols[:, None, :]  # [B, H, W] flat index
        channels = tf.shape(images)[3]
        images = tf.gather(tf.reshape(images, [batch, -1, channels]),
                           tf.reshape(source, [batch, -1]), batch_dims=1)
        images = tf.reshape(images, [batch, height, width, channels])
    if cutout:
        size = tf.cast(tf.stack([height, width]), tf.float32)
        centres = tf.cast(tf.random.stateless_uniform([batch, 2], seeds[4]) * size, tf.int32)
        half = cutout // 2
        inside_rows = tf.abs(tf.range(height)[None, :] - centres[:, :1]) < half + cutout % 2
        inside_cols = tf.abs(tf.range(width)[None, :] - centres[:, 1:]) < half + cutout % 2
        hole = inside_rows[:, :, None] & inside_cols[:, None, :]  # [B, H, W]
        images = tf.where(hole[..., None], tf.zeros_like(images), images)
    # END SOLUTION
    return images


def make_dataset(batches_dir: str | os.PathLike, split: str, *, batch_size: int = 128,
                 num_train_examples: int | None = None, val_size: int = 0, image_size: int = IMAGE_SIZE,
                 flip: bool = False, crop: int = 0, brightness: float = 0.0, contrast: float = 0.0,
                 cutout: int = 0, seed: int = 0, epoch: int = 0, repeat: bool = False,
                 drop_remainder: bool = False):
    """Builds a tf.data pipeline of (float32 image [B, S, S, 3], int32 label [B]) batches.

    Images are normalised with the per-channel mean and std of the training examples used, so every
    split sees the same transform. The uint8 arrays stay in memory (that is the cache); each batch is
    gathered by index, converted and augmented as a whole, and prefetched while the model trains.

    Training order and augmentation are a pure function of (seed, epoch, batch number), with no hidden
    random state: any epoch, or any batch of it (`.skip(n)`), can be reproduced on its own. That is
    what lets an interrupted run resume exactly where it stopped.

    Args:
        batches_dir: the folder returned by `maybe_download_and_extract`.
        split: "train" (shuffled, augmented), "validation" (held out from the training files) or
            "test" (the test file).
        batch_size: examples per batch.
        num_train_examples: use only this many training examples (None: all but the validation set).
        val_size: how many training-file examples to hold out for validation.
        image_size: resize images to this side length (bilinear) when not 32.
        flip, crop, brightness, contrast, cutout: augmentation of training batches; see `augment_batch`.
        seed: chooses the validation set, the shuffle orders and the augmentation.
        epoch: the (first) epoch to produce.
        repeat: "train" only: after that epoch, continue with the next ones, each in a new order, forever.
        drop_remainder: drop a last batch smaller than batch_size.

    Returns:
        A `tf.data.Dataset`.
    """
    import tensorflow as tf

    if split not in ("train", "validation", "test"):
        raise ValueError(f"split must be 'train', 'validation' or 'test', not {split!r}")
    train_images, train_labels = _load_split_cached(str(batches_dir), "train")
    train_idx, val_idx = split_indices(len(train_labels), val_size=val_size,
                                       num_train_examples=num_train_examples, seed=seed)
    mean, std = channel_stats(train_images[train_idx])
    if split == "test":
        images, labels = _load_split_cached(str(batches_dir), "test")
    else:
        chosen = train_idx if split == "train" else val_idx
        images, labels = train_images[chosen], train_labels[chosen]
    if len(labels) == 0:
        raise ValueError(f"the {split} split is empty: set val_size > 0 to hold out a validation set")
    images_t, labels_t = tf.constant(images), tf.constant(labels)
    scale, offset = tf.constant(1.0 / (255.0 * std)), tf.constant(-mean / std)

    def to_batch(indices, aug_seed=None):
        batch = tf.cast(tf.gather(images_t, indices), tf.float32) * scale + offset
        if image_size != IMAGE_SIZE:
            batch = tf.image.resize(batch, [image_size, image_size])
        if aug_seed is not None:
            batch = augment_batch(batch, aug_seed, flip=flip, crop=crop, brightness=brightness,
                                  contrast=contrast, cutout=cutout)
        return batch, tf.gather(labels_t, indices)

    if split != "train":
        return (tf.data.Dataset.range(len(labels)).batch(batch_size, drop_remainder=drop_remainder)
                .map(to_batch, num_parallel_calls=tf.data.AUTOTUNE).cache().prefetch(tf.data.AUTOTUNE))

    def epoch_batches(epoch_number):
        """One epoch's batches of indices, each with its own augmentation seed [epoch, batch]."""
        order = tf.random.experimental.stateless_shuffle(tf.range(len(labels), dtype=tf.int64),
                                                         seed=tf.stack([tf.cast(seed, tf.int64), epoch_number]))
        batches = tf.data.Dataset.from_tensor_slices(order).batch(batch_size, drop_remainder=drop_remainder)
        return batches.enumerate().map(
            lambda number, indices: (indices, tf.stack([seed * 1_000_003 + epoch_number, number])))

    epochs = tf.data.Dataset.counter(start=epoch) if repeat else tf.data.Dataset.range(epoch, epoch + 1)
    return (epochs.flat_map(epoch_batches)
            .map(to_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .prefetch(tf.data.AUTOTUNE))


# ----------------------------------------------------------------------------- command line
def save_sample_grid(images: np.ndarray, labels: np.ndarray, path: str | os.PathLike,
                     per_class: int = 10) -> None:
    """Saves a grid with one row per class and `per_class` example images in each (PNG)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(NUM_CLASSES, per_class, figsize=(per_class * 0.9, NUM_CLASSES * 0.9))
    for class_id, name in enumerate(CLASS_NAMES):
        examples = np.flatnonzero(labels == class_id)[:per_class]
        for col, ax in enumerate(axes[class_id]):
            ax.axis("off")
            if col < len(examples):
                ax.imshow(images[examples[col]], interpolation="nearest")
        axes[class_id][0].text(-4, 16, name, ha="right", va="center", fontsize=9)
    fig.subplots_adjust(left=0.14, right=0.99, top=0.99, bottom=0.01, wspace=0.05, hspace=0.05)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Download, verify and summarise CIFAR-10.")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help=f"data folder (default: $CIFAR10_DATA_DIR or ./{DEFAULT_DATA_DIR})")
    parser.add_argument("--data-url", default=None,
                        help="archive URL, file:// URL or local path (default: $CIFAR10_URL or the official URL)")
    parser.add_argument("--show", metavar="PNG", help="save a grid of sample images per class")
    args = parser.parse_args(argv)
    data_dir = args.data_dir or default_data_dir()
    try:
        batches_dir = maybe_download_and_extract(data_dir, args.data_url or default_data_url())
        splits = {split: load_split(batches_dir, split) for split in ("train", "test")}
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"CIFAR-10 in {batches_dir}")
    print(f"{'class':<12}" + "".join(f"{split:>8}" for split in splits))
    counts = {split: np.bincount(labels, minlength=NUM_CLASSES) for split, (_, labels) in splits.items()}
    for class_id, name in enumerate(CLASS_NAMES):
        print(f"{class_id} {name:<10}" + "".join(f"{counts[split][class_id]:>8,}" for split in splits))
    print(f"{'total':<12}" + "".join(f"{len(labels):>8,}" for _, labels in splits.values()))
    if args.show:
        save_sample_grid(*splits["train"], args.show)
        print(f"saved sample images to {args.show}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
