"""Train a CIFAR-10 classifier: `python train.py --model cnn`.

Flags -> data -> model -> training loop -> evaluation -> a run folder with everything to look at:

  runs/NAME/config.json            every option, versions, device, git commit
  runs/NAME/metrics.csv, .json     one row per epoch; the final results (test_accuracy, ...)
  runs/NAME/tensorboard/           `tensorboard --logdir runs`
  runs/NAME/checkpoints/           the latest state (for --resume); best.keras: the best model
  runs/NAME/*.png                  learning curves, confusion matrix, per-class accuracy, mistakes

Ctrl-C (or SIGTERM) saves a checkpoint and prints the command that resumes the run.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import inspect
import json
import math
import os
import platform
import re
import shlex
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out of the way

from cnn import CNN_STAGES  # noqa: E402  (the CNN presets)

# ----------------------------------------------------------------------------- defaults
# The tuned recipe, chosen on the validation split (bench/accuracy.py compares it with the classic
# Keras CNN). A --preset overrides some of these; explicit flags override both.
DEFAULTS = dict(
    model="cnn",
    # data and augmentation
    data_dir=None, data_url=None,  # None: $CIFAR10_DATA_DIR or ./data; $CIFAR10_URL or the official URL
    num_train_examples=None,  # None: every training-file example not held out for validation
    val_size=None,  # None: 10% of the training files
    image_size=32,
    flip=True, crop=4, brightness=0.0, contrast=0.0, cutout=0,
    # optimisation
    optimizer="momentum", lr=0.1, momentum=0.9, beta1=0.9, beta2=0.999, epsilon=1e-7,
    lr_schedule="onecycle", warmup_epochs=0.0, weight_decay=5e-4, label_smoothing=0.1,
    batch_size=128, epochs=30, steps=None,
    tta=True,  # test-time augmentation: average the predictions for each image and its mirror
    # Model options (--widths, --dropout, ...) have no defaults here: the builders' own apply
    # (linear_model.py, mlp.py, cnn.py), so build_cnn() with no options is the tuned model.
    # machine and run
    device="auto", mixed_precision=False, xla=False, seed=0, deterministic=False,
    run_dir="runs", name=None,
)

# The course's stages train with Adam at 1e-3, as the handouts do; "tuned" is DEFAULTS itself.
STAGE_TRAINING = dict(optimizer="adam", lr=1e-3)
PRESETS = {  # each only changes what differs from DEFAULTS; the CNN stages are cnn.CNN_STAGES
    "linear": dict(model="linear", **STAGE_TRAINING, weight_decay=0.0, label_smoothing=0.0, tta=False,
                   flip=False, crop=0),
    "mlp": dict(model="mlp", **STAGE_TRAINING, weight_decay=1e-4, label_smoothing=0.0, tta=False,
                flip=False, crop=0),
    **{stage: dict(model="cnn", **(STAGE_TRAINING if stage != "tuned" else {}), **options)
       for stage, options in CNN_STAGES.items()},
}
DEFAULT_PRESET = {"linear": "linear", "mlp": "mlp", "cnn": "tuned"}
OPTIMIZERS = ("sgd", "momentum", "adam", "adamw", "rmsprop", "adagrad", "adadelta")
SCHEDULES = ("constant", "step", "cosine", "onecycle")


class UsageError(Exception):
    """A command-line mistake: printed as one line, exit code 2."""


# ----------------------------------------------------------------------------- command line
def _int_tuple(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 32,64,128, not {text!r}")
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"expected positive integers, not {text!r}")
    return values


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a mistake is reported in one line (exit code 2) instead of the whole usage text."""

    def error(self, message):
        self.exit(2, f"usage error: {message} (see python train.py --help)\n")


