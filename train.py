"""Train an image classifier: `python train.py --model cnn` (CIFAR-10; or --dataset mnist).

Read it top to bottom: the options and their defaults, the course's recipes (the stage presets and
the per-dataset rules), the model, the optimizer and its schedule, the training step, evaluation,
the training loop (one function: epochs, steps, validation, checkpoint, logs), main. Every run
leaves a folder runs/NAME/ with config.json, metrics.csv and .json, the best model (best.keras),
checkpoints/, TensorBoard logs (tb/) and plots. Ctrl-C (or SIGTERM) saves a checkpoint and prints
the command that resumes the run. The bookkeeping a student need not read (the command line,
downloads, run folders, checkpoints, progress bar, TensorBoard, the entry point) is in plumbing/.
--dataset fashion-mnist trains on Fashion-MNIST.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

from plumbing import entry, options

# ----------------------------------------------------------------------------- the options
# Every option: its default, what it does (--help shows these), and what values it may take. The
# defaults are the tuned recipe, chosen on the validation split (bench/accuracy.py compares it with
# the classic Keras CNN). A --preset (a course stage: python train.py --list-presets) overrides some
# of them; flags override both. The model options (--widths, --dropout, ...) are the builders'
# keyword arguments, with the builders' defaults (listed in plumbing/options.py).
Flag = options.Flag
MAX_IMAGE_SIZE = 128  # 4x CIFAR-10's side; larger batches of activations no longer fit in memory
MAX_BRIGHTNESS = 5.0  # in pixel standard deviations: a larger shift leaves nothing of the image
POSITIVE = ("be positive", lambda value: value > 0)
AT_LEAST_0 = ("be >= 0", lambda value: value >= 0)
FRACTION = ("be in [0, 1)", lambda value: 0 <= value < 1)
FLAGS = {
    "": dict(model=Flag("cnn", "which model file to train", choices=("linear", "mlp", "cnn"))),
    "data and augmentation (training batches only)": dict(
        dataset=Flag("cifar10", "which dataset", choices=("cifar10", "mnist", "fashion-mnist")),
        data_dir=Flag(None, "data folder", kind=str, shown="$CIFAR10_DATA_DIR or ./data"),
        data_url=Flag(
            None,
            "where to get the data: URL, file:// or path",
            kind=str,
            shown="the official source",
        ),
        num_train_examples=Flag(
            None, "train on this many examples", rule=POSITIVE, kind=int, shown="all"
        ),
        val_size=Flag(
            None,
            "examples held out for validation",
            rule=AT_LEAST_0,
            kind=int,
            shown="10% of the training files",
        ),
        image_size=Flag(
            None,
            "resize images to this side",
            rule=(
                f"be between 8 and {MAX_IMAGE_SIZE}",
                lambda side: 8 <= side <= MAX_IMAGE_SIZE,
            ),
            kind=int,
            shown="the dataset's own",
        ),
        flip=Flag(True, "random horizontal flips"),
        crop=Flag(
            4,
            "pad by N pixels and crop back randomly; 0 = off",
            rule=("be between 0 and 16 (pixels of padding)", lambda crop: 0 <= crop <= 16),
        ),
        brightness=Flag(
            0.0,
            "random brightness shift up to this",
            rule=(
                f"be between 0 and {MAX_BRIGHTNESS:g} (pixel standard deviations)",
                lambda shift: 0 <= shift <= MAX_BRIGHTNESS,
            ),
        ),
        contrast=Flag(0.0, "random contrast factor 1 +- this", rule=FRACTION),
        cutout=Flag(0, "blank a random square of this side; 0 = off", rule=AT_LEAST_0),
    ),
    "optimisation": dict(
        optimizer=Flag(
            "momentum",  # SGD with Nesterov momentum
            "the optimizer",
            choices=("sgd", "momentum", "adam", "adamw", "rmsprop", "adagrad", "adadelta"),
        ),
        lr=Flag(0.1, "peak learning rate", rule=POSITIVE),
        momentum=Flag(0.9, "for momentum and rmsprop", rule=FRACTION),
        beta1=Flag(0.9, "Adam/AdamW beta_1", rule=FRACTION),
        beta2=Flag(0.999, "Adam/AdamW beta_2", rule=FRACTION),
        epsilon=Flag(1e-7, "Adam/AdamW/RMSprop/Adagrad/Adadelta epsilon", rule=POSITIVE),
        lr_schedule=Flag(
            "onecycle",
            "how the learning rate changes",
            choices=("constant", "step", "cosine", "onecycle"),
        ),
        warmup_epochs=Flag(0.0, "linear warm-up before the schedule", rule=AT_LEAST_0),
        weight_decay=Flag(
            5e-4, "L2 strength on kernels; decoupled decay with adamw", rule=AT_LEAST_0
        ),
        label_smoothing=Flag(0.1, "for the loss", rule=FRACTION),
        batch_size=Flag(128, "examples per step", rule=POSITIVE),
        min_epoch_steps=Flag(
            128,
            "on a small training set, halve the batch (and --lr) down to 16 until an epoch "
            "has this many steps; 0 = off",
            rule=AT_LEAST_0,
        ),
        epochs=Flag(30, "passes over the training set", rule=POSITIVE),
        steps=Flag(
            None,
            "train for this many steps instead of whole epochs",
            rule=POSITIVE,
            kind=int,
            shown="None",
        ),
        tta=Flag(True, "test-time flip: average predictions with the mirror image"),
    ),
    "machine and run": dict(
        device=Flag(
            "auto", "auto: the GPU when TensorFlow sees one", choices=("auto", "cpu", "gpu")
        ),
        mixed_precision=Flag(
            None,
            "16-bit compute: float16 on a GPU, bfloat16 on a CPU that has it",
            kind=bool,
            shown="the CNN on a CPU with bfloat16 instructions",
        ),
        xla=Flag(False, "compile the training step with XLA (slower on CPUs)"),
        seed=Flag(
            0,
            "seed of every random choice",
            rule=(f"be between 0 and {2**31 - 1}", lambda seed: 0 <= seed < 2**31),
        ),
        deterministic=Flag(False, "deterministic ops: reproducible, somewhat slower"),
        run_dir=Flag("runs", "parent folder of runs"),
        name=Flag(None, "run folder name", kind=str, shown="PRESET-MMDD-HHMMSS"),
    ),
}

# ----------------------------------------------------------------------------- the course's recipes
# The course's stages. Each preset changes only what differs from the defaults (the tuned recipe);
# stage presets train with Adam at 1e-3, as the handouts do, without augmentation (turn it on with
# --flip --crop 4), so that each stage runs with only its own code written, and with batches of 128
# whatever the training set's size (min_epoch_steps=0: the handouts' setting).
STAGE_TRAINING = dict(optimizer="adam", lr=1e-3, flip=False, crop=0, min_epoch_steps=0)
PRESETS = {
    "linear": dict(
        model="linear", **STAGE_TRAINING, weight_decay=0.0, label_smoothing=0.0, tta=False
    ),
    "mlp": dict(model="mlp", **STAGE_TRAINING, weight_decay=1e-4, label_smoothing=0.0, tta=False),
    "cnn": dict(model="cnn", **STAGE_TRAINING, widths=(32, 64), batch_norm=False, dense_units=256),
    "cnn-bn": dict(
        model="cnn", **STAGE_TRAINING, widths=(32, 64), batch_norm=True, dense_units=256
    ),
    "cnn-strided": dict(
        model="cnn",
        **STAGE_TRAINING,
        widths=(32, 64),
        batch_norm=True,
        downsample="stride",
        dense_units=256,
    ),
    "cnn-large": dict(
        model="cnn",
        **STAGE_TRAINING,
        widths=(64, 128, 256),
        batch_norm=True,
        dropout=0.25,
        dense_units=512,
    ),
    "tuned": dict(model="cnn"),
}
PRESET_OF_MODEL = {"linear": "linear", "mlp": "mlp", "cnn": "tuned"}  # --model X without --preset
# Where a dataset needs other defaults: digits are not mirrored (a mirrored 2 is no 2), and 28x28
# images get a 2-pixel crop padding. Applied unless the flag is given.
DATASET_ADJUSTMENTS = {"mnist": dict(flip=False, tta=False, crop=2), "fashion-mnist": dict(crop=2)}
# The tuned recipe on the 60,000-image 28x28 datasets: one convolution per stage and 16 epochs,
# chosen on Fashion-MNIST's validation split among the settings that train in no more time than
# the classic Keras CNN it is measured against (bench/fashion_mnist.py: 0.91x its time on a Zen 3).
TUNED_28X28 = dict(convs_per_stage=1, epochs=16)

DEFAULTS = options.table(
    FLAGS,
    presets=PRESETS,
    preset_of_model=PRESET_OF_MODEL,
    dataset_rules=DATASET_ADJUSTMENTS,
    tuned_28x28=TUNED_28X28,
)
EXPLODED = 100.0  # a mean loss above this (ln 10 = 2.3 at the start) means training has diverged
# Short runs. With plain or momentum SGD, one-cycle never climbs to its peak faster than over this
# many steps: a run of a few dozen steps peaks lower, as a few steps at 0.1 would throw the weights
# far from anything learnt; but never below a fraction of --lr, or the shortest runs barely move
# (both measured on the mini CIFAR-10's 1-3 epochs of 500-2,000 images: docs/benchmarks.md).
# SGD's step is the rate times the gradient, large at the start; the adaptive optimizers (Adam and
# the others) scale each weight's step to about the rate itself, so their runs (the stage presets:
# Adam at 1e-3) keep the peak however short.
WARMUP_STEPS = 60
LOWEST_PEAK = 0.3
SLOW_START_OPTIMIZERS = ("sgd", "momentum")
# Batch norm's moving averages, used at validation and test, average over about 1 / (1 - momentum)
# steps; a run of few steps makes them follow its last tenth, not its random start.
BATCH_NORM_WINDOW = 0.1

# `python train.py --help` and usage errors are answered here, before TensorFlow loads (seconds).
entry.answer_early(__name__, DEFAULTS)

import keras
import numpy as np
import tensorflow as tf

import cifar10_input
import compare
import plots
from cnn import build_cnn
from linear_model import build_linear_model, weight_penalty
from mlp import build_mlp
from plumbing import checkpoint, errors, logs, runs, signals

BUILDERS = {"linear": build_linear_model, "mlp": build_mlp, "cnn": build_cnn}


# ---------------------------------------------------------------------- the model and the optimizer
def build_model(
    config: dict, input_shape: tuple[int, int, int], num_classes: int = 10
) -> keras.Model:
    """Calls the chosen builder with the options the config gives it. With adamw, weight decay
    belongs to the optimizer (decoupled) instead of being an L2 term in the loss."""
    builder = BUILDERS[config["model"]]
    names = builder.__kwdefaults__  # its keyword-only options (after the *), with their defaults
    model_options = {name: config[name] for name in names if name in config}
    if config["optimizer"] == "adamw":
        model_options["weight_decay"] = 0.0
    return builder(input_shape, num_classes, **model_options)


class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """From 0.1% of the peak linearly up to it over the first 25% of the steps (a warm-up of its
    own), then linearly down to 0.1% of it. (learning_rate_schedule lowers the peak of an SGD run
    too short to warm up over WARMUP_STEPS, down to LOWEST_PEAK of --lr.)"""

    def __init__(self, peak: float, total_steps: int):
        self.peak, self.total_steps = peak, max(total_steps, 1)

    def __call__(self, step):
        progress = keras.ops.cast(step, "float32") / self.total_steps
        rate = keras.ops.where(progress < 0.25, progress / 0.25, (1 - progress) / 0.75)
        return self.peak * keras.ops.clip(rate, 1e-3, 1.0)


class WarmUp(keras.optimizers.schedules.LearningRateSchedule):
    """Rises linearly to the peak over the first `steps` steps, then follows `after` (shifted by
    `steps`)."""

    def __init__(self, after, peak: float, steps: int):
        self.after, self.peak, self.steps = after, peak, steps

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        later = self.after(keras.ops.maximum(step - self.steps, 0))
        return keras.ops.where(step < self.steps, self.peak * (step + 1) / self.steps, later)


def learning_rate_schedule(config: dict, steps_per_epoch: int, total_steps: int):
    """The --lr-schedule, peaking at --lr, after an optional linear warm-up (--warmup-epochs).

    Keras' own schedules where they exist (cosine to 0; step: x0.1 at 50% and 75%); one-cycle by
    hand."""
    peak, warmup = config["lr"], int(config["warmup_epochs"] * steps_per_epoch)
    steps = max(total_steps - warmup, 1)  # the steps after the warm-up
    schedules = keras.optimizers.schedules
    match config["lr_schedule"]:
        case "constant":
            schedule = schedules.PiecewiseConstantDecay([steps], [peak, peak])
        case "step":
            # Keras keeps a rate while the step it is given is <= its boundary, and it is given the
            # steps done so far (0 at the first step): with - 1, exactly the first half of the steps
            # run at the peak, and exactly a quarter at a tenth of it.
            boundaries = [steps // 2 - 1, 3 * steps // 4 - 1]
            schedule = schedules.PiecewiseConstantDecay(boundaries, [peak, peak / 10, peak / 100])
        case "cosine":
            schedule = schedules.CosineDecay(peak, steps)
        case "onecycle":
            warmup_steps = 0.25 * steps  # one-cycle's own warm-up
            fraction = 1.0  # of --lr, at the peak
            if config["optimizer"] in SLOW_START_OPTIMIZERS:
                fraction = min(1.0, max(LOWEST_PEAK, warmup_steps / WARMUP_STEPS))
            schedule = OneCycle(peak * fraction, steps)
    return WarmUp(schedule, peak, warmup) if warmup else schedule


def make_optimizer(config: dict, schedule):
    """The optimizer named by --optimizer, with its hyper-parameters."""
    optimizers, epsilon = keras.optimizers, config["epsilon"]
    adam_like = dict(beta_1=config["beta1"], beta_2=config["beta2"], epsilon=epsilon)
    match config["optimizer"]:
        case "sgd":
            return optimizers.SGD(schedule)
        case "momentum":
            return optimizers.SGD(schedule, momentum=config["momentum"], nesterov=True)
        case "adam":
            return optimizers.Adam(schedule, **adam_like)
        case "adamw":
            optimizer = optimizers.AdamW(schedule, weight_decay=config["weight_decay"], **adam_like)
            # decay the kernels only, as the other optimizers' L2 term does
            optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
            return optimizer
        case "rmsprop":
            return optimizers.RMSprop(schedule, momentum=config["momentum"], epsilon=epsilon)
        case "adagrad":
            return optimizers.Adagrad(schedule, epsilon=epsilon)
        case "adadelta":
            return optimizers.Adadelta(schedule, epsilon=epsilon)
    raise ValueError(f"unknown optimizer {config['optimizer']!r}")  # options.py checks the choices


# ----------------------------------------------------------------------------- the training step
def make_train_step(model, optimizer, loss_fn, *, xla: bool = False):
    """One optimisation step as a compiled tf.function: returns (mean cross-entropy, number
    correct).

    A custom step rather than model.fit (bench/train_speed.py measures both on the same model). The
    loss takes one-hot labels (for label smoothing); the weight penalties in model.losses are added;
    optimizer.scale_loss makes it work with mixed precision's loss scaling too. The cross-entropy it
    returns is without label smoothing, as evaluate() measures it, so the two curves compare.
    """

    @tf.function(jit_compile=xla, reduce_retracing=True)
    def train_step(images, labels):
        with tf.GradientTape() as tape:
            logits = tf.cast(model(images, training=True), tf.float32)
            loss = loss_fn(tf.one_hot(labels, logits.shape[-1]), logits)
            total = loss + tf.add_n(model.losses) if model.losses else loss
            scaled = optimizer.scale_loss(total)
        grads = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        predictions = tf.argmax(logits, 1, output_type=tf.int32)
        correct = tf.reduce_sum(tf.cast(tf.equal(predictions, labels), tf.float32))
        return tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
        ), correct

    return train_step


# ----------------------------------------------------------------------------- evaluation
def make_predict(model, tta: bool = False):
    """Inference-mode logits (float32) of a batch; with `tta`, averaged with those of the mirror
    images."""

    @tf.function(reduce_retracing=True)
    def predict(images):
        logits = tf.cast(model(images, training=False), tf.float32)
        if tta:
            logits = (
                logits + tf.cast(model(tf.reverse(images, axis=[2]), training=False), tf.float32)
            ) / 2
        return logits

    return predict


def evaluate(predict, dataset) -> tuple[float, float, np.ndarray, np.ndarray]:
    """One pass over `dataset`: mean cross-entropy (without label smoothing), accuracy, logits,
    labels."""
    batches = [(predict(images).numpy(), labels.numpy()) for images, labels in dataset]
    logits, labels = (
        np.concatenate([b[0] for b in batches]),
        np.concatenate([b[1] for b in batches]),
    )
    loss = (
        keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        .numpy()
        .mean()
    )
    return float(loss), float(np.mean(logits.argmax(1) == labels)), logits, labels


# ----------------------------------------------------------------------------- the training loop
def train(config: dict, run_dir: Path, data: dict) -> int:
    """Trains epoch by epoch, then tests the best epoch's model; returns the exit code.

    Each epoch: its steps, validation, one checkpoint (with metrics.csv, and best.keras if this
    epoch is the best so far) and the TensorBoard logs. A first Ctrl-C or SIGTERM lets the step (or
    the validation) finish, saves a checkpoint and prints the command that resumes the run from
    there."""
    batch_size = config["batch_size"]
    steps_per_epoch = data["num_train"] // batch_size
    total_steps = config["steps"] or steps_per_epoch * config["epochs"]
    epochs = math.ceil(total_steps / steps_per_epoch)
    model, optimizer, train_step = build_training(config, data, steps_per_epoch, total_steps)
    predict = make_predict(model)
    state = checkpoint.TrainingState(model, optimizer, run_dir)
    state.start()  # restores a stopped run (and says from where), or saves the first checkpoint
    board = logs.TensorBoard(run_dir, {**config, "parameters": model.count_params()}, data, model)
    batches = training_batches(config, data, state.epochs_done, state.steps_done)

    for epoch in range(state.epochs_done, epochs):
        steps = min(steps_per_epoch, total_steps - epoch * steps_per_epoch)  # --steps: the last
        later_steps = total_steps - (epoch + 1) * steps_per_epoch
        first = step = state.steps_done  # not 0 when resumed in the middle of the epoch
        progress = logs.EpochProgress(epoch + 1, epochs, steps, first, batch_size, later_steps)
        sums = state.unfinished_epoch()  # the epoch's loss, correct, images, seconds so far
        started = time.perf_counter()
        with signals.deferred() as stop:  # a first signal lets the step (or validation) finish
            for step in range(first + 1, steps + 1):
                images, labels = next(batches)
                step_started = time.perf_counter()
                loss, correct = train_step(images, labels)
                step_ms = 1000 * (time.perf_counter() - step_started)  # it returns when done
                sums.add(loss, correct, batch_size)
                global_step = epoch * steps_per_epoch + step
                due = progress.due(step) or board.due(global_step)  # by time; every 640 images
                if global_step == 1 or due or stop.requested:  # now and then:
                    check_loss(sums.mean_loss(batch_size), epoch, step, config, state)
                    progress.update(step, sums.mean_loss(batch_size), sums.accuracy())
                    board.step(
                        global_step,
                        loss=loss,
                        learning_rate=optimizer.learning_rate,
                        step_time_ms=step_ms,
                        weight_penalty=weight_penalty(model),
                        images=images if global_step == 1 else None,
                        labels=labels,
                    )
                if stop.requested:
                    break
            sums.seconds += time.perf_counter() - started
            if stop.requested:  # save where we are, with the epoch's sums so far
                state.save_mid_epoch(step, sums)
                where = f"at epoch {epoch + 1}, step {step}"
                return signals.stopped(stop.requested, run_dir, where)
            # The epoch's row (training, then validation) to TensorBoard, then to the checkpoint.
            row = epoch_row(epoch, step, sums, config, state, progress, optimizer)
            row.update(validate(predict, data))
            check_learning(row, step, state.rows, config, data)
            board.epoch((epoch + 1) * steps_per_epoch, row, histogram_weights(model, epoch, epochs))
            score = row["val_accuracy"] if data["val"] else row["train_accuracy"]  # picks the best
            state.save(new_best=state.finish_epoch(row, score))
        if stop.requested:  # during validation: stopped after it (the last epoch's test waits too)
            return signals.stopped(stop.requested, run_dir, f"after epoch {epoch + 1}")

    test_and_report(config, run_dir, data, state, board)  # the best epoch's model; the plots
    return 0


def build_training(config: dict, data: dict, steps_per_epoch: int, total_steps: int):
    """The model (its summary printed), the optimizer (built, to be checkpointed; its schedule is
    optimizer.learning_rate) and the compiled training step."""
    keras.utils.set_random_seed(config["seed"])
    model = build_model(config, data["shape"], len(data["class_names"]))
    follow_a_short_run(model, total_steps)
    model.summary(line_length=80, print_fn=lambda line, **_: print(line))
    schedule = learning_rate_schedule(config, steps_per_epoch, total_steps)
    optimizer = make_optimizer(config, schedule)
    if keras.mixed_precision.global_policy().compute_dtype == "float16":
        # float16's narrow range rounds small gradients to 0; bfloat16 has float32's range
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    optimizer.build(model.trainable_variables)
    train_step = make_train_step(model, optimizer, make_loss(config), xla=config["xla"])
    return model, optimizer, train_step


def follow_a_short_run(model: keras.Model, total_steps: int) -> None:
    """Makes batch norm's moving averages forget fast enough to follow a run of `total_steps` steps:
    they average over at most the last tenth of it (at least 1 step)."""
    momentum = max(0.0, 1 - 1 / (BATCH_NORM_WINDOW * total_steps))
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = min(layer.momentum, momentum)


def fit_batch_to_data(config: dict, num_train: int) -> dict:
    """--min-epoch-steps: a small training set gives few steps an epoch, too few for one-cycle and
    batch norm to work with and fewer updates than the data can teach; halving the batch (and the
    learning rate with it: the same step per example) gives more, at about the same cost per image
    on a CPU. A run's config.json keeps the batch and rate it trained with."""
    batch_size, lr = config["batch_size"], config["lr"]
    while batch_size > 16 and num_train // batch_size < config["min_epoch_steps"]:
        batch_size, lr = batch_size // 2, lr / 2
    if batch_size != config["batch_size"]:
        print(
            f"batch size {batch_size} and learning rate {lr:g}: {num_train:,} training images "
            f"give at least {config['min_epoch_steps']} steps an epoch (--min-epoch-steps)"
        )
    return {**config, "batch_size": batch_size, "lr": lr}


