"""Tests of train.py's given code (not graded): the training step, the schedules and optimizers, and
whole runs on the real sample in tests/data: the run folder, the divergence guard, an exact resume
after a signal, --eval-only. (Every preset's run is checked too, on the solution, by the
instructors' tests.)"""

import csv
import signal
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import forking
import train
from helpers import check_run_folder, run_train
from plumbing import errors, options

REPO = Path(__file__).resolve().parent.parent
SMALL = [
    "--num-train-examples",
    "128",
    "--val-size",
    "64",
    "--batch-size",
    "64",
]  # 2 steps per epoch


# ----------------------------------------------------------------------------- the training step
def test_one_training_step_is_one_sgd_step_on_loss_plus_penalty():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,))
    outputs = keras.layers.Dense(3, kernel_regularizer=keras.regularizers.L2(0.1))(inputs)
    model = keras.Model(inputs, outputs)
    images = tf.random.stateless_normal((8, 6), [0, 1])
    labels = tf.constant([0, 1, 2, 0, 1, 2, 0, 1])
    loss_fn = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)
    before = [w.numpy() for w in model.trainable_weights]
    logits = model(images).numpy()
    expected_loss = np.mean(
        keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    )
    with (
        tf.GradientTape() as tape
    ):  # the step must descend on the smoothed loss plus the L2 penalty
        total = loss_fn(tf.one_hot(labels, 3), model(images)) + tf.add_n(model.losses)
    grads = [g.numpy() for g in tape.gradient(total, model.trainable_weights)]

    step = train.make_train_step(model, keras.optimizers.SGD(0.5), loss_fn)
    loss, correct = step(images, labels)
    assert float(loss) == pytest.approx(expected_loss, rel=1e-5), (
        "the plain cross-entropy, as validation's"
    )
    assert int(correct) == int(np.sum(np.argmax(logits, 1) == labels.numpy())), (
        "count correct predictions"
    )
    for weight, old, grad in zip(model.trainable_weights, before, grads):
        np.testing.assert_allclose(
            weight.numpy(),
            old - 0.5 * grad,
            rtol=1e-5,
            atol=1e-6,
            err_msg=f"{weight.name}: one SGD step is w - lr * d(loss + penalty)/dw",
        )


@pytest.mark.parametrize(
    "kind,checks",
    [
        ("constant", {0: 1.0, 50: 1.0, 99: 1.0}),
        ("step", {0: 1.0, 49: 1.0, 50: 0.1, 75: 0.01}),
        ("cosine", {0: 1.0, 50: 0.5, 100: 0.0}),
        ("onecycle", {0: 0.001, 25: 1.0, 62.5: 0.5, 100: 0.001}),
    ],
)
def test_learning_rate_schedules(kind, checks):
    # a run whose one-cycle warm-up (25%) is long enough to reach its peak: WARMUP_STEPS
    longer = train.WARMUP_STEPS * 4 / 100 if kind == "onecycle" else 1
    schedule = train.learning_rate_schedule(
        {"lr": 1.0, "lr_schedule": kind, "warmup_epochs": 0, "optimizer": "momentum"},
        10,
        round(100 * longer),
    )
    for step, expected in checks.items():
        step = step * longer
        assert float(schedule(step)) == pytest.approx(expected, abs=1e-6), f"{kind} at step {step}"


def test_a_short_one_cycle_run_peaks_lower_than_lr_climbing_no_faster_than_its_warmup_steps():
    config = {"lr": 0.1, "lr_schedule": "onecycle", "warmup_epochs": 0, "optimizer": "momentum"}
    short = train.learning_rate_schedule(config, 31, 124)  # 4 epochs of 31 steps: 500 images
    long = train.learning_rate_schedule(config, 35, 1050)  # 30 epochs of the mini set
    peak_step = 0.25 * 124
    expected_peak = 0.1 * peak_step / train.WARMUP_STEPS
    assert expected_peak > 0.1 * train.LOWEST_PEAK  # this run is above the lowest peak
    assert float(short(peak_step)) == pytest.approx(expected_peak, rel=1e-5)
    assert max(float(short(s)) for s in range(125)) <= expected_peak + 1e-9  # never above it
    assert float(long(0.25 * 1050)) == pytest.approx(0.1, rel=1e-5)  # a long run: the full peak
    # per step, the rate climbs no faster than from 0 to --lr in WARMUP_STEPS steps
    assert float(short(2)) - float(short(1)) == pytest.approx(0.1 / train.WARMUP_STEPS, rel=1e-3)


