"""Graded tests, stage 1: data augmentation (cifar10_input.py: random_flip, random_crop;
random_brightness, random_contrast and random_cutout are optional pieces, each tested on its own).

Every augmentation is checked on values: a flipped image is an exact mirror, a cropped one an exact
window of the padded image whose offsets reach both edges of the padding, shifts and factors stay in
range; flips and crops differ from image to image, the same seed gives the same batch and another
seed another one.
"""

import numpy as np
import pytest
import tensorflow as tf

import cifar10_input as ci
from helpers import known_images

STAGE = "augmentation"


def _images(num_images: int) -> np.ndarray:
    """Known float32 images [N, 32, 32, 3] without a zero pixel (padding and cutout write 0)."""
    return known_images(num_images).transpose(0, 2, 3, 1).astype(np.float32) + 1


def _crop_offsets(out: np.ndarray, images: np.ndarray, pad: int) -> list[tuple[int, int]]:
    """The (row, column) offset of each cropped image in its zero-padded original; fails the test
    for an image that is no window of it."""
    size = images.shape[1]
    padded = np.pad(images, [(0, 0), (pad, pad), (pad, pad), (0, 0)])
    offsets = []
    for n, (o, p) in enumerate(zip(out, padded)):
        found = [
            (dy, dx)
            for dy in range(2 * pad + 1)
            for dx in range(2 * pad + 1)
            if np.array_equal(o, p[dy : dy + size, dx : dx + size])
        ]
        assert found, f"cropped image {n} is not a {size}x{size} window of the zero-padded image"
        offsets.append(found[0])
    return offsets


def _transform(kind: str, images, seed) -> np.ndarray:
    """random_flip or random_crop (pad 4) of the images with a shape [2] seed."""
    if kind == "flip":
        return ci.random_flip(tf.constant(images), tf.constant(seed)).numpy()
    return ci.random_crop(tf.constant(images), tf.constant(seed), 4).numpy()


@pytest.mark.points(2)
def test_flip_is_an_exact_mirror_of_about_half_the_images():
    images = _images(64)
    out = ci.random_flip(tf.constant(images), tf.constant([1, 2])).numpy()
    mirrored = [np.array_equal(o, i[:, ::-1]) for o, i in zip(out, images)]
    unchanged = [np.array_equal(o, i) for o, i in zip(out, images)]
    assert all(m or u for m, u in zip(mirrored, unchanged)), (
        "a flipped image is not an exact mirror"
    )
    assert 10 < sum(mirrored) < 54, (
        f"{sum(mirrored)} of 64 images mirrored; expected about half (each with probability 1/2)"
    )


@pytest.mark.points(2)
def test_crop_is_a_window_of_the_padded_image_at_a_random_offset():
    pad, images = 4, _images(32)
    out = ci.random_crop(tf.constant(images), tf.constant([5, 6]), pad).numpy()
    assert out.shape == images.shape, (
        f"the crop keeps the image size {images.shape}, not {out.shape}"
    )
    offsets = set(_crop_offsets(out, images, pad))
    assert len(offsets) > 5, (
        f"{len(offsets)} different offsets in 32 images: each image needs its own offset"
    )


# 64 images and pad 2: five offsets per dimension, each missed by chance with probability (4/5)^64 <
# 1e-6 (and the seeds are fixed: the result is the same on every run).
@pytest.mark.points(1)
def test_crop_offsets_reach_both_edges_of_the_padding_in_both_dimensions():
    pad, images = 2, _images(64)
    expected = set(range(2 * pad + 1))
    for seed in ([5, 6], [7, 8]):
        out = ci.random_crop(tf.constant(images), tf.constant(seed), pad).numpy()
        offsets = _crop_offsets(out, images, pad)
        for axis, name in ((0, "row"), (1, "column")):
            seen = {offset[axis] for offset in offsets}
            missing = sorted(expected - seen)
            assert seen == expected, (
                f"{name} offsets seen with pad {pad}: {sorted(seen)}; expected every offset in "
                f"[0, 2 * pad]: {sorted(expected)}, both edges included (missing: {missing}); "
                f"draw each offset from 0 to 2 * pad inclusive (maxval = 2 * pad + 1)"
            )


@pytest.mark.points(1)
@pytest.mark.parametrize("kind", ["flip", "crop"])
def test_flip_and_crop_depend_on_the_seed_and_vary_between_images(kind):
    images = _images(64)
    first = _transform(kind, images, [3, 4])
    if kind == "flip":
        varied = sum(not np.array_equal(o, i) for o, i in zip(first, images))
        assert 0 < varied < 64, (
            f"random_flip mirrored {varied} of 64 images: the same for every image; "
            f"draw one random number per image, not one per batch"
        )
    else:
        varied = len(set(_crop_offsets(first, images, 4)))
        assert varied > 1, (
            f"random_crop used {varied} offset for all 64 images: the same for every image; "
            f"draw an offset per image, not one per batch"
        )
    np.testing.assert_array_equal(
        first,
        _transform(kind, images, [3, 4]),
        err_msg=f"random_{kind}: the same seed must give the same batch",
    )
    others = [
        seed
        for seed in ([3, 5], [4, 4], [11, 12])
        if np.array_equal(first, _transform(kind, images, seed))
    ]
    assert not others, (
        f"random_{kind} gave the same batch for seeds [3, 4] and {others}: draw the "
        f"randomness from the seed argument (tf.random.stateless_*(..., seed))"
    )


