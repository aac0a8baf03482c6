"""CIFAR-10 input: the binary record format, and the tf.data pipeline every model trains on.

Read this file top to bottom:
  1. the file format: one record = 1 label byte + 3,072 pixel bytes (channel by channel);
  2. `maybe_download_and_extract`: makes the data available (the download itself is plumbing);
  3. `load_split`: the records as NumPy arrays; `split_indices` and `channel_stats`;
  4. the augmentations, one small function each, and `make_dataset`: the pipeline.

Run it on its own to fetch the data and look at it:
    python cifar10_input.py --show samples.png
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import numpy as np

import mnist_input
from plumbing import download, entry, options
from plumbing.errors import DataError, OneLineParser, UsageError
from plumbing.files import picture_path

# --------------------------------------------------------------------------- data source and format
DATA_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
DATA_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"  # of the official archive (170,052,171 bytes)
ARCHIVE_NAME = "cifar-10-binary.tar.gz"  # an archive of this name must have DATA_MD5
BATCHES_DIRNAME = "cifar-10-batches-bin"  # the folder inside the archive
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILES = ("test_batch.bin",)

CLASS_NAMES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
NUM_CLASSES = len(CLASS_NAMES)
IMAGE_SIZE = 32
NUM_CHANNELS = 3
IMAGE_BYTES = IMAGE_SIZE * IMAGE_SIZE * NUM_CHANNELS  # 3,072: 1,024 red, then green, then blue
RECORD_BYTES = 1 + IMAGE_BYTES  # 3,073: the label byte comes first


def prepare(
    dataset: str = "cifar10", data_dir: str | os.PathLike | None = None, data_url: str | None = None
) -> Path:
    """Makes a dataset available and returns its folder, for make_dataset: the one place that
    decides where data lives (data_dir, else $CIFAR10_DATA_DIR, else ./data) and where it comes from
    (data_url, else the official source)."""
    where = (
        "--data-dir" if data_dir or not os.environ.get("CIFAR10_DATA_DIR") else "$CIFAR10_DATA_DIR"
    )
    data_dir = Path(data_dir or os.environ.get("CIFAR10_DATA_DIR") or "data")
    if dataset in mnist_input.DATASETS:  # MNIST and Fashion-MNIST: the IDX format (mnist_input.py)
        return mnist_input.maybe_download(data_dir, dataset, data_url, where=where)
    if dataset != "cifar10":
        raise ValueError(f"unknown dataset {dataset!r}")
    return maybe_download_and_extract(data_dir, data_url, where=where)


# ------------------------------------------------------------------------ making the data available
def maybe_download_and_extract(
    data_dir: str | os.PathLike,
    url: str | None = None,
    *,
    md5: str | None = None,
    **download_options,
) -> Path:
    """Makes CIFAR-10 available in `data_dir` and returns the folder of batch files.

    A second call with the data in place touches neither the network nor the archive. The archive is
    verified before it is trusted: one named `cifar-10-binary.tar.gz` must have the official MD5,
    any other is checked for structure, and every label must be a class id. The folder remembers its
    archive: a call naming another one is refused (a UsageError) instead of using the wrong data.
    Download, checks, safe extraction, locks: plumbing/download.py.

    Args:
        data_dir: folder for the archive and the extracted files; created when missing.
        url: an http(s) URL, a file:// URL or a path to a local archive (classrooms, offline use);
            None: $CIFAR10_URL, else the official URL (and then whatever the folder holds is used).
        md5: the archive's expected MD5, when known (overrides the rule above).
        **download_options: passed to plumbing.download.fetch (retries, backoff_s, timeout_s,
            show_progress).

    Raises DataError: one line saying what went wrong and what to do.
    """
    what = "--data-url" if url or not os.environ.get("CIFAR10_URL") else "$CIFAR10_URL"
    url = url or os.environ.get("CIFAR10_URL")
    return download.prepare_archive(
        Path(data_dir),
        url or DATA_URL,
        named=url is not None,
        what=what,
        folder=BATCHES_DIRNAME,
        files=TRAIN_FILES + TEST_FILES,
        record_bytes=RECORD_BYTES,
        official=(ARCHIVE_NAME, DATA_MD5),
        md5=md5,
        check_content=labels_problem,
        **download_options,
    )


# ----------------------------------------------------------------------------- parse
def read_records(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Parses one CIFAR-10 .bin file into (uint8 images [N, 32, 32, 3], int32 labels [N])."""
    if not path.is_file():
        raise DataError(
            f"{path} is missing; delete its folder and run again: the data is extracted anew"
        )
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % RECORD_BYTES:
        raise DataError(
            f"{path} has {raw.size:,} bytes, not a whole number of {RECORD_BYTES}-byte "
            f"records; the file is truncated or damaged: delete its folder and run again"
        )
    records = raw.reshape(-1, RECORD_BYTES)
    labels = records[:, 0].astype(np.int32)
    if problem := label_problem(path, labels):
        raise DataError(f"{problem}; delete its folder and run again: the data is extracted anew")
    # Each image is stored channel by channel (CHW); models want height, width, channel (HWC).
    images = records[:, 1:].reshape(-1, NUM_CHANNELS, IMAGE_SIZE, IMAGE_SIZE).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def label_problem(path: str | os.PathLike, labels: np.ndarray) -> str | None:
    """What is wrong with a file's labels (a value that is no class id); None if none is."""
    bad = np.flatnonzero(labels >= NUM_CLASSES)
    if bad.size == 0:
        return None
    where = f"{path} has label {labels[bad[0]]} in record {bad[0] + 1:,}"
    classes = f"CIFAR-10's labels are 0 to {NUM_CLASSES - 1}"
    return f"{where}, but {classes} (the file is damaged or not CIFAR-10)"