def histogram_weights(model: keras.Model, epoch: int, epochs: int) -> list | None:
    """The weights whose histograms TensorBoard gets after this epoch: about ten times a run, and
    after the last epoch (None: not this epoch)."""
    if epoch % max(epochs // 10, 1) == 0 or epoch == epochs - 1:
        return model.trainable_weights
    return None


def make_loss(config: dict):
    """Cross-entropy on one-hot labels, smoothed by --label-smoothing."""
    smoothing = config["label_smoothing"]
    return keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=smoothing)


def training_batches(config: dict, data: dict, epoch: int, step: int):
    """The augmented training batches from `step` of `epoch` on, shuffled by the epoch's own seed: a
    resumed run gets the very batches it would have had."""
    batches = cifar10_input.make_dataset(
        data["folder"],
        "train",
        **data["options"],
        **data["augmentation"],
        epoch=epoch,
        repeat=True,
        drop_remainder=True,
    )
    return iter(batches.skip(step))


def epoch_row(epoch, step, sums, config, state, progress, optimizer) -> dict:
    """The finished epoch's training metrics (checked for divergence; the progress bar closed)."""
    batch_size = config["batch_size"]
    train_loss, train_accuracy = sums.mean_loss(batch_size), sums.accuracy()
    check_loss(train_loss, epoch, step, config, state)
    progress.update(step, train_loss, train_accuracy, final=True)
    return dict(
        epoch=epoch + 1,
        train_loss=train_loss,
        train_accuracy=train_accuracy,
        learning_rate=float(optimizer.learning_rate),  # the schedule's, after the last step
        seconds=round(sums.seconds, 3),
        images_per_second=round(sums.images / sums.seconds, 1),
        weight_penalty=float(weight_penalty(state.model)),
    )