def test_the_shortest_one_cycle_run_still_peaks_at_the_lowest_fraction_of_lr():
    config = {"lr": 0.1, "lr_schedule": "onecycle", "warmup_epochs": 0, "optimizer": "momentum"}
    shortest = train.learning_rate_schedule(config, 7, 14)  # 2 epochs of 7 steps
    peak = 0.1 * train.LOWEST_PEAK  # not 0.1 * 3.5 / 60
    assert float(shortest(0.25 * 14)) == pytest.approx(peak, rel=1e-5)
    assert max(float(shortest(s)) for s in range(15)) <= peak + 1e-9


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "rmsprop", "adagrad", "adadelta"])
def test_a_short_run_of_an_adaptive_optimizer_keeps_its_peak(optimizer):
    # the stage presets (Adam at 1e-3): 2 epochs of 7 steps reach --lr at one-cycle's 25%
    config = {"lr": 1e-3, "lr_schedule": "onecycle", "warmup_epochs": 0, "optimizer": optimizer}
    short = train.learning_rate_schedule(config, 7, 14)
    assert float(short(0.25 * 14)) == pytest.approx(1e-3, rel=1e-5)
    assert float(short(0)) == pytest.approx(1e-6, rel=1e-3)  # from 0.1% of it, as a long run


@pytest.mark.parametrize(
    "num_train,min_steps,expected",
    [
        (500, 30, (16, 0.0125)),  # 31 steps an epoch
        (1000, 30, (32, 0.025)),
        (2000, 30, (64, 0.05)),
        (4577, 30, (128, 0.1)),  # the mini set's training split: as given
        (100, 30, (16, 0.0125)),  # no batch below 16, however few the steps
        (500, 0, (128, 0.1)),  # --min-epoch-steps 0: off
    ],
)
def test_a_small_training_set_gets_smaller_batches_with_the_learning_rate_scaled_alike(
    num_train, min_steps, expected
):
    config = {"batch_size": 128, "lr": 0.1, "min_epoch_steps": min_steps, "model": "cnn"}
    fitted = train.fit_batch_to_data(config, num_train)
    assert (fitted["batch_size"], fitted["lr"]) == pytest.approx(expected)
    again = train.fit_batch_to_data(fitted, num_train)  # as a resumed run reads its config back
    assert (again["batch_size"], again["lr"]) == (fitted["batch_size"], fitted["lr"])


@pytest.mark.parametrize(
    "num_train,expected",
    [
        (4577, (32, 0.025)),  # the mini archive's training split: 143 steps an epoch
        (2000, (16, 0.0125)),
        (45000, (128, 0.1)),  # CIFAR-10's training split: as given
        (54000, (128, 0.1)),  # Fashion-MNIST's
    ],
)
def test_the_tuned_recipe_halves_its_batch_on_a_few_thousand_images_only(num_train, expected):
    # Measured on the mini archive (docs/benchmarks.md): 16 epochs reach 73.2% validation
    # accuracy in batches of 128 and 76.0% in batches of 32, in the same time.
    config = options.resolve({}, train.DEFAULTS)
    fitted = train.fit_batch_to_data(config, num_train)
    assert (fitted["batch_size"], fitted["lr"]) == pytest.approx(expected)


def test_the_stage_presets_keep_their_batch_on_a_small_training_set():
    for name in ("linear", "mlp", "cnn", "cnn-bn", "cnn-strided", "cnn-large"):
        config = options.resolve({"preset": name}, train.DEFAULTS)
        assert train.fit_batch_to_data(config, 500)["batch_size"] == 128, name


@pytest.mark.parametrize(
    "total_steps,expected", [(3, 0.0), (20, 0.5), (62, 1 - 1 / 6.2), (1050, 1 - 1 / 105)]
)
def test_batch_norm_moving_averages_follow_a_short_run(total_steps, expected):
    inputs = keras.Input((4, 4, 2))
    x = keras.layers.BatchNormalization(momentum=0.9, name="a")(inputs)
    x = keras.layers.BatchNormalization(name="b")(x)  # Keras' default, 0.99
    model = keras.Model(inputs, x)
    train.follow_a_short_run(model, total_steps)
    a, b = model.get_layer("a").momentum, model.get_layer("b").momentum
    assert a == pytest.approx(min(0.9, expected))
    assert b == pytest.approx(min(0.99, expected))


LEARNING = dict(class_names=list("abcdefghij"), options={"val_size": 500})
GIVEN = {"lr": 0.1, "batch_size": 128}


def test_the_suggested_learning_rate_is_the_one_a_rerun_trains_with():
    # 1,000 images: the batch is halved twice (32) and the rate with it (0.025). The re-run the
    # warnings suggest must train at a tenth of that, not be halved twice again.
    config = {"batch_size": 128, "lr": 0.1, "min_epoch_steps": 30, "model": "cnn"}
    fitted = train.fit_batch_to_data(config, 1000)
    suggestion = train.smaller_lr(fitted)
    assert suggestion == "--lr 0.0025 --batch-size 32"
    rerun = {**config, "lr": 0.0025, "batch_size": 32}
    assert train.fit_batch_to_data(rerun, 1000)["lr"] == pytest.approx(0.0025)