def labels_problem(folder: Path) -> str | None:
    """For the extraction: the first file in `folder` with a label that is no class id, or None."""
    for name in TRAIN_FILES + TEST_FILES:
        labels = np.fromfile(folder / name, dtype=np.uint8).reshape(-1, RECORD_BYTES)[:, 0]
        if problem := label_problem(name, labels):
            return problem
    return None


def load_split(batches_dir: str | os.PathLike, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Loads a split as NumPy arrays.

    Args:
        batches_dir: the folder returned by `maybe_download_and_extract` (or `prepare`).
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


def split_indices(
    num_examples: int, *, val_size: int, num_train_examples: int | None, seed: int
) -> tuple[np.ndarray, np.ndarray]:
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
            raise ValueError(
                f"num_train_examples must be between 1 and {len(rest)} "
                f"(the training files minus the validation set), not {num_train_examples}"
            )
        rest = rest[:num_train_examples]
    return np.sort(rest), np.sort(val)


def channel_stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of uint8 images, on the [0, 1] scale (float32 [C] each).

    Counted from each channel's histogram of its 256 values: exact, without a float copy of the
    images (45,000 CIFAR-10 images take 1.1 GB as float64)."""
    counts = np.stack(
        [np.bincount(images[..., c].ravel(), minlength=256) for c in range(images.shape[-1])]
    )
    values, n = np.arange(256) / 255.0, counts.sum(axis=1)  # counts: [C, 256]
    mean = counts @ values / n
    std = np.sqrt(np.maximum(counts @ values**2 / n - mean**2, 0))
    return mean.astype(np.float32), std.astype(np.float32)


# ----------------------------------------------------------------------------- augmentation
# Each takes a normalised float32 batch [B, H, W, C] (0 is the mean colour) and a shape [2] integer
# seed, and draws its randomness per image with tf.random.stateless_*: the same seed, the same
# batch, so a resumed run continues bit for bit. (TensorFlow is imported inside: the NumPy track
# runs without it.)
def random_flip(images, seed):
    """Mirrors each image left-right with probability 1/2."""
    import tensorflow as tf

    # BEGIN SOLUTION [augmentation]: a uniform number per image; where < 0.5, tf.reverse on axis 2
    mirror = tf.random.stateless_uniform([tf.shape(images)[0], 1, 1, 1], seed) < 0.5
    return tf.where(mirror, tf.reverse(images, axis=[2]), images)
    # END SOLUTION


def random_crop(images, seed, pad: int):
    """Pads each image by `pad` pixels of the mean colour (0), crops it back at a random offset."""
    import tensorflow as tf

    batch, height, width = tf.shape(images)[0], tf.shape(images)[1], tf.shape(images)[2]
    # BEGIN SOLUTION [augmentation]: tf.pad (zeros); row, column offsets in [0, 2 * pad]; tf.gather
    padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    offsets = tf.random.stateless_uniform([batch, 2], seed, 0, 2 * pad + 1, dtype=tf.int32)
    rows = tf.range(height)[None, :] + offsets[:, :1]  # [B, H]: the padded rows each image keeps
    cols = tf.range(width)[None, :] + offsets[:, 1:]  # [B, W]
    cropped = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(cropped, cols, axis=2, batch_dims=1)
    # END SOLUTION


def random_brightness(images, seed, max_delta: float):
    """Adds a random shift in [-max_delta, max_delta] (in units of the pixel std) to each image."""
    import tensorflow as tf

    # BEGIN SOLUTION [augmentation]: a uniform shift of shape [B, 1, 1, 1], added to every pixel
    shift = tf.random.stateless_uniform([tf.shape(images)[0], 1, 1, 1], seed, -max_delta, max_delta)
    return images + shift
    # END SOLUTION


def random_contrast(images, seed, max_change: float):
    """Scales each image about its own mean (one number: over all its pixels and channels, as
    torchvision does; not per channel, as tf.image.adjust_contrast does) by a random factor in
    [1 - max_change, 1 + max_change], drawn for each image."""
    import tensorflow as tf

    # BEGIN SOLUTION [augmentation]: one factor per image: (image - its mean) * factor + its mean
    factor = tf.random.stateless_uniform(
        [tf.shape(images)[0], 1, 1, 1], seed, 1 - max_change, 1 + max_change
    )
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    return (images - mean) * factor + mean
    # END SOLUTION


def random_cutout(images, seed, size: int):
    """Blanks (sets to the mean colour, 0) a size x size square centred at a random pixel of each
    image: rows (and columns) from centre - size // 2 to centre - size // 2 + size - 1, cut off at
    the edges."""
    import tensorflow as tf

    height, width = tf.shape(images)[1], tf.shape(images)[2]
    # BEGIN SOLUTION [augmentation]: one random centre per image; the square, cut at the edges, to 0
    centres = tf.cast(
        tf.random.stateless_uniform([tf.shape(images)[0], 2], seed)
        * tf.cast(tf.stack([height, width]), tf.float32),
        tf.int32,
    )
    corners = centres - size // 2  # [B, 2]: the square's first row and column
    rows = tf.range(height)[None, :] - corners[:, :1]  # [B, H]: each row's offset into the square
    cols = tf.range(width)[None, :] - corners[:, 1:]  # [B, W]
    inside_rows, inside_cols = (rows >= 0) & (rows < size), (cols >= 0) & (cols < size)
    hole = inside_rows[:, :, None, None] & inside_cols[:, None, :, None]  # [B, H, W, 1]
    return tf.where(hole, tf.zeros_like(images), images)
    # END SOLUTION


def augment_batch(
    images,
    seed,
    *,
    flip: bool = False,
    crop: int = 0,
    brightness: float = 0.0,
    contrast: float = 0.0,
    cutout: int = 0,
):
    """Applies the augmentations asked for to a whole batch (faster than one image at a time).

    Each augmentation gets its own seed split from `seed`; one that is off is not called at all.

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
    if brightness:
        images = random_brightness(images, seeds[0], brightness)
    if contrast:
        images = random_contrast(images, seeds[1], contrast)
    if flip:
        images = random_flip(images, seeds[2])
    if crop:
        images = random_crop(images, seeds[3], crop)
    if cutout:
        images = random_cutout(images, seeds[4], cutout)
    return images


# ----------------------------------------------------------------------------- the tf.data pipeline
def class_names(dataset: str = "cifar10") -> tuple[str, ...]:
    """The names of a dataset's classes, indexed by label."""
    return CLASS_NAMES if dataset == "cifar10" else mnist_input.DATASETS[dataset]["class_names"]


def load_any(folder: str | os.PathLike, split: str) -> tuple[np.ndarray, np.ndarray]:
    """load_split for the folder `prepare` returned, read once and shared (read-only) by callers."""
    return _load_cached(str(Path(folder).resolve()), split)


@functools.lru_cache(maxsize=4)
def _load_cached(folder: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    reader = mnist_input.load_split if mnist_input.is_idx_folder(folder) else load_split
    images, labels = reader(folder, split)
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


def split_arrays(folder, split: str, val_size: int, num_train_examples: int | None, seed: int):
    """A split's uint8 images and labels, and the mean and std of the training examples used."""
    if split not in ("train", "validation", "test"):
        raise ValueError(f"split must be 'train', 'validation' or 'test', not {split!r}")
    train_images, train_labels = load_any(folder, "train")
    train_idx, val_idx = split_indices(
        len(train_labels), val_size=val_size, num_train_examples=num_train_examples, seed=seed
    )
    mean, std = channel_stats(train_images[train_idx])
    if split == "test":
        images, labels = load_any(folder, "test")
    else:
        chosen = train_idx if split == "train" else val_idx
        images, labels = train_images[chosen], train_labels[chosen]
    if len(labels) == 0:
        raise ValueError(
            f"the {split} split is empty: set val_size > 0 to hold out a validation set"
        )
    return images, labels, mean, std


def make_dataset(
    batches_dir: str | os.PathLike,
    split: str,
    *,
    batch_size: int = 128,
    num_train_examples: int | None = None,
    val_size: int = 0,
    image_size: int | None = None,
    flip: bool = False,
    crop: int = 0,
    brightness: float = 0.0,
    contrast: float = 0.0,
    cutout: int = 0,
    seed: int = 0,
    epoch: int = 0,
    repeat: bool = False,
    drop_remainder: bool = False,
):
    """Builds a tf.data pipeline of (float32 image [B, S, S, C], int32 label [B]) batches.

    Images are normalised with the per-channel mean and std of the training examples used, so every
    split sees the same transform. The uint8 arrays stay in memory (that is the cache); each batch
    is gathered by index, converted and augmented as a whole, and prefetched while the model trains.
    Training order and augmentation are a pure function of (seed, epoch, batch number), with no
    hidden random state: any epoch, or any batch of it (`.skip(n)`), can be reproduced on its own.
    That is what lets an interrupted run resume exactly where it stopped.

    Args:
        batches_dir: the folder `prepare` returned. split: "train" (shuffled, augmented),
            "validation" (held out from the training files) or "test" (the test file).
        batch_size: examples per batch; drop_remainder: drop a last batch smaller than that.
        num_train_examples: use only this many training examples (None: all but the validation set).
        val_size: how many training-file examples to hold out for validation.
        image_size: resize images to this side length (bilinear); None keeps their size.
        flip, crop, brightness, contrast, cutout: augmentation of training batches; see
            `augment_batch`.
        seed: chooses the validation set, the shuffle orders and the augmentation.
        epoch: the (first) epoch to produce; repeat ("train" only): go on with the next epochs,
            forever.
    """
    import tensorflow as tf

    images, labels, mean, std = split_arrays(batches_dir, split, val_size, num_train_examples, seed)
    images_t, labels_t = tf.constant(images), tf.constant(labels)
    scale, offset = tf.constant(1.0 / (255.0 * std)), tf.constant(-mean / std)
    augmentation = dict(
        flip=flip, crop=crop, brightness=brightness, contrast=contrast, cutout=cutout
    )
    augment = split == "train" and any(augmentation.values())

    def to_batch(indices, aug_seed=None):
        batch = tf.cast(tf.gather(images_t, indices), tf.float32) * scale + offset
        if image_size and image_size != images.shape[1]:
            batch = tf.image.resize(batch, [image_size, image_size])
        if augment:
            batch = augment_batch(batch, aug_seed, **augmentation)
        return batch, tf.gather(labels_t, indices)

    if split != "train":
        return (
            tf.data.Dataset.range(len(labels))
            .batch(batch_size, drop_remainder=drop_remainder)
            .map(to_batch, num_parallel_calls=tf.data.AUTOTUNE)
            .cache()
            .prefetch(tf.data.AUTOTUNE)
        )
    order = training_order(len(labels), batch_size, seed, epoch, repeat, drop_remainder)
    batches = order.map(to_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return batches.prefetch(tf.data.AUTOTUNE)


def training_order(
    num_examples: int, batch_size: int, seed: int, epoch: int, repeat: bool, drop_remainder: bool
):
    """The training batches of example indices, each with its augmentation seed [2], for
    make_dataset: epoch `epoch` (and the ones after it, forever, if `repeat`), each shuffled by a
    seed made of (seed, epoch). Nothing else is random: any batch can be made again on its own."""
    import tensorflow as tf

    def epoch_batches(epoch_number):
        """One epoch's batches of indices, each with its own augmentation seed [epoch, batch]."""
        shuffle_seed = tf.stack([tf.cast(seed, tf.int64), epoch_number])
        order = tf.random.experimental.stateless_shuffle(
            tf.range(num_examples, dtype=tf.int64), seed=shuffle_seed
        )
        batches = tf.data.Dataset.from_tensor_slices(order).batch(
            batch_size, drop_remainder=drop_remainder
        )
        # seed * 1_000_003 + epoch: one number per (seed, epoch) pair and never the same for two
        # pairs (no run has 1,000,003 epochs), so each run and each epoch augments differently.
        return batches.enumerate().map(
            lambda number, indices: (indices, tf.stack([seed * 1_000_003 + epoch_number, number]))
        )

    if repeat:
        epochs = tf.data.Dataset.counter(start=epoch)
    else:
        epochs = tf.data.Dataset.range(epoch, epoch + 1)
    return epochs.flat_map(epoch_batches)


def check_data(config: dict) -> tuple[Path, int, int, int]:
    """The dataset of a run's options, prepared and checked against them (sizes that need the data:
    the validation and training subsets, the batch, the crop); raises UsageError. NumPy only, so
    that a sweep can check every point before it trains the first. Returns (folder, val_size,
    num_train, size)."""
    folder = prepare(config["dataset"], config["data_dir"], config["data_url"])
    images = load_any(folder, "train")[0]
    val_size = config["val_size"] if config["val_size"] is not None else len(images) // 10
    try:
        train_idx, _ = split_indices(
            len(images),
            val_size=val_size,
            seed=config["seed"],
            num_train_examples=config["num_train_examples"],
        )
    except ValueError as err:
        raise UsageError(
            str(err)
            .replace("val_size", "--val-size")
            .replace("num_train_examples", "--num-train-examples")
        ) from None
    size = config["image_size"] or images.shape[1]
    options.check_for_data(config, num_train=len(train_idx), image_size=size)
    return folder, val_size, len(train_idx), size


def training_data(config: dict) -> dict:
    """For train.py: the dataset prepared, split and checked against the options, with the
    validation and test pipelines built (the training pipeline is built by the run, from its epoch
    and step)."""
    folder, val_size, num_train, size = check_data(config)
    images = load_any(folder, "train")[0]
    split = dict(
        batch_size=config["batch_size"],
        num_train_examples=config["num_train_examples"],
        val_size=val_size,
        image_size=size,
        seed=config["seed"],
    )
    return dict(
        folder=folder,
        options=split,
        num_train=num_train,
        shape=(size, size, images.shape[3]),
        augmentation={k: config[k] for k in ("flip", "crop", "brightness", "contrast", "cutout")},
        val=make_dataset(folder, "validation", **split) if val_size else None,
        test=make_dataset(folder, "test", **split),
        test_images=load_any(folder, "test")[0],
        class_names=class_names(config["dataset"]),
    )


# ----------------------------------------------------------------------------- command line
def main(argv: list[str] | None = None) -> int:
    """python cifar10_input.py [--dataset D] [--data-dir D] [--data-url U] [--show PNG]: fetch the
    dataset, count its classes."""
    return entry.main(summarise, argv)


def summarise(argv: list[str] | None) -> int:
    """The work of main: fetch the dataset (if needed), count each split's classes, show samples."""
    parser = OneLineParser(
        prog="cifar10_input.py", description="Download, verify and summarise a dataset."
    )
    parser.add_argument(
        "--dataset",
        choices=("cifar10", *mnist_input.DATASETS),
        default="cifar10",
        help="(default: cifar10)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="data folder (default: $CIFAR10_DATA_DIR or ./data)",
    )
    parser.add_argument(
        "--data-url",
        default=None,
        help="archive URL, file:// URL or path (default: $CIFAR10_URL or the official URL)",
    )
    parser.add_argument(
        "--show", metavar="PNG", type=picture_path, help="save a grid of sample images per class"
    )
    args = parser.parse_args(argv)
    folder, names = prepare(args.dataset, args.data_dir, args.data_url), class_names(args.dataset)
    splits = {split: load_any(folder, split) for split in ("train", "test")}
    print(f"{args.dataset} in {folder}")
    print(f"{'class':<14}" + "".join(f"{split:>8}" for split in splits))
    counts = {
        split: np.bincount(labels, minlength=len(names)) for split, (_, labels) in splits.items()
    }
    for class_id, name in enumerate(names):
        print(
            f"{class_id} {name:<12}" + "".join(f"{counts[split][class_id]:>8,}" for split in splits)
        )
    print(f"{'total':<14}" + "".join(f"{len(labels):>8,}" for _, labels in splits.values()))
    if args.show:
        import plots

        plots.sample_grid(*splits["train"], names, args.show)
        print(f"saved sample images to {args.show}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
