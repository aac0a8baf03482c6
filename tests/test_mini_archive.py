"""End-to-end checks on the real mini archive named by $CIFAR10_MINI_ARCHIVE (5,085 training and 500
test images of the official CIFAR-10 files). Not graded; skipped with a one-line reason when the
variable is unset (students do not have the archive), failed instead under CI=true."""

import numpy as np
import pytest

import cifar10_input as ci
import numpy_mlp as nm

MINI_TRAIN_COUNTS = [517, 524, 490, 493, 537, 475, 503, 516, 529, 501]
MINI_TEST_COUNTS = [57, 41, 51, 49, 40, 48, 54, 47, 57, 56]


def test_mini_archive_counts_and_first_labels(mini_archive, tmp_path):
    folder = ci.maybe_download_and_extract(
        tmp_path, mini_archive.resolve().as_uri()
    )  # a file:// URL
    train_images, train_labels = ci.load_split(folder, "train")
    test_images, test_labels = ci.load_split(folder, "test")
    assert len(train_labels) == 5085 and len(test_labels) == 500
    assert np.bincount(train_labels, minlength=10).tolist() == MINI_TRAIN_COUNTS
    assert np.bincount(test_labels, minlength=10).tolist() == MINI_TEST_COUNTS
    # The official data_batch_1.bin starts with frog, truck, truck, deer, automobile, ...
    assert train_labels[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    assert 100 < train_images.mean() < 150, "real photos average mid-grey"


@pytest.mark.slow
def test_numpy_net_tuned_beats_the_handout_defaults_on_validation(mini_dir):
    data = nm.load_flat(mini_dir)
    _, default = nm.train_setting(data, {**nm.HANDOUT_DEFAULTS, "num_iters": 400})
    _, tuned = nm.train_setting(data, {**nm.TUNED, "num_iters": 400})
    default_acc, tuned_acc = default["val_acc_history"][-1], tuned["val_acc_history"][-1]
    # After 400 iterations, seeds 0-4 on the mini archive: defaults 8.9-13.4%, tuned 38.0-41.9% (at
    # least 24.6 points apart); the test asks for 15.
    assert tuned_acc > default_acc + 0.15, f"tuned {tuned_acc:.1%} vs default {default_acc:.1%}"