def validate(predict, data: dict) -> dict:
    """Loss and accuracy on the validation split (None without one: --val-size 0)."""
    if not data["val"]:
        return dict(val_loss=None, val_accuracy=None)
    loss, accuracy = evaluate(predict, data["val"])[:2]
    print(f"  validation: loss {loss:.4f}, accuracy {100 * accuracy:.1f}%")
    return dict(val_loss=loss, val_accuracy=accuracy)


def test_and_report(config: dict, run_dir: Path, data: dict, state, board) -> dict:
    """Evaluates the best epoch's model on the test set (with the test-time flip, if asked); writes
    the plots, then metrics.json, and prints the test accuracy."""
    rows, names = state.rows, data["class_names"]
    predict = make_predict(state.best_model, config["tta"])
    test_loss, test_accuracy, logits, labels = evaluate(predict, data["test"])
    probabilities = tf.nn.softmax(logits).numpy()
    matrix = plots.confusion_matrix(labels, probabilities.argmax(1), len(names))
    best = next(row for row in rows if row["epoch"] == int(state.best_epoch))
    per_class = plots.class_accuracy(matrix)
    results = dict(
        test_accuracy=test_accuracy,
        test_loss=test_loss,
        test_time_flip=config["tta"],
        best_epoch=best["epoch"],
        best_val_accuracy=best["val_accuracy"],
        epochs_run=len(rows),
        train_seconds=round(sum(r["seconds"] for r in rows), 1),
        train_examples=data["num_train"],
        parameters=state.model.count_params(),
        per_class_accuracy=dict(zip(names, per_class.round(4).tolist())),
    )
    board.results(len(rows), results)
    board.close()  # flushed now: a sweep's compare.py reads these logs next
    mean_std = logs.training_mean_std(data)  # for the feature maps of one test image
    plots.save_all(
        run_dir, rows, matrix, names, data["test_images"], labels, probabilities, mean_std
    )
    runs.write_results(run_dir, results)  # last: a run folder with metrics.json is finished
    flip = ", test-time flip" if config["tta"] else ""
    best = f"best epoch {results['best_epoch']}{flip}"
    accuracy = f"test accuracy {100 * results['test_accuracy']:.2f}%"
    print(f"{accuracy} ({best}); results and plots in {run_dir}")
    return results


