"""Train an image classifier: `python train.py --model cnn` (CIFAR-10; --dataset mnist or fashion-mnist).

Read it top to bottom: the defaults, the model and the optimizer, the training step, evaluation, the
epoch loop, main. Every run leaves a folder runs/NAME/ with config.json, metrics.csv and .json, the
best model (best.keras), checkpoints/, TensorBoard logs (tb/) and plots. Ctrl-C (or SIGTERM) saves a
checkpoint and prints the command that resumes the run. The bookkeeping a student need not read
(flags and presets, downloads, run folders, checkpoints, progress bar, TensorBoard) is in plumbing/.
"""

from __future__ import annotations

import math
import shlex
import sys
import time
from pathlib import Path
from types import SimpleNamespace

from plumbing import options

# ----------------------------------------------------------------------------- defaults
# The tuned recipe, chosen on the validation split (bench/accuracy.py compares it with the classic
# Keras CNN). A --preset overrides some of these (python train.py --list-presets); flags override both.
# The model options (--widths, --dropout, ...) are the builders' own keyword arguments and defaults.
DEFAULTS = dict(
    model="cnn",  # linear | mlp | cnn: linear_model.py, mlp.py or cnn.py
    dataset="cifar10",  # cifar10 | mnist | fashion-mnist
    data_dir=None,  # None: $CIFAR10_DATA_DIR, else ./data
    data_url=None,  # None: the official source (or $CIFAR10_URL)
    num_train_examples=None,  # None: every training-file example not held out for validation
    val_size=None,  # None: 10% of the training files, held out to choose the best epoch
    image_size=None,  # None: the dataset's own side (32 or 28)
    flip=True,
    crop=4,  # augmentation: random mirror; pad by 4 pixels and crop back at random
    brightness=0.0,
    contrast=0.0,
    cutout=0,  # more augmentation, off by default
    optimizer="momentum",  # SGD with Nesterov momentum; or sgd, adam, adamw, rmsprop, adagrad, adadelta
    lr=0.1,
    momentum=0.9,
    beta1=0.9,
    beta2=0.999,
    epsilon=1e-7,
    lr_schedule="onecycle",
    warmup_epochs=0.0,  # onecycle | cosine | step | constant
    weight_decay=5e-4,
    label_smoothing=0.1,  # L2 on every kernel (decoupled with adamw); soft targets
    batch_size=128,
    epochs=30,
    steps=None,  # steps: stop after this many steps instead
    tta=True,  # test-time flip: average the predictions for each image and its mirror
    device="auto",
    mixed_precision=False,
    xla=False,
    seed=0,
    deterministic=False,
    run_dir="runs",
    name=None,  # name None: PRESET-MMDD-HHMMSS
)
EXPLODED = 100.0  # a mean loss above this (ln 10 = 2.3 at the start) means training has diverged

if (
    __name__ == "__main__"
):  # --help, --list-presets and usage errors: answered before TensorFlow loads
    options.answer_early(sys.argv[1:], DEFAULTS)

from plumbing.quiet import tensorflow_start_up

with tensorflow_start_up():  # hides TensorFlow's start-up noise; real errors still show
    import keras
    import numpy as np
    import tensorflow as tf

import cifar10_input
import compare
import plots
from cnn import build_cnn
from linear_model import build_linear_model, weight_penalty
from mlp import build_mlp
from plumbing import checkpoint, errors, logs, machine, runs, signals, sweep

BUILDERS = {"linear": build_linear_model, "mlp": build_mlp, "cnn": build_cnn}


# ----------------------------------------------------------------------------- the model and the optimizer
def build_model(
    config: dict, input_shape: tuple[int, int, int], num_classes: int = 10
) -> keras.Model:
    """Calls the chosen builder with the options the config gives it. With adamw, weight decay belongs
    to the optimizer (decoupled) instead of being an L2 term in the loss."""
    model_options = {k: config[k] for k in options.builder_options(config["model"]) if k in config}
    if config["optimizer"] == "adamw":
        model_options["weight_decay"] = 0.0
    return BUILDERS[config["model"]](input_shape, num_classes, **model_options)