def row_of(epoch, train_loss, val_accuracy=0.3):
    return dict(epoch=epoch, train_loss=train_loss, val_accuracy=val_accuracy)


def test_an_epoch_with_a_loss_far_above_ln_c_warns_in_one_line(capsys):
    train.check_learning(row_of(1, 15.9), 7, [], GIVEN, LEARNING)
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "warning: epoch 1's training loss 15.9 is far above ln(10) = 2.30, the loss of guessing: "
        "the learning rate may be too high (try --lr 0.01 --batch-size 128)"
    ]


def test_two_epochs_in_a_row_far_above_ln_c_stop_the_run():
    with pytest.raises(errors.DivergedError, match=r"stayed far above ln\(10\) = 2.30") as caught:
        train.check_learning(row_of(2, 6.0), 7, [row_of(1, 15.9)], GIVEN, LEARNING)
    stop = "15.9 at epoch 1, 6 at epoch 2; start a new run with --lr 0.01 --batch-size 128"
    assert stop in str(caught.value)
    assert (caught.value.epoch, caught.value.step) == (2, 7)
    # falling back towards ln(C) is learning: no stop, no warning
    train.check_learning(row_of(2, 3.0), 7, [row_of(1, 15.9)], GIVEN, LEARNING)


@pytest.mark.parametrize("accuracy,warned", [(0.104, True), (0.126, True), (0.14, False)])
def test_a_first_epoch_at_chance_says_so(capsys, accuracy, warned):
    # 500 validation images: guessing gives 10% +- 1.3% (one standard error)
    train.check_learning(row_of(1, 2.2, accuracy), 7, [], GIVEN, LEARNING)
    out = capsys.readouterr().out
    assert ("no better than guessing among 10 classes" in out) == warned, out
    train.check_learning(row_of(2, 2.2, 0.104), 7, [row_of(1, 2.2)], GIVEN, LEARNING)
    assert capsys.readouterr().out == ""  # only after the first epoch


def test_warmup_rises_linearly_to_the_peak():
    config = {"lr": 0.5, "lr_schedule": "constant", "warmup_epochs": 1}
    schedule = train.learning_rate_schedule(config, 10, 100)
    assert [round(float(schedule(s)), 6) for s in (0, 4, 9, 10)] == [0.05, 0.25, 0.5, 0.5]
    cosine = train.learning_rate_schedule(
        {"lr": 0.5, "lr_schedule": "cosine", "warmup_epochs": 1}, 10, 110
    )
    assert [round(float(cosine(s)), 6) for s in (0, 9, 10, 60, 110)] == [0.05, 0.5, 0.5, 0.25, 0.0]


@pytest.mark.parametrize(
    "name,cls,attrs",
    [
        ("sgd", keras.optimizers.SGD, {"momentum": 0.0}),
        ("momentum", keras.optimizers.SGD, {"momentum": 0.8, "nesterov": True}),
        ("adam", keras.optimizers.Adam, {"beta_1": 0.91, "epsilon": 1e-4}),
        ("adamw", keras.optimizers.AdamW, {"weight_decay": 5e-4}),
        ("rmsprop", keras.optimizers.RMSprop, {"momentum": 0.8}),
        ("adagrad", keras.optimizers.Adagrad, {"epsilon": 1e-4}),
        ("adadelta", keras.optimizers.Adadelta, {"epsilon": 1e-4}),
    ],
)
def test_optimizers_get_their_hyper_parameters(name, cls, attrs):
    config = {**train.DEFAULTS, "optimizer": name, "momentum": 0.8, "beta1": 0.91, "epsilon": 1e-4}
    optimizer = train.make_optimizer(config, 0.01)
    assert type(optimizer) is cls
    for attr, value in attrs.items():
        assert getattr(optimizer, attr) == pytest.approx(value), attr


def test_adamw_moves_weight_decay_from_the_loss_to_the_optimizer():
    for optimizer, has_l2 in (("adamw", False), ("adam", True)):
        config = options.resolve({"optimizer": optimizer, "weight_decay": 1e-3}, train.DEFAULTS)
        model = train.build_model(config, (32, 32, 3))
        model(tf.zeros((1, 32, 32, 3)))
        assert bool(model.losses) is has_l2, (
            f"{optimizer}: L2 terms in the loss: {bool(model.losses)}"
        )
    config = options.resolve(
        {"model": "mlp", "optimizer": "adamw", "hidden_units": (4,)}, train.DEFAULTS
    )
    model = train.build_model(config, (2, 2, 1))
    optimizer = train.make_optimizer(config, 0.01)
    optimizer.build(model.trainable_variables)
    decayed = [v.path for v in model.trainable_variables if optimizer._use_weight_decay(v)]
    assert decayed and all(path.endswith("kernel") for path in decayed), decayed