@pytest.mark.points(1)
def test_brightness_shifts_each_image_by_one_amount_in_range():
    images = tf.random.stateless_normal([16, 8, 8, 3], [0, 1])
    shift = (
        (ci.random_brightness(images, tf.constant([0, 2]), 0.3) - images).numpy().reshape(16, -1)
    )
    np.testing.assert_allclose(
        shift,
        shift[:, :1].repeat(shift.shape[1], 1),
        atol=1e-5,
        err_msg="one shift per image, the same for every pixel",
    )
    assert np.abs(shift[:, 0]).max() <= 0.3, (
        f"shifts up to {np.abs(shift[:, 0]).max():.3f}; max_delta is 0.3"
    )
    assert shift[:, 0].std() > 0.01, (
        f"the shifts hardly vary (std {shift[:, 0].std():.4f}): one per image"
    )


@pytest.mark.points(1)
def test_contrast_scales_each_image_about_its_mean():
    images = tf.random.stateless_normal([16, 8, 8, 3], [0, 1]) + 2
    out = ci.random_contrast(images, tf.constant([0, 4]), 0.5).numpy()
    x = images.numpy()
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    factors = ((out - mean) * (x - mean)).sum(axis=(1, 2, 3)) / ((x - mean) ** 2).sum(
        axis=(1, 2, 3)
    )
    np.testing.assert_allclose(
        out,
        (x - mean) * factors[:, None, None, None] + mean,
        atol=1e-5,
        err_msg="each image is (image - its mean) * one factor + its mean",
    )
    assert 0.5 <= factors.min(), (
        f"smallest factor {factors.min():.3f}; max_change 0.5: at least 0.5"
    )
    assert factors.max() <= 1.5, f"largest factor {factors.max():.3f}; max_change 0.5: at most 1.5"
    assert factors.std() > 0.05, f"the factors hardly vary (std {factors.std():.4f}): one per image"


@pytest.mark.points(1)
def test_cutout_blanks_one_square_per_image():
    out = ci.random_cutout(tf.constant(_images(16)), tf.constant([0, 3]), 8).numpy()
    zeroed = (out == 0).all(axis=-1)  # [16, 32, 32]
    inside = 0
    for hole in zeroed:
        rows, cols = np.flatnonzero(hole.any(axis=1)), np.flatnonzero(hole.any(axis=0))
        assert 0 < len(rows) <= 8, f"the square spans {len(rows)} rows: at most 8, and never none"
        assert 0 < len(cols) <= 8, (
            f"the square spans {len(cols)} columns: at most 8, and never none"
        )
        assert hole.sum() == len(rows) * len(cols), "the blanked pixels form one rectangle"
        if 0 < rows.min() and rows.max() < 31 and 0 < cols.min() and cols.max() < 31:
            assert (len(rows), len(cols)) == (8, 8), (
                f"away from the edges, the square is exactly 8x8, not {len(rows)}x{len(cols)}"
            )
            inside += 1
    assert inside > 3, "most squares lie inside the image"
    assert len({tuple(np.argwhere(h)[0]) for h in zeroed}) > 5, (
        "the square moves from image to image"
    )


@pytest.mark.points(1)
def test_the_pipeline_augments_training_batches_reproducibly(sample_dir):
    def first_batch(seed, **augmentation):
        ds = ci.make_dataset(sample_dir, "train", batch_size=32, seed=seed, **augmentation)
        return next(iter(ds))[0].numpy()

    plain, flipped = first_batch(7), first_batch(7, flip=True, crop=4)
    np.testing.assert_array_equal(
        flipped, first_batch(7, flip=True, crop=4), err_msg="same seed, same batch"
    )
    assert not np.array_equal(flipped, first_batch(8, flip=True, crop=4)), (
        "another seed, another batch"
    )
    assert not np.array_equal(plain, flipped), "flip and crop change the training batch"
    validation = next(
        iter(
            ci.make_dataset(sample_dir, "validation", val_size=50, batch_size=50, flip=True, crop=4)
        )
    )[0].numpy()
    np.testing.assert_array_equal(
        validation,
        next(iter(ci.make_dataset(sample_dir, "validation", val_size=50, batch_size=50)))[
            0
        ].numpy(),
        err_msg="validation batches are never augmented",
    )
