"""Grading tests, the training stage: augmentation (cifar10_input.augment_batch), the training step
(train.make_train_step), and train.py end to end: the run folder, presets, the NaN guard, resume."""

import csv
import json
import math
import signal
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import cifar10_input as ci
import train
from conftest import known_images, raise_if_not_implemented, run_train

STAGE = "training"
REPO = Path(__file__).resolve().parent.parent
SMALL = ["--num-train-examples", "128", "--val-size", "64", "--batch-size", "64"]  # 2 steps per epoch


# ----------------------------------------------------------------------------- augmentation
@pytest.mark.points(2)
def test_flip_is_an_exact_mirror():
    images = tf.constant(known_images(64).transpose(0, 2, 3, 1), tf.float32)
    out = ci.augment_batch(images, tf.constant([1, 2]), flip=True).numpy()
    mirrored = [np.array_equal(o, i[:, ::-1]) for o, i in zip(out, images.numpy())]
    unchanged = [np.array_equal(o, i) for o, i in zip(out, images.numpy())]
    assert all(m or u for m, u in zip(mirrored, unchanged)), "a flipped image is not an exact mirror"
    assert 10 < sum(mirrored) < 54, f"{sum(mirrored)} of 64 flipped; expected about half"


@pytest.mark.points(2)
def test_crop_shifts_by_at_most_the_padding():
    pad = 4
    images = known_images(32).transpose(0, 2, 3, 1).astype(np.float32) + 1  # no zero pixels
    out = ci.augment_batch(tf.constant(images), tf.constant([5, 6]), crop=pad).numpy()
    assert out.shape == images.shape
    padded = np.pad(images, [(0, 0), (pad, pad), (pad, pad), (0, 0)])
    shifts = set()
    for o, p in zip(out, padded):
        found = [(dy, dx) for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)
                 if np.array_equal(o, p[dy:dy + 32, dx:dx + 32])]
        assert found, "a cropped image is not a shifted window of the padded image"
        shifts.add(found[0])
    assert len(shifts) > 5, "crop offsets should vary between images"


@pytest.mark.points(2)
def test_brightness_contrast_and_cutout_stay_in_range():
    images = tf.random.stateless_normal([16, 32, 32, 3], [0, 1])
    bright = ci.augment_batch(images, tf.constant([0, 2]), brightness=0.3).numpy() - images.numpy()
    per_image = bright.reshape(16, -1)
    np.testing.assert_allclose(per_image, per_image[:, :1].repeat(per_image.shape[1], 1), atol=1e-5)
    assert np.abs(per_image[:, 0]).max() <= 0.3 and np.abs(per_image[:, 0]).std() > 0.01

    cut = ci.augment_batch(images + 10, tf.constant([0, 3]), cutout=8).numpy()
    zeroed = (cut == 0).all(axis=-1).reshape(16, -1).sum(axis=1)
    assert zeroed.max() <= 64 and zeroed.max() > 0, "cutout blanks at most one 8x8 square per image"


@pytest.mark.points(1)
def test_same_seed_same_augmentation(mini_dir):
    def first_batch(seed):
        ds = ci.make_dataset(mini_dir, "train", batch_size=32, flip=True, crop=4, cutout=8, seed=seed)
        return next(iter(ds))[0].numpy()

    np.testing.assert_array_equal(first_batch(7), first_batch(7))
    assert not np.array_equal(first_batch(7), first_batch(8))