def make_parser() -> argparse.ArgumentParser:
    """The command line. Every default is SUPPRESSed: only flags the user typed reach the config."""
    p = OneLineParser(description="Train a linear model, an MLP or a CNN on CIFAR-10.",
                      argument_default=argparse.SUPPRESS)
    add, flag = p.add_argument, dict(action=argparse.BooleanOptionalAction)
    add("--model", choices=("linear", "mlp", "cnn"), help="which model file to train (default: cnn)")
    add("--preset", choices=tuple(PRESETS), help="a course stage; explicit flags override it")
    add("--list-presets", action="store_true", help="print the presets and exit")
    g = p.add_argument_group("data and augmentation (training batches only)")
    g.add_argument("--data-dir", help="data folder (default: $CIFAR10_DATA_DIR or ./data)")
    g.add_argument("--data-url", help="archive URL, file:// URL or local path (default: official)")
    g.add_argument("--num-train-examples", type=int, help="train on this many examples (default: all)")
    g.add_argument("--val-size", type=int, help="examples held out for validation (default: 10%%)")
    g.add_argument("--image-size", type=int, help="resize images to this side (default: 32)")
    g.add_argument("--flip", **flag, help="random horizontal flips (default: on)")
    g.add_argument("--crop", type=int, help="pad by N pixels and crop back randomly; 0 = off (default: 4)")
    g.add_argument("--brightness", type=float, help="random brightness shift up to this (default: 0)")
    g.add_argument("--contrast", type=float, help="random contrast factor 1 +- this (default: 0)")
    g.add_argument("--cutout", type=int, help="blank a random square of this side; 0 = off (default: 0)")
    g = p.add_argument_group("optimisation")
    g.add_argument("--optimizer", choices=OPTIMIZERS, help="(default: adam)")
    g.add_argument("--lr", type=float, help="peak learning rate (default: 2e-3)")
    g.add_argument("--momentum", type=float, help="for momentum and rmsprop (default: 0.9)")
    g.add_argument("--beta1", type=float, help="Adam/AdamW beta_1 (default: 0.9)")
    g.add_argument("--beta2", type=float, help="Adam/AdamW beta_2 (default: 0.999)")
    g.add_argument("--epsilon", type=float, help="Adam/AdamW/RMSprop/Adagrad/Adadelta epsilon (default: 1e-7)")
    g.add_argument("--lr-schedule", choices=SCHEDULES, help="(default: onecycle)")
    g.add_argument("--warmup-epochs", type=float, help="linear warm-up before the schedule (default: 0)")
    g.add_argument("--weight-decay", type=float,
                   help="L2 strength on kernels; decoupled decay with adamw (default: 5e-4)")
    g.add_argument("--label-smoothing", type=float, help="(default: 0.1)")
    g.add_argument("--batch-size", type=int, help="(default: 128)")
    length = g.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=int, help="(default: 30)")
    length.add_argument("--steps", type=int, help="train for this many steps instead of whole epochs")
    g.add_argument("--tta", **flag, help="test-time flip: average predictions with the mirror (default: on)")
    g = p.add_argument_group("model options (each applies to the models whose builder takes it)")
    g.add_argument("--hidden-units", type=_int_tuple, help="mlp: widths, e.g. 512 or 256,128")
    g.add_argument("--activation", choices=("relu", "elu", "tanh", "sigmoid"), help="mlp, cnn")
    g.add_argument("--initializer", choices=("he_normal", "glorot_uniform", "normal", "uniform"), help="mlp")
    g.add_argument("--init-scale", type=float, help="mlp: std of normal, half-width of uniform")
    g.add_argument("--regularizer", choices=("l2", "l1"), help="mlp: weight penalty kind")
    g.add_argument("--dropout", type=float, help="mlp, cnn: dropout rate")
    g.add_argument("--widths", type=_int_tuple, help="cnn: channels per stage, e.g. 32,64,128")
    g.add_argument("--convs-per-stage", type=int, help="cnn")
    g.add_argument("--batch-norm", **flag, help="cnn")
    g.add_argument("--downsample", choices=("pool", "stride", "none"), help="cnn")
    g.add_argument("--pooling", choices=("max", "avg"), help="cnn")
    g.add_argument("--head", choices=("gap", "flatten"), help="cnn")
    g.add_argument("--dense-units", type=int, help="cnn: dense layer of the flatten head")
    g = p.add_argument_group("machine and run")
    g.add_argument("--device", choices=("auto", "cpu", "gpu"), help="auto: the GPU when TensorFlow sees one")
    g.add_argument("--mixed-precision", **flag, help="float16 compute on a GPU")
    g.add_argument("--xla", **flag, help="compile the training step with XLA (slower on CPUs)")
    g.add_argument("--seed", type=int, help="(default: 0)")
    g.add_argument("--deterministic", **flag, help="deterministic ops: reproducible, somewhat slower")
    g.add_argument("--run-dir", help="parent folder of runs (default: runs)")
    g.add_argument("--name", help="run folder name (default: PRESET-DATE-TIME)")
    g.add_argument("--resume", metavar="RUN", help="continue the interrupted run in folder RUN")
    g.add_argument("--eval-only", metavar="MODEL", help="evaluate a saved .keras model on the test set")
    return p


def model_builders() -> dict:
    from cnn import build_cnn
    from linear_model import build_linear_model
    from mlp import build_mlp
    return {"linear": build_linear_model, "mlp": build_mlp, "cnn": build_cnn}


def keyword_options(build) -> set[str]:
    """The keyword options a model builder takes (its flags, spelled with underscores)."""
    return {name for name, p in inspect.signature(build).parameters.items() if p.kind == p.KEYWORD_ONLY}