def check_loss(loss: float, epoch: int, step: int, config: dict, state) -> None:
    """The divergence guard: a NaN, infinite or huge loss stops the run; the last good checkpoint
    stays. (A sweep records the run as diverged and goes on with the next: plumbing/sweep.py.)"""
    # Written `not loss < EXPLODED`, not `loss >= EXPLODED`: every comparison with NaN is False, so
    # this one is True for a NaN loss too.
    if not loss < EXPLODED:
        kept = "nothing was learnt"
        if state.epochs_done:
            kept = f"the last good checkpoint (end of epoch {state.epochs_done}) is kept"
        raise errors.DivergedError(
            f"the loss became {loss:.4g} at epoch {epoch + 1}, step {step}: the "
            f"learning rate is too high for this model; start a new run with "
            f"{smaller_lr(config)} ({kept})",
            loss=loss,
            epoch=epoch + 1,
            step=step,
        )


def smaller_lr(config: dict) -> str:
    """The flags of a re-run with a learning rate 10 times smaller. The batch size is named too:
    on a small training set the config holds the batch and rate after fit_batch_to_data, and a
    re-run given that batch trains at exactly the rate named (it is not halved again)."""
    return f"--lr {config['lr'] / 10:g} --batch-size {config['batch_size']}"


def check_learning(row: dict, step: int, rows: list[dict], config: dict, data: dict) -> None:
    """The end-of-epoch check. Guessing uniformly among C classes has a loss of ln(C) (2.30 for
    10): a training loss far above it means the run is diverging (two such epochs in a row stop
    it); a first epoch whose validation accuracy is no better than guessing learnt nothing."""
    classes = len(data["class_names"])
    epoch, loss, guess = row["epoch"], row["train_loss"], math.log(classes)
    lower = smaller_lr(config)
    if loss > 2 * guess:
        before = rows[-1]["train_loss"] if rows else 0.0  # the previous epoch's
        if before > 2 * guess:
            raise errors.DivergedError(
                f"the training loss stayed far above ln({classes}) = {guess:.2f}, the loss of "
                f"guessing: {before:.4g} at epoch {epoch - 1}, {loss:.4g} at epoch {epoch}; "
                f"start a new run with {lower}",
                loss=loss,
                epoch=epoch,
                step=step,
            )
        print(
            f"warning: epoch {epoch}'s training loss {loss:.4g} is far above ln({classes}) = "
            f"{guess:.2f}, the loss of guessing: the learning rate may be too high (try {lower})"
        )
    chance, count = 1 / classes, data["options"]["val_size"]
    at_chance = chance + 2 * math.sqrt(chance * (1 - chance) / max(count, 1))  # 2 std. errors
    if epoch == 1 and row["val_accuracy"] is not None and row["val_accuracy"] <= at_chance:
        print(
            f"warning: after epoch 1 the validation accuracy {100 * row['val_accuracy']:.1f}% is "
            f"no better than guessing among {classes} classes; if it stays there, try {lower}"
        )