# ----------------------------------------------------------------------------- the training step
@pytest.mark.points(3)
def test_one_training_step_is_one_sgd_step_on_loss_plus_penalty():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,))
    outputs = keras.layers.Dense(3, kernel_regularizer=keras.regularizers.L2(0.1))(inputs)
    model = keras.Model(inputs, outputs)
    images = tf.random.stateless_normal((8, 6), [0, 1])
    labels = tf.constant([0, 1, 2, 0, 1, 2, 0, 1])
    loss_fn = keras.losses.CategoricalCrossentropy(from_logits=True)
    before = [w.numpy() for w in model.trainable_weights]
    logits = model(images).numpy()
    expected_loss = float(loss_fn(tf.one_hot(labels, 3), logits))
    with tf.GradientTape() as tape:  # the step must descend on the loss plus the L2 penalty
        total = loss_fn(tf.one_hot(labels, 3), model(images)) + tf.add_n(model.losses)
    grads = [g.numpy() for g in tape.gradient(total, model.trainable_weights)]

    step = train.make_train_step(model, keras.optimizers.SGD(0.5), loss_fn)
    loss, correct = step(images, labels)
    assert float(loss) == pytest.approx(expected_loss, rel=1e-5), "return the mean loss, without the penalty"
    assert int(correct) == int(np.sum(np.argmax(logits, 1) == labels.numpy())), "count correct predictions"
    for weight, old, grad in zip(model.trainable_weights, before, grads):
        np.testing.assert_allclose(weight.numpy(), old - 0.5 * grad, rtol=1e-5, atol=1e-6,
                                   err_msg=f"{weight.name}: one SGD step is w - lr * d(loss + penalty)/dw")


# ----------------------------------------------------------------------------- end to end
def _check_run_folder(run_dir: Path, mini_dir: Path, epochs: int) -> None:
    expected = ["config.json", "metrics.csv", "metrics.json", "best.keras", "learning_curves.png",
                "confusion_matrix.png", "confusion_matrix.csv", "per_class_accuracy.png", "confident_mistakes.png"]
    missing = [f for f in expected if not (run_dir / f).is_file()]
    assert not missing, f"run folder lacks {missing}"
    assert list((run_dir / "tensorboard" / "train").glob("events.out.tfevents.*")), "no TensorBoard events"
    assert (run_dir / "checkpoints" / "checkpoint").is_file(), "no checkpoint for --resume"

    config = json.loads((run_dir / "config.json").read_text())
    assert config["versions"]["tensorflow"] == tf.__version__ and "git_commit" in config
    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == list(range(1, epochs + 1)), "one metrics.csv row per epoch"
    for row in rows:
        assert 0 <= float(row["train_accuracy"]) <= 1 and math.isfinite(float(row["train_loss"]))
        assert float(row["weight_penalty"]) > 0 and float(row["images_per_second"]) > 0

    with open(run_dir / "confusion_matrix.csv") as f:
        matrix = np.array([[int(v) for v in line.split(",")[1:]] for line in list(f)[1:]])
    assert matrix.shape == (10, 10) and matrix.sum() == 500, "the confusion matrix must cover the 500 test images"

    # test_accuracy must equal a recomputation from the saved model (with the same test-time flip).
    results = json.loads((run_dir / "metrics.json").read_text())
    options = config["options"]
    model = keras.models.load_model(run_dir / "best.keras")
    test = ci.make_dataset(mini_dir, "test", batch_size=100, val_size=options["val_size"] or 508,
                           num_train_examples=options["num_train_examples"], seed=options["seed"])
    correct = 0
    for images, labels in test:
        logits = model(images, training=False)
        if options["tta"]:
            logits = (logits + model(tf.reverse(images, axis=[2]), training=False)) / 2
        correct += int(np.sum(np.argmax(logits, 1) == labels.numpy()))
    assert abs(results["test_accuracy"] - correct / 500) <= 1 / 500, "at most one near-tie may differ"
    assert np.trace(matrix) == round(results["test_accuracy"] * 500)



@pytest.mark.points(3)
def test_default_cnn_end_to_end(mini_dir, tmp_path, capsys):
    code, run_dir = run_train(mini_dir, tmp_path, *SMALL, "--epochs", "2")
    out = capsys.readouterr().out
    assert code == 0
    assert "training on the CPU" in out and "TensorFlow 2." in out and "Total params" in out
    assert "128 training, 64 validation, 500 test images" in out
    assert f"run folder: {run_dir}" in out
    _check_run_folder(run_dir, mini_dir, epochs=2)
    # --eval-only re-evaluates the saved model the way the run did, giving metrics.json's figure.
    assert train.main(["--eval-only", str(run_dir / "best.keras"), "--data-dir", str(mini_dir.parent)]) == 0
    accuracy = json.loads((run_dir / "metrics.json").read_text())["test_accuracy"]
    assert f"test accuracy {100 * accuracy:.2f}% ({round(accuracy * 500)}/500) with test-time flip" in \
        capsys.readouterr().out