def resolve_config(given: dict) -> dict:
    """DEFAULTS, then the preset, then the flags given; checks combinations. Raises UsageError."""
    model = given.get("model")
    preset = given.get("preset") or DEFAULT_PRESET[model or "cnn"]
    preset_model = PRESETS[preset]["model"]
    if model and model != preset_model:
        raise UsageError(f"--preset {preset} trains the {preset_model} model; drop --model {model}, or "
                         f"choose a preset for {model} (see --list-presets)")
    config = {**DEFAULTS, **PRESETS[preset], **given, "preset": preset}
    builder_options = keyword_options(model_builders()[config["model"]])
    all_model_options = set().union(*(keyword_options(build) for build in model_builders().values()))
    for key in sorted(all_model_options & set(given) - builder_options):
        raise UsageError(f"--{key.replace('_', '-')} does not apply to --model {config['model']}; drop it")
    checks = [
        (config["lr"] > 0, "--lr must be positive"),
        (config["weight_decay"] >= 0, "--weight-decay must be >= 0"),
        (0 <= config["label_smoothing"] < 1, "--label-smoothing must be in [0, 1)"),
        (0 <= config.get("dropout", 0) < 1, "--dropout must be in [0, 1)"),
        (config["batch_size"] > 0, "--batch-size must be positive"),
        (config["epochs"] > 0, "--epochs must be positive"),
        (config["steps"] is None or config["steps"] > 0, "--steps must be positive"),
        (config["warmup_epochs"] >= 0, "--warmup-epochs must be >= 0"),
        (config["crop"] >= 0 and config["cutout"] >= 0, "--crop and --cutout must be >= 0"),
        (config["brightness"] >= 0 and 0 <= config["contrast"] < 1,
         "--brightness must be >= 0 and --contrast in [0, 1)"),
        (config["image_size"] >= 8, "--image-size must be at least 8"),
        (not (config["mixed_precision"] and config["device"] == "cpu"),
         "--mixed-precision needs a GPU; drop it or use --device gpu"),
    ]
    for ok, message in checks:
        if not ok:
            raise UsageError(message)
    return config


# ----------------------------------------------------------------------------- device, optimizer, schedule
def select_device(choice: str) -> str:
    """Returns "GPU" or "CPU" and makes TensorFlow use it. Raises UsageError for --device gpu without one."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if choice == "cpu" or (choice == "auto" and not gpus):
        if gpus:
            tf.config.set_visible_devices([], "GPU")
        return "CPU"
    if not gpus:
        raise UsageError("--device gpu, but TensorFlow sees no GPU; use --device cpu, or see the README's "
                         "GPU notes (pip install 'tensorflow[and-cuda]' on Linux)")
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)  # share the GPU politely
    return "GPU"


def nvidia_gpu_present() -> bool:
    """True when the machine has an NVIDIA driver, whether or not TensorFlow can use it."""
    return Path("/proc/driver/nvidia/version").exists()


def learning_rate_schedule(config: dict, steps_per_epoch: int, total_steps: int):
    """Peak `lr`, an optional linear warm-up, then constant / step (x0.1 at 50% and 75%) / cosine to 0 /
    onecycle (linear up to the peak over the first 25%, then linearly down to 0)."""
    import keras
    from keras import ops

    peak, kind = config["lr"], config["lr_schedule"]
    warmup = int(config["warmup_epochs"] * steps_per_epoch)

    class Schedule(keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):
            step = ops.cast(step, "float32")
            progress = ops.clip((step - warmup) / max(total_steps - warmup, 1), 0.0, 1.0)
            if kind == "constant":
                rate = peak * ops.ones_like(progress)
            elif kind == "step":
                rate = peak * ops.where(progress < 0.5, 1.0, ops.where(progress < 0.75, 0.1, 0.01))
            elif kind == "cosine":
                rate = peak * 0.5 * (1 + ops.cos(math.pi * progress))
            else:  # onecycle
                rate = peak * ops.where(progress < 0.25, progress / 0.25, (1 - progress) / 0.75)
                rate = ops.maximum(rate, peak * 1e-3)
            if warmup:
                rate = ops.where(step < warmup, peak * (step + 1) / warmup, rate)
            return rate

        def get_config(self):
            return {}

    return Schedule()


def make_optimizer(config: dict, schedule):
    """The optimizer named by --optimizer, with its hyper-parameters."""
    import keras

    name, c = config["optimizer"], config
    if name == "sgd":
        return keras.optimizers.SGD(schedule)
    if name == "momentum":
        return keras.optimizers.SGD(schedule, momentum=c["momentum"], nesterov=True)
    if name == "adam":
        return keras.optimizers.Adam(schedule, beta_1=c["beta1"], beta_2=c["beta2"], epsilon=c["epsilon"])
    if name == "adamw":
        return keras.optimizers.AdamW(schedule, weight_decay=c["weight_decay"], beta_1=c["beta1"],
                                      beta_2=c["beta2"], epsilon=c["epsilon"])
    if name == "rmsprop":
        return keras.optimizers.RMSprop(schedule, momentum=c["momentum"], epsilon=c["epsilon"])
    if name == "adagrad":
        return keras.optimizers.Adagrad(schedule, epsilon=c["epsilon"])
    return keras.optimizers.Adadelta(schedule, epsilon=c["epsilon"])


def model_options(config: dict) -> dict:
    """The keyword options the chosen builder gets: its own defaults, updated by the preset and flags.
    With adamw, weight decay is the optimizer's (decoupled) instead of an L2 term in the loss."""
    build = model_builders()[config["model"]]
    defaults = {name: p.default for name, p in inspect.signature(build).parameters.items()}
    options = {name: config.get(name, defaults[name]) for name in keyword_options(build)}
    if config["optimizer"] == "adamw":
        options["weight_decay"] = 0.0
    return options