# ----------------------------------------------------------------------------- main
def train_one(config: dict, resume: str | Path | None) -> int:
    """One run: the data, the run folder (new, or the one to resume), then train. (The device,
    16-bit compute and determinism are set up before, by plumbing/entry.py.)"""
    data = cifar10_input.training_data(config)
    config = fit_batch_to_data(config, data["num_train"])
    data["options"]["batch_size"] = config["batch_size"]  # for the training batches
    print(
        f"data: {data['num_train']:,} training, {data['options']['val_size']:,} validation, "
        f"{len(data['test_images']):,} test images from {data['folder']}"
    )
    with runs.open_run(config, resume, data_folder=data["folder"]) as run_dir:
        return train(config, run_dir, data) if run_dir else 0  # None: finished already


def evaluate_saved_model(model: keras.Model, model_path: Path, config: dict) -> int:
    """--eval-only: the test accuracy of a saved model, on the data and split of the run that saved
    it (`config`: that run's options, read from its folder)."""
    data = cifar10_input.training_data(config)
    if tuple(model.input_shape[1:]) != tuple(data["shape"]):
        raise errors.UsageError(
            f"{model_path} takes {_size(model.input_shape[1:])} images, but the "
            f"{config['dataset']} images in {data['folder']} are {_size(data['shape'])}; "
            f"evaluate it with the --dataset and --image-size it was trained with"
        )
    _, accuracy, logits, labels = evaluate(make_predict(model, config["tta"]), data["test"])
    correct = int(np.sum(logits.argmax(1) == labels))
    flip = " with test-time flip" if config["tta"] else ""
    print(f"test accuracy {100 * accuracy:.2f}% ({correct}/{len(labels)}){flip} for {model_path}")
    return 0


def _size(shape) -> str:
    return "x".join(map(str, shape))  # 32x32x3


def main(argv: list[str] | None = None) -> int:
    """python train.py [flags]: one run, a sweep of runs (--sweep) or --eval-only (see --help)."""
    work = entry.training(
        DEFAULTS,
        train_one=train_one,
        evaluate_saved_model=evaluate_saved_model,
        check_data=cifar10_input.check_data,  # a sweep checks every point first
        compare=compare.main,  # a sweep compares its runs at the end
    )
    return entry.main(work, argv)


if __name__ == "__main__":
    sys.exit(main())