class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """From 0.1% of the peak linearly up to it over the first 25% of the steps (a warm-up of its own),
    then linearly down to 0.1% of it."""

    def __init__(self, peak: float, total_steps: int):
        self.peak, self.total_steps = peak, max(total_steps, 1)

    def __call__(self, step):
        progress = keras.ops.cast(step, "float32") / self.total_steps
        rate = keras.ops.where(progress < 0.25, progress / 0.25, (1 - progress) / 0.75)
        return self.peak * keras.ops.clip(rate, 1e-3, 1.0)


class WarmUp(keras.optimizers.schedules.LearningRateSchedule):
    """Rises linearly to the peak over the first `steps` steps, then follows `after` (shifted by `steps`)."""

    def __init__(self, after, peak: float, steps: int):
        self.after, self.peak, self.steps = after, peak, steps

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        later = self.after(keras.ops.maximum(step - self.steps, 0))
        return keras.ops.where(step < self.steps, self.peak * (step + 1) / self.steps, later)


def learning_rate_schedule(config: dict, steps_per_epoch: int, total_steps: int):
    """The --lr-schedule, peaking at --lr, after an optional linear warm-up (--warmup-epochs).

    Keras' own schedules where they exist (cosine to 0; step: x0.1 at 50% and 75%); one-cycle by hand.
    """
    peak, warmup = config["lr"], int(config["warmup_epochs"] * steps_per_epoch)
    steps = max(total_steps - warmup, 1)  # the steps after the warm-up
    schedule = {
        "constant": lambda: keras.optimizers.schedules.PiecewiseConstantDecay(
            [steps], [peak, peak]
        ),
        "step": lambda: keras.optimizers.schedules.PiecewiseConstantDecay(
            [steps // 2 - 1, 3 * steps // 4 - 1], [peak, peak / 10, peak / 100]
        ),
        "cosine": lambda: keras.optimizers.schedules.CosineDecay(peak, steps),
        "onecycle": lambda: OneCycle(peak, steps),
    }[config["lr_schedule"]]()
    return WarmUp(schedule, peak, warmup) if warmup else schedule


def make_optimizer(config: dict, schedule):
    """The optimizer named by --optimizer, with its hyper-parameters."""
    c, opt = config, keras.optimizers
    adam_like = dict(beta_1=c["beta1"], beta_2=c["beta2"], epsilon=c["epsilon"])
    optimizer = {
        "sgd": lambda: opt.SGD(schedule),
        "momentum": lambda: opt.SGD(schedule, momentum=c["momentum"], nesterov=True),
        "adam": lambda: opt.Adam(schedule, **adam_like),
        "adamw": lambda: opt.AdamW(schedule, weight_decay=c["weight_decay"], **adam_like),
        "rmsprop": lambda: opt.RMSprop(schedule, momentum=c["momentum"], epsilon=c["epsilon"]),
        "adagrad": lambda: opt.Adagrad(schedule, epsilon=c["epsilon"]),
        "adadelta": lambda: opt.Adadelta(schedule, epsilon=c["epsilon"]),
    }[c["optimizer"]]()
    if c["optimizer"] == "adamw":  # decay the kernels only, as the other optimizers' L2 does
        optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return optimizer


# ----------------------------------------------------------------------------- the training step
def make_train_step(model, optimizer, loss_fn, *, xla: bool = False):
    """One optimisation step as a compiled tf.function: returns (mean cross-entropy, number correct).

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
    """Inference-mode logits (float32) of a batch; with `tta`, averaged with those of the mirror images."""

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
    """One pass over `dataset`: mean cross-entropy (without label smoothing), accuracy, logits, labels."""
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


# ----------------------------------------------------------------------------- the epoch loop
def set_up(config: dict, data: dict, run_dir: Path, stop: signals.StopRequests) -> SimpleNamespace:
    """Everything a run uses: the model, the optimizer and its schedule, the compiled step, the data
    iterator, the TensorBoard logs, and the state that --resume restores (restored here, if saved)."""
    keras.utils.set_random_seed(config["seed"])
    model = build_model(config, data["shape"], len(data["class_names"]))
    model.summary(line_length=80, print_fn=lambda line, **_: print(line))
    steps_per_epoch = data["num_train"] // config["batch_size"]
    total_steps = config["steps"] or steps_per_epoch * config["epochs"]
    schedule = learning_rate_schedule(config, steps_per_epoch, total_steps)
    optimizer = make_optimizer(config, schedule)
    if config["mixed_precision"]:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    optimizer.build(model.trainable_variables)
    loss_fn = keras.losses.CategoricalCrossentropy(
        from_logits=True, label_smoothing=config["label_smoothing"]
    )
    state = checkpoint.TrainingState(model, optimizer, run_dir)
    if state.restore():
        print(f"resuming from epoch {int(state.epoch) + 1}, step {int(state.step)}")
    else:
        state.save()  # the first checkpoint: from now on the run can be resumed
    print(f"run folder: {run_dir}   (tensorboard --logdir {shlex.quote(str(run_dir.parent))})")
    batches = cifar10_input.make_dataset(
        data["folder"],
        "train",
        **data["options"],
        **data["augmentation"],
        epoch=int(state.epoch),
        repeat=True,
        drop_remainder=True,
    )
    return SimpleNamespace(
        config=config,
        run_dir=run_dir,
        data=data,
        stop=stop,
        model=model,
        optimizer=optimizer,
        schedule=schedule,
        state=state,
        predict=make_predict(model),
        train_step=make_train_step(model, optimizer, loss_fn, xla=config["xla"]),
        batches=iter(batches.skip(int(state.step))),
        steps_per_epoch=steps_per_epoch,
        total_steps=total_steps,
        epochs=math.ceil(total_steps / steps_per_epoch),
        board=logs.TensorBoard(
            run_dir, {**config, "parameters": model.count_params()}, data, model
        ),
    )


def train(config: dict, run_dir: Path, data: dict, stop: signals.StopRequests) -> int:
    """Trains epoch by epoch, tests the best epoch's model, fills the run folder. Returns the exit code."""
    run = set_up(config, data, run_dir, stop)
    start_epoch, start_step = int(run.state.epoch), int(run.state.step)
    for epoch in range(start_epoch, run.epochs):
        with (
            stop.deferred()
        ):  # a first Ctrl-C or SIGTERM lets the step (or validation) finish, then saves
            # Train for one epoch (the rest of it, when resumed).
            row = train_epoch(run, epoch, start_step)
            if stop.requested and row is None:
                where = f"at epoch {epoch + 1}, step {int(run.state.step)}"
                return signals.stopped(stop.requested, run_dir, where)

            # Validate, record the epoch, then save: the checkpoint, metrics.csv (and best.keras if best).
            row["val_loss"], row["val_accuracy"] = (
                evaluate(run.predict, data["val"])[:2] if data["val"] else (None, None)
            )
            if data["val"]:
                print(
                    f"  validation: loss {row['val_loss']:.4f}, accuracy {100 * row['val_accuracy']:.1f}%"
                )
            histograms = epoch % max(run.epochs // 10, 1) == 0 or epoch == run.epochs - 1
            run.board.epoch(
                (epoch + 1) * run.steps_per_epoch,
                row,
                run.model.trainable_weights if histograms else None,
            )
            score = (
                row["val_accuracy"] if data["val"] else row["train_accuracy"]
            )  # what picks the best epoch
            run.state.save(new_best=run.state.finish_epoch(row, score))
            start_step = 0
        if (
            stop.requested
        ):  # after deferring (a later signal stops at once); the last epoch's test waits too
            return signals.stopped(stop.requested, run_dir, f"after epoch {epoch + 1}")

    # Test the best epoch's model (with the test-time flip, if asked), then write the results and plots.
    results = test_and_report(config, run_dir, data, run.state, run.board)
    print(
        f"test accuracy {100 * results['test_accuracy']:.2f}% (best epoch {results['best_epoch']}"
        f"{', test-time flip' if config['tta'] else ''}); results and plots in {run_dir}"
    )
    return 0


def train_epoch(run: SimpleNamespace, epoch: int, start_step: int) -> dict | None:
    """The steps of one epoch from `start_step`; returns its metrics row, or None if a stop was requested
    (after saving a checkpoint in the middle of the epoch, with its running sums)."""
    batch_size, state = run.config["batch_size"], run.state
    steps = min(run.steps_per_epoch, run.total_steps - epoch * run.steps_per_epoch)
    progress = logs.EpochProgress(
        epoch + 1,
        run.epochs,
        steps,
        start_step,
        batch_size,
        later_steps=run.total_steps - (epoch + 1) * run.steps_per_epoch,
    )
    loss_sum, correct_sum, seen, seconds = (
        state.sums.numpy()
    )  # not 0 when resumed in the middle of the epoch
    step, epoch_t0 = start_step, time.perf_counter()
    for step in range(start_step + 1, steps + 1):
        images, labels = next(run.batches)
        step_t0 = time.perf_counter()
        loss, correct = run.train_step(images, labels)
        step_ms = 1000 * (time.perf_counter() - step_t0)  # the step itself (it returns when done)
        loss_sum, correct_sum, seen = loss_sum + loss, correct_sum + correct, seen + batch_size
        global_step = epoch * run.steps_per_epoch + step
        # The bar redraws by time; the TensorBoard curves get a point every 640 training images.
        due = progress.due(step) or run.board.due(global_step)
        if global_step == 1 or due or run.stop.requested:
            # Now and then: guard against divergence, draw the progress bar, log to TensorBoard.
            check_loss(float(loss_sum) / (seen / batch_size), epoch, step, run.config, state)
            progress.update(step, float(loss_sum) / (seen / batch_size), float(correct_sum) / seen)
            run.board.step(
                global_step,
                loss=loss,
                learning_rate=run.schedule(run.optimizer.iterations),
                step_time_ms=step_ms,
                weight_penalty=weight_penalty(run.model),
                images=images if global_step == 1 else None,
                labels=labels,
            )
        if run.stop.requested:  # save where we are, with the epoch's sums so far
            seconds += time.perf_counter() - epoch_t0
            state.save_mid_epoch(step, [loss_sum, correct_sum, seen, seconds])
            return None
    seconds += time.perf_counter() - epoch_t0
    train_loss, train_accuracy = float(loss_sum) / (seen / batch_size), float(correct_sum) / seen
    check_loss(train_loss, epoch, step, run.config, state)
    progress.update(step, train_loss, train_accuracy, final=True)
    return dict(
        epoch=epoch + 1,
        train_loss=train_loss,
        train_accuracy=train_accuracy,
        learning_rate=float(run.schedule(run.optimizer.iterations)),
        seconds=round(seconds, 3),
        images_per_second=round(seen / seconds, 1),
        weight_penalty=float(weight_penalty(run.model)),
    )


def test_and_report(config: dict, run_dir: Path, data: dict, state, board) -> dict:
    """Evaluates the best epoch's model on the test set; writes the plots, then metrics.json."""
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
    return results


def check_loss(loss: float, epoch: int, step: int, config: dict, state) -> None:
    """The divergence guard: a NaN, infinite or huge loss stops the run; the last good checkpoint stays.
    (A sweep records the run as diverged and goes on with the next: plumbing/sweep.py.)"""
    if not loss < EXPLODED:
        kept = (
            f"the last good checkpoint (end of epoch {int(state.epoch)}) is kept"
            if int(state.epoch)
            else "nothing was learnt"
        )
        raise sweep.DivergedError(
            f"the loss became {loss:.4g} at epoch {epoch + 1}, step {step}: the "
            f"learning rate is too high for this model; start a new run with --lr "
            f"{config['lr'] / 10:g} ({kept})",
            loss=loss,
            epoch=epoch + 1,
            step=step,
        )


# ----------------------------------------------------------------------------- main
def run_command(argv: list[str] | None) -> int:
    config, resume, eval_only = options.parse(argv, DEFAULTS)
    with signals.handled() as stop:  # Ctrl-C and SIGTERM stop cleanly from here to the end
        if eval_only:
            return evaluate_saved_model(Path(eval_only), config)
        if resume:
            config = options.for_resume(runs.read_config(Path(resume), DEFAULTS), config)
        if config.get(
            "sweep"
        ):  # a grid of runs (plumbing/sweep.py), compared at the end (compare.py)
            return sweep.run(
                config["sweep"],
                lambda one, resume: train_one(one, resume, stop),
                compare.main,
                check_data=cifar10_input.check_data,
            )
        return train_one(config, resume, stop)


def train_one(config: dict, resume: str | Path | None, stop: signals.StopRequests) -> int:
    """One run: the device, the data, the run folder (new or resumed), then train."""
    keras.backend.clear_session()  # a sweep trains many models in one process
    device = machine.start(config)  # the device, 16-bit compute, determinism; says which
    data = cifar10_input.training_data(config)
    print(
        f"data: {data['num_train']:,} training, {data['options']['val_size']:,} validation, "
        f"{len(data['test_images']):,} test images from {data['folder']}"
    )
    run_dir = None
    try:
        with runs.open_run(config, resume, device=device, data_folder=data["folder"]) as run_dir:
            return train(config, run_dir, data, stop) if run_dir else 0
    except (
        OSError
    ) as err:  # a full disk, a file in the way: one line, and how to go on once it is fixed
        resumable = (
            run_dir and (run_dir / "config.json").is_file()
        )  # else the run folder was removed
        then = (
            f"continue with: {errors.resume_command(run_dir)}"
            if resumable
            else "run the same command again"
        )
        raise errors.DataError(errors.disk_problem(err, then)) from None


def evaluate_saved_model(model_path: Path, given: dict) -> int:
    """--eval-only: the test accuracy of a saved model, on the data and split of the run that saved it."""
    config = (
        options.for_resume(runs.read_config(model_path.parent, DEFAULTS), given)
        if (model_path.parent / "config.json").is_file()
        else options.resolve(given, DEFAULTS)
    )
    machine.select_device("auto")  # quietly: probing for a GPU prints noise on machines without one
    model, data = runs.load_model(model_path), cifar10_input.training_data(config)
    if tuple(model.input_shape[1:]) != tuple(data["shape"]):
        raise errors.UsageError(
            f"{model_path} takes {_size(model.input_shape[1:])} images, but the "
            f"{config['dataset']} images in {data['folder']} are {_size(data['shape'])}; "
            f"evaluate it with the --dataset and --image-size it was trained with"
        )
    _, accuracy, logits, labels = evaluate(make_predict(model, config["tta"]), data["test"])
    correct, flip = (
        int(np.sum(logits.argmax(1) == labels)),
        " with test-time flip" if config["tta"] else "",
    )
    print(f"test accuracy {100 * accuracy:.2f}% ({correct}/{len(labels)}){flip} for {model_path}")
    return 0


def _size(shape) -> str:
    return "x".join(map(str, shape))  # 32x32x3


def main(argv: list[str] | None = None) -> int:
    return errors.report(run_command, argv)


if __name__ == "__main__":
    sys.exit(main())