def build_model(config: dict, input_shape: tuple[int, int, int]):
    """Calls the chosen builder with `model_options(config)`."""
    return model_builders()[config["model"]](input_shape, 10, **model_options(config))


def predict_logits(model, images, tta: bool):
    """Inference-mode logits (float32); with `tta`, averaged with those of the mirrored images."""
    import tensorflow as tf

    logits = tf.cast(model(images, training=False), tf.float32)
    if tta:
        logits = (logits + tf.cast(model(tf.reverse(images, axis=[2]), training=False), tf.float32)) / 2
    return logits


def make_train_step(model, optimizer, loss_fn, *, xla: bool = False):
    """One optimisation step as a compiled tf.function: returns (mean loss, number correct).

    A custom step rather than model.fit: bench/train_speed.py measures it against fit on the same model.
    The loss passed in takes one-hot labels (for label smoothing); weight penalties in model.losses are
    added; optimizer.scale_loss makes it work with mixed precision's loss scaling too.
    """
    import tensorflow as tf

    @tf.function(jit_compile=xla, reduce_retracing=True)
    def train_step(images, labels):
        # BEGIN SOLUTION: under a GradientTape: logits, loss (+ model.losses), optimizer.scale_loss; then apply the gradients
        with tf.GradientTape() as tape:
            logits = tf.cast(model(images, training=True), tf.float32)
            loss = loss_fn(tf.one_hot(labels, logits.shape[-1]), logits)
            total = loss + tf.add_n(model.losses) if model.losses else loss
            scaled = optimizer.scale_loss(total)
        grads = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        predictions = tf.argmax(logits, 1, output_type=tf.int32)
        return loss, tf.reduce_sum(tf.cast(tf.equal(predictions, labels), tf.float32))
        # END SOLUTION

    return train_step


# ----------------------------------------------------------------------------- the run folder
def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=Path(__file__).parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def write_json_atomic(path: Path, data) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)


METRIC_COLUMNS = ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "learning_rate",
                  "seconds", "images_per_second", "weight_penalty"]