@pytest.mark.points(1)
@pytest.mark.slow
@pytest.mark.parametrize("preset", [p for p in train.PRESETS if p != "tuned"])
def test_each_preset_end_to_end(mini_dir, tmp_path, preset):
    code, run_dir = run_train(mini_dir, tmp_path, "--preset", preset, *SMALL, "--epochs", "1")
    assert code == 0
    _check_run_folder(run_dir, mini_dir, epochs=1)
    assert json.loads((run_dir / "config.json").read_text())["options"]["preset"] == preset


@pytest.mark.points(1)
def test_absurd_learning_rate_triggers_the_nan_guard(mini_dir, tmp_path, capsys):
    code, run_dir = run_train(mini_dir, tmp_path, "--model", "mlp", "--optimizer", "sgd", "--lr", "1e12",
                         "--num-train-examples", "512", "--val-size", "64", "--epochs", "2")
    err = capsys.readouterr().err
    assert code == 1
    assert "the loss became nan" in err or "the loss became inf" in err
    assert "try --lr 1e+11" in err
    assert not (run_dir / "best.keras").exists(), "no model may be saved from a diverged run"


@pytest.mark.points(2)
@pytest.mark.slow
def test_resume_after_a_signal_gives_identical_weights(mini_dir, tmp_path):
    args = [sys.executable, str(REPO / "train.py"), "--data-dir", str(mini_dir.parent), "--run-dir", str(tmp_path),
            "--num-train-examples", "512", "--val-size", "64", "--batch-size", "16", "--epochs", "2",
            "--widths", "8,16", "--dropout", "0.2", "--cutout", "8", "--deterministic"]
    whole = subprocess.run([*args, "--name", "whole"], capture_output=True, text=True, cwd=tmp_path)
    raise_if_not_implemented(whole.returncode, whole.stderr)
    assert whole.returncode == 0, whole.stderr[-2000:]

    child = subprocess.Popen([*args, "--name", "cut"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             cwd=tmp_path)
    for line in child.stdout:  # interrupt early in the second epoch
        if line.startswith("epoch 2/2 ["):
            child.send_signal(signal.SIGTERM)
            break
    output = child.communicate(timeout=120)[0]
    assert child.returncode == 128 + signal.SIGTERM, output
    assert "SIGTERM: saved a checkpoint at epoch 2" in output
    assert f"python train.py --resume {tmp_path / 'cut'}" in output

    resumed = subprocess.run([sys.executable, str(REPO / "train.py"), "--resume", str(tmp_path / "cut")],
                             capture_output=True, text=True, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from epoch 2, step" in resumed.stdout

    def final_weights(run):
        reader = tf.train.load_checkpoint(str(tmp_path / run / "checkpoints"))
        return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map() if k.startswith("model_variables")}
    whole, cut = final_weights("whole"), final_weights("cut")
    assert whole.keys() == cut.keys() and len(whole) > 10
    for key in whole:
        np.testing.assert_array_equal(whole[key], cut[key], err_msg=f"{key} differs after resume")
    rows = list(csv.DictReader(open(tmp_path / "cut" / "metrics.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"]


@pytest.mark.points(1)
def test_adamw_moves_weight_decay_from_the_loss_to_the_optimizer():
    config = train.resolve_config({"optimizer": "adamw", "weight_decay": 1e-3})
    model = train.build_model(config, (32, 32, 3))
    model(tf.zeros((1, 32, 32, 3)))
    assert not model.losses, "with adamw the decay is decoupled, not an L2 loss term"
    config = train.resolve_config({"optimizer": "adam", "weight_decay": 1e-3})
    model = train.build_model(config, (32, 32, 3))
    model(tf.zeros((1, 32, 32, 3)))
    assert model.losses