# ------------------------------------------------------------------------- whole runs on the sample
def test_default_cnn_end_to_end_and_eval_only(sample_dir, tmp_path, capsys):
    code, run_dir = run_train(
        sample_dir.parent, tmp_path, *SMALL, "--epochs", "2", "--widths", "8,16"
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "training on the CPU" in out and "TensorFlow 2." in out and "Param #" in out
    assert "128 training, 64 validation, 100 test images" in out
    assert f"run folder: {run_dir}" in out
    results = check_run_folder(run_dir, epochs=2)
    # --eval-only re-evaluates the saved model the way the run did, giving metrics.json's figure.
    assert train.main(["--eval-only", str(run_dir / "best.keras")]) == 0
    accuracy = results["test_accuracy"]
    assert (
        f"test accuracy {100 * accuracy:.2f}% ({round(accuracy * 100)}/100) with test-time flip"
        in capsys.readouterr().out
    )


@pytest.mark.parametrize("lr", ["1e12", "1e9"])
def test_a_diverging_loss_stops_the_run(sample_dir, tmp_path, capsys, lr):
    code, run_dir = run_train(
        sample_dir.parent,
        tmp_path,
        "--model",
        "mlp",
        "--optimizer",
        "sgd",
        "--lr",
        lr,
        "--val-size",
        "64",
        "--batch-size",
        "32",
        "--epochs",
        "2",
    )
    err = capsys.readouterr().err
    assert code == 1, err
    assert err.startswith("training diverged: the loss became"), err  # not a data problem
    assert f"--lr {float(lr) / 10:g}" in err and err.count("\n") == 1, err
    assert not (run_dir / "best.keras").exists(), "no model may be saved from a diverged run"


# 23 s; the default run keeps test_signals' bit-identical resume, -m faults 24 more
@pytest.mark.slow
@pytest.mark.skipif(not forking.can_fork, reason="needs os.fork on Linux")
def test_resume_after_a_signal_gives_identical_weights_and_rows(sample_dir, tmp_path):
    args = [
        "--data-dir",
        str(sample_dir.parent),
        "--run-dir",
        str(tmp_path),
        "--num-train-examples",
        "128",
        "--batch-size",
        "16",
        "--epochs",
        "2",
        "--widths",
        "8,16",
        "--dropout",
        "0.2",
        "--cutout",
        "8",
        "--deterministic",
    ]
    job = dict(root=str(REPO), cwd=str(tmp_path), module="train")
    whole, cut, resumed = forking.run_jobs(
        [
            {**job, "argv": [*args, "--name", "whole"]},
            {
                **job,
                "argv": [*args, "--name", "cut"],
                "fault": {"at": "step", "after": 8 + 3, "signal": 15},
            },
            {**job, "argv": ["--resume", str(tmp_path / "cut")]},
        ]
    )  # 8 steps per epoch: stopped in the second
    codes = (whole["code"], cut["code"], resumed["code"])
    assert codes == (0, 128 + signal.SIGTERM, 0), whole["output"][-3000:]
    assert "SIGTERM: saved a checkpoint at epoch 2, step 3. Resume with:" in cut["output"]
    assert f"python train.py --resume {tmp_path / 'cut'}" in cut["output"]
    assert "resuming from epoch 2, step 3" in resumed["output"]

    def final_weights(run):
        reader = tf.train.load_checkpoint(str(tmp_path / run / "checkpoints"))
        names = [k for k in reader.get_variable_to_shape_map() if k.startswith("model_variables")]
        return {k: reader.get_tensor(k) for k in names}

    whole, cut = final_weights("whole"), final_weights("cut")
    assert whole.keys() == cut.keys() and len(whole) > 10
    for key in whole:
        np.testing.assert_array_equal(whole[key], cut[key], err_msg=f"{key} differs after resume")
    rows = {
        run: list(csv.DictReader(open(tmp_path / run / "metrics.csv"))) for run in ("whole", "cut")
    }
    assert [r["epoch"] for r in rows["cut"]] == ["1", "2"]
    for key in (
        "train_loss",
        "train_accuracy",
        "val_loss",
        "val_accuracy",
    ):  # the resumed epoch's row too
        assert [r[key] for r in rows["cut"]] == [r[key] for r in rows["whole"]], key