def write_metrics_csv(path: Path, rows: list[dict]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, METRIC_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def read_metrics_csv(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [{k: (float(v) if v not in ("", None) else None) if k != "epoch" else int(v) for k, v in row.items()}
                for row in csv.DictReader(f)]


class Progress:
    """One line per epoch, redrawn in place on a terminal, every 10% of the epoch otherwise:
    loss and accuracy so far, images/s, and the time left in the whole run."""

    def __init__(self, epoch: int, epochs: int, steps: int, start_step: int, batch_size: int, later_steps: int):
        self.prefix, self.steps, self.batch_size = f"epoch {epoch}/{epochs}", steps, batch_size
        self.later_steps = later_steps  # in the epochs after this one, for the time left in the run
        self.start_step, self.t0, self.last = start_step, time.perf_counter(), 0.0
        self.tty = sys.stdout.isatty()
        self.next_mark = start_step + max(steps // 10, 1)

    def due(self, step: int) -> bool:
        """Whether to redraw now: 5 times a second on a terminal, every 10% of the epoch otherwise."""
        return time.perf_counter() - self.last >= 0.2 if self.tty else step >= self.next_mark

    def update(self, step: int, loss: float, accuracy: float, final: bool = False) -> None:
        now = time.perf_counter()
        self.last, self.next_mark = now, step + max(self.steps // 10, 1)
        done = step - self.start_step
        rate = done * self.batch_size / max(now - self.t0, 1e-9)
        left = (self.steps - step + self.later_steps) * self.batch_size / max(rate, 1e-9)
        bar = "=" * int(20 * step / self.steps)
        line = (f"{self.prefix} [{bar:<20}] {step}/{self.steps} loss {loss:.4f} acc {100 * accuracy:5.1f}% "
                f"{rate:,.0f} img/s {'took' if final else 'left'} {(now - self.t0 if final else left):.0f}s")
        print(f"\r{line}" if self.tty else line, end="" if self.tty and not final else "\n", flush=True)


# ----------------------------------------------------------------------------- training
def prepare_data(config: dict) -> tuple[Path, int, int]:
    """Makes the data available; returns (batches folder, training-file examples, validation size)."""
    import cifar10_input

    batches_dir = cifar10_input.maybe_download_and_extract(config.get("data_dir") or cifar10_input.default_data_dir(),
                                                           config.get("data_url") or cifar10_input.default_data_url())
    num_files = len(cifar10_input.load_split(batches_dir, "train")[1])
    val_size = config["val_size"] if config.get("val_size") is not None else num_files // 10  # default: 10%
    return batches_dir, num_files, val_size


@contextlib.contextmanager
def stop_requests():
    """While active, Ctrl-C and SIGTERM only set stop["signal"], so training can save and exit cleanly."""
    stop = {"signal": None}

    def request_stop(signum, _frame):
        stop["signal"] = signum
    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run(config: dict, run_dir: Path, resume: bool, stop: dict) -> int:
    """Trains, evaluates and fills the run folder; stops cleanly once stop["signal"] is set. Returns the exit code."""
    import keras
    import numpy as np
    import tensorflow as tf

    import cifar10_input
    import plots
    from linear_model import weight_penalty

    device = select_device(config["device"])
    if config["mixed_precision"] and device != "GPU":
        raise UsageError("--mixed-precision needs a GPU, and TensorFlow sees none; drop --mixed-precision")
    keras.utils.set_random_seed(config["seed"])
    if config["deterministic"]:
        tf.config.experimental.enable_op_determinism()
    if config["mixed_precision"]:
        keras.mixed_precision.set_global_policy("mixed_float16")

    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}; training on the {device}"
          + (" with mixed precision" if config["mixed_precision"] else ""))
    if device == "CPU" and nvidia_gpu_present():
        print("hint: this machine has an NVIDIA GPU that TensorFlow cannot use; on Linux, "
              "pip install 'tensorflow[and-cuda]==2.21.0' (see README, GPU notes)")

    batches_dir, num_files, val_size = prepare_data(config)
    try:
        train_idx, val_idx = cifar10_input.split_indices(num_files, val_size=val_size,
                                                         num_train_examples=config["num_train_examples"],
                                                         seed=config["seed"])
    except ValueError as err:
        raise UsageError(str(err).replace("val_size", "--val-size").replace("num_train_examples",
                                                                            "--num-train-examples"))
    steps_per_epoch = len(train_idx) // config["batch_size"]
    if steps_per_epoch == 0:
        raise UsageError(f"--batch-size {config['batch_size']} is larger than the {len(train_idx)} training "
                         f"examples; use a smaller batch")
    total_steps = config["steps"] or steps_per_epoch * config["epochs"]
    epochs = math.ceil(total_steps / steps_per_epoch)
    data_options = dict(batch_size=config["batch_size"], num_train_examples=config["num_train_examples"],
                        val_size=val_size, image_size=config["image_size"], seed=config["seed"])
    augmentation = {k: config[k] for k in ("flip", "crop", "brightness", "contrast", "cutout")}
    val_ds = cifar10_input.make_dataset(batches_dir, "validation", **data_options) if val_size else None
    test_ds = cifar10_input.make_dataset(batches_dir, "test", **data_options)
    test_images, test_labels = cifar10_input.load_split(batches_dir, "test")
    print(f"data: {len(train_idx):,} training, {val_size:,} validation, {len(test_labels):,} test images "
          f"from {batches_dir}; {steps_per_epoch} steps per epoch, {total_steps:,} steps")

    input_shape = (config["image_size"], config["image_size"], 3)
    model = build_model(config, input_shape)
    model.summary(line_length=100, print_fn=lambda line, **_: print(line))
    schedule = learning_rate_schedule(config, steps_per_epoch, total_steps)
    optimizer = make_optimizer(config, schedule)
    if config["mixed_precision"]:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    optimizer.build(model.trainable_variables)
    loss_fn = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=config["label_smoothing"])

    # The state that --resume restores: weights (and dropout's random state), optimizer, position.
    position = {"epoch": tf.Variable(0, dtype=tf.int64), "step": tf.Variable(0, dtype=tf.int64),
                "best_val_accuracy": tf.Variable(-1.0, dtype=tf.float64)}
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, model_variables=model.variables, **position)
    manager = tf.train.CheckpointManager(checkpoint, run_dir / "checkpoints", max_to_keep=1)
    rows = []
    if resume:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        rows = [r for r in read_metrics_csv(run_dir / "metrics.csv") if r["epoch"] <= int(position["epoch"])]
        print(f"resuming from epoch {int(position['epoch']) + 1}, step {int(position['step'])}")
    print(f"run folder: {run_dir}   (tensorboard --logdir {run_dir.parent})")

    train_step = make_train_step(model, optimizer, loss_fn, xla=config["xla"])

    predict_step = tf.function(lambda images, tta: predict_logits(model, images, tta), reduce_retracing=True)

    def evaluate(dataset, tta=False):
        """Mean loss (without label smoothing), accuracy, and the logits of every example."""
        all_logits, all_labels = [], []
        for images, labels in dataset:
            all_logits.append(predict_step(images, tta).numpy())
            all_labels.append(labels.numpy())
        logits, labels = np.concatenate(all_logits), np.concatenate(all_labels)
        loss = float(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True).numpy().mean())
        return loss, float(np.mean(logits.argmax(1) == labels)), logits

    def diverged(loss: float, epoch: int, step: int) -> int:
        """The NaN guard: stop, keep the last good checkpoint (nothing is saved now), say what to change."""
        kept = (f"the last good checkpoint (end of epoch {int(position['epoch'])}) is kept in {run_dir}"
                if manager.latest_checkpoint else "no checkpoint had been saved yet")
        print(f"\nerror: the loss became {loss} at epoch {epoch + 1}, step {step}: the learning rate is too high "
              f"for this model; try --lr {config['lr'] / 10:g}; {kept}", file=sys.stderr)
        return 1

    def stopped(where: str) -> int:
        """After Ctrl-C or SIGTERM (the checkpoint is saved): the resume command, and 128 + the signal."""
        print(f"\n{signal.Signals(stop['signal']).name}: saved a checkpoint {where}. Resume with:\n"
              f"  python train.py --resume {shlex.quote(str(run_dir))}", flush=True)
        return 128 + stop["signal"]

    def selection_score(row: dict) -> float:
        """What picks the best epoch: validation accuracy (training accuracy when nothing is held out)."""
        return row["val_accuracy"] if val_ds else row["train_accuracy"]

    train_writer = tf.summary.create_file_writer(str(run_dir / "tensorboard" / "train"))
    val_writer = tf.summary.create_file_writer(str(run_dir / "tensorboard" / "validation"))
    start_epoch, start_step = int(position["epoch"]), int(position["step"])
    global_step = start_epoch * steps_per_epoch + start_step
    # One iterator for the whole run: it continues from epoch to epoch (and from where a resumed run stopped).
    batches = iter(cifar10_input.make_dataset(batches_dir, "train", **data_options, **augmentation, epoch=start_epoch,
                                              repeat=True, drop_remainder=True).skip(start_step))
    for epoch in range(start_epoch, epochs):
        steps_this_epoch = min(steps_per_epoch, total_steps - epoch * steps_per_epoch)
        progress = Progress(epoch + 1, epochs, steps_this_epoch, start_step, config["batch_size"],
                            later_steps=total_steps - epoch * steps_per_epoch - steps_this_epoch)
        loss_sum = correct_sum = seen = 0.0
        epoch_t0, step = time.perf_counter(), start_step
        for step in range(start_step + 1, steps_this_epoch + 1):
            images, labels = next(batches)
            step_t0 = time.perf_counter()
            loss, correct = train_step(images, labels)
            loss_sum, correct_sum, seen = loss_sum + loss, correct_sum + correct, seen + 1
            global_step += 1
            if global_step == 1 or progress.due(step) or stop["signal"]:
                mean_loss = float(loss_sum / seen)
                if not math.isfinite(mean_loss):
                    return diverged(mean_loss, epoch, step)
                progress.update(step, mean_loss, float(correct_sum) / (seen * config["batch_size"]))
                with train_writer.as_default(step=global_step):
                    tf.summary.scalar("loss", loss)
                    tf.summary.scalar("learning_rate", schedule(optimizer.iterations))
                    tf.summary.scalar("step_time_ms", 1000 * (time.perf_counter() - step_t0))
                    tf.summary.scalar("weight_penalty", weight_penalty(model))
                    if global_step == 1:
                        tf.summary.image("augmented_inputs", _for_display(images[:8]), max_outputs=8)
            if stop["signal"]:
                position["epoch"].assign(epoch)
                position["step"].assign(step)
                manager.save()
                return stopped(f"at epoch {epoch + 1}, step {step}")
        seconds = time.perf_counter() - epoch_t0
        train_loss, train_accuracy = float(loss_sum / max(seen, 1)), float(correct_sum) / max(seen * config["batch_size"], 1)
        if not math.isfinite(train_loss):
            return diverged(train_loss, epoch, step)
        progress.update(step, train_loss, train_accuracy, final=True)
        val_loss, val_accuracy = evaluate(val_ds)[:2] if val_ds else (None, None)
        row = dict(epoch=epoch + 1, train_loss=train_loss, train_accuracy=train_accuracy, val_loss=val_loss,
                   val_accuracy=val_accuracy, learning_rate=float(schedule(optimizer.iterations)),
                   seconds=round(seconds, 3), images_per_second=round(seen * config["batch_size"] / seconds, 1),
                   weight_penalty=float(weight_penalty(model)))
        rows.append(row)
        if val_ds:
            print(f"  validation: loss {val_loss:.4f}, accuracy {100 * val_accuracy:.1f}%")
            with val_writer.as_default(step=global_step):
                tf.summary.scalar("loss", val_loss)
                tf.summary.scalar("accuracy", val_accuracy)
        with train_writer.as_default(step=global_step):
            tf.summary.scalar("epoch_accuracy", train_accuracy)
            if epoch % max(epochs // 10, 1) == 0 or epoch == epochs - 1:
                for weight in model.trainable_weights:
                    tf.summary.histogram(weight.path, weight)
        if selection_score(row) > float(position["best_val_accuracy"]):
            position["best_val_accuracy"].assign(selection_score(row))
            tmp = run_dir / "best.tmp.keras"
            model.save(tmp)
            os.replace(tmp, run_dir / "best.keras")
        position["epoch"].assign(epoch + 1)
        position["step"].assign(0)
        manager.save()
        write_metrics_csv(run_dir / "metrics.csv", rows)
        start_step = 0
        if stop["signal"] and epoch + 1 < epochs:  # arrived during validation
            return stopped(f"after epoch {epoch + 1}")
    for writer in (train_writer, val_writer):
        writer.flush()

    # Test evaluation with the best model, then the plots.
    best = keras.models.load_model(run_dir / "best.keras")
    model.set_weights(best.get_weights())
    test_loss, test_accuracy, logits = evaluate(test_ds, tta=config["tta"])
    probabilities = tf.nn.softmax(logits).numpy()
    predictions = probabilities.argmax(1)
    matrix = plots.confusion_matrix(test_labels, predictions, 10)
    names = cifar10_input.CLASS_NAMES
    plots.learning_curves(rows, run_dir / "learning_curves.png")
    plots.save_confusion_matrix(matrix, names, run_dir / "confusion_matrix.png", run_dir / "confusion_matrix.csv")
    plots.per_class_accuracy(matrix, names, run_dir / "per_class_accuracy.png")
    plots.confident_mistakes(test_images, test_labels, probabilities, names, run_dir / "confident_mistakes.png")
    best_row = max(rows, key=selection_score)
    results = dict(test_accuracy=test_accuracy, test_loss=test_loss, test_time_flip=config["tta"],
                   best_epoch=best_row["epoch"], best_val_accuracy=best_row["val_accuracy"],
                   epochs_run=len(rows), train_seconds=round(sum(r["seconds"] for r in rows), 1),
                   per_class_accuracy=dict(zip(names, (np.diag(matrix) / matrix.sum(1)).round(4).tolist())))
    write_json_atomic(run_dir / "metrics.json", results)
    print(f"test accuracy {100 * test_accuracy:.2f}% (best epoch {best_row['epoch']}"
          f"{', test-time flip' if config['tta'] else ''}); results and plots in {run_dir}")
    return 0


def _for_display(images):
    """Rescales normalised images to [0, 1] per image, for TensorBoard."""
    import tensorflow as tf
    low = tf.reduce_min(images, axis=[1, 2, 3], keepdims=True)
    high = tf.reduce_max(images, axis=[1, 2, 3], keepdims=True)
    return (images - low) / tf.maximum(high - low, 1e-6)


def eval_only(config: dict, model_path: Path) -> int:
    """Prints the test accuracy of a saved model (.keras) on the test set."""
    import keras
    import numpy as np

    import cifar10_input
    select_device(config["device"])
    config_path = model_path.parent / "config.json"
    saved = json.loads(config_path.read_text())["options"] if config_path.exists() else {}
    # The run's own split and normalisation; the data location given now (it may have moved).
    batches_dir, _, val_size = prepare_data({**saved, "data_dir": config["data_dir"], "data_url": config["data_url"]})
    test_ds = cifar10_input.make_dataset(batches_dir, "test", batch_size=256, val_size=val_size,
                                         num_train_examples=saved.get("num_train_examples"),
                                         image_size=saved.get("image_size", 32), seed=saved.get("seed", 0))
    model = keras.models.load_model(model_path)
    tta = saved.get("tta", False)  # evaluate the way the run did, so the figure matches its metrics.json
    correct = total = 0
    for images, labels in test_ds:
        correct += int(np.sum(np.argmax(predict_logits(model, images, tta), 1) == labels.numpy()))
        total += len(labels)
    print(f"test accuracy {100 * correct / total:.2f}% ({correct}/{total}){' with test-time flip' if tta else ''} "
          f"for {model_path}")
    return 0


def as_flags(options: dict) -> str:
    """Options as the command-line flags that set them, e.g. --widths 32,64 --no-batch-norm."""
    flags = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + flag[2:])
        else:
            flags.append(f"{flag} {','.join(map(str, value)) if isinstance(value, tuple) else value}")
    return " ".join(flags)


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    given = vars(parser.parse_args(argv))
    if given.pop("list_presets", False):
        for name, preset in PRESETS.items():
            note = "   (the defaults at the top of train.py)" if name == "tuned" else ""
            print(f"{name:12s} {as_flags(preset)}{note}")
        return 0
    resume, model_path = given.pop("resume", None), given.pop("eval_only", None)
    run_dir, created = None, False
    try:
        if resume:
            run_dir = Path(resume)
            if not (run_dir / "config.json").exists() or not (run_dir / "checkpoints").exists():
                raise UsageError(f"{run_dir} has no config.json and checkpoint to resume from; check the path")
            if given:
                raise UsageError("--resume takes the run's own options; drop " +
                                 " ".join(f"--{k.replace('_', '-')}" for k in given))
            config = json.loads((run_dir / "config.json").read_text())["options"]
            config = {**config, **{k: tuple(v) for k, v in config.items() if isinstance(v, list)}}
        else:
            config = resolve_config(given)
        if model_path:
            if not Path(model_path).is_file():
                raise UsageError(f"--eval-only {model_path}: no such file; pass a run's best.keras")
            return eval_only(config, Path(model_path))
        if not resume:
            name = config["name"] or f"{config['preset']}-{time.strftime('%Y%m%d-%H%M%S')}"
            run_dir = Path(config["run_dir"]) / name
            if run_dir.exists():
                raise UsageError(f"{run_dir} already exists; choose another --name, or continue it with "
                                 f"--resume {run_dir}")
            run_dir.mkdir(parents=True)
            created = True
            write_json_atomic(run_dir / "config.json", describe_run(config))
        with stop_requests() as stop:
            return run(config, run_dir, resume=bool(resume), stop=stop)
    except UsageError as err:
        _discard_unstarted(run_dir, created)
        print(f"usage error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # a data problem or an unwritten exercise: one clear line, no traceback
        _discard_unstarted(run_dir, created)
        import cifar10_input
        if isinstance(err, cifar10_input.DataError):
            print(f"error: {err}", file=sys.stderr)
            return 1
        if isinstance(err, NotImplementedError):
            print(f"NOT IMPLEMENTED: {missing_piece(err)}; write it (see the TODO there), then run again",
                  file=sys.stderr)
            return 2
        raise


def missing_piece(error: NotImplementedError) -> str:
    """'file::function: hint' of an exercise stub's error, even when TensorFlow re-raised it with
    more text around it (from a tf.function or a tf.data map); else where it was raised."""
    found = re.findall(r"[\w/.-]+\.py::[\w.]+: [^\n]*", str(error))
    if found:  # the last: TensorFlow quotes the stub's source line before the error itself
        return found[-1]
    frame = traceback.extract_tb(error.__traceback__)[-1]
    return f"{Path(frame.filename).name}::{frame.name}: {error}".rstrip(": ")


def _discard_unstarted(run_dir: Path | None, created: bool) -> None:
    """Removes a run folder this invocation created, if it failed before saving any checkpoint."""
    if created and run_dir is not None and not (run_dir / "checkpoints").exists():
        import shutil
        shutil.rmtree(run_dir, ignore_errors=True)


def describe_run(config: dict) -> dict:
    """config.json: the options, the command, versions, device and git commit."""
    import keras
    import numpy as np
    import tensorflow as tf
    return dict(options=config, model_options=model_options(config), command=" ".join(map(shlex.quote, sys.argv)), git_commit=git_commit(),
                versions=dict(python=platform.python_version(), tensorflow=tf.__version__,
                              keras=keras.__version__, numpy=np.__version__),
                machine=dict(platform=platform.platform(), cpu_count=os.cpu_count(),
                             gpus=[g.name for g in tf.config.list_physical_devices("GPU")]),
                started=time.strftime("%Y-%m-%d %H:%M:%S"))


if __name__ == "__main__":
    sys.exit(main())
