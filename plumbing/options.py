"""train.py's command line: flags, presets, checks. Standard library only, so `--help` is instant.

The help text cannot drift from the code: every "(default: ...)" is generated from train.DEFAULTS,
and the model flags (their names, choices, defaults and help) are read from the model files'
source (each builder's keyword options and Args docstring, and each file's CHOICES), without
importing them (that would load TensorFlow, which takes seconds).
"""

from __future__ import annotations

import argparse
import ast
import functools
import math
import os
import re
import sys
from pathlib import Path
from typing import NamedTuple

from plumbing import sweep
from plumbing.errors import OneLineParser, UsageError

REPO = Path(__file__).resolve().parent.parent
MODEL_FILES = {
    "linear": ("linear_model.py", "build_linear_model"),
    "mlp": ("mlp.py", "build_mlp"),
    "cnn": ("cnn.py", "build_cnn"),
}
DATASETS = ("cifar10", "mnist", "fashion-mnist")
OPTIMIZERS = ("sgd", "momentum", "adam", "adamw", "rmsprop", "adagrad", "adadelta")
SCHEDULES = ("constant", "step", "cosine", "onecycle")
MAX_IMAGE_SIZE = 128  # 4x CIFAR-10's side; larger batches of activations no longer fit in memory
MIN_LR = 1e-8  # a smaller step changes no weight: float32 rounds w - lr * gradient back to w
MAX_BRIGHTNESS = 5.0  # in pixel standard deviations: a larger shift leaves nothing of the image
MEMORY_PER_PARAMETER = (
    24  # bytes: float32 weights, best-model copy, gradients, optimizer slots, saving
)

# The course's stages. Each preset changes only what differs from train.DEFAULTS (the tuned recipe);
# stage presets train with Adam at 1e-3, as the handouts do, and without augmentation (turn it on with
# --flip --crop 4), so that each stage runs with only its own code written.
STAGE_TRAINING = dict(optimizer="adam", lr=1e-3, flip=False, crop=0)
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
TUNED_NOTE = "   (train.py's DEFAULTS)"
PRESET_OF_MODEL = {"linear": "linear", "mlp": "mlp", "cnn": "tuned"}
# Where a dataset needs other defaults: digits are not mirrored (a mirrored 2 is no 2), and 28x28
# images get a 2-pixel crop padding. Applied unless the flag is given.
DATASET_ADJUSTMENTS = {"mnist": dict(flip=False, tta=False, crop=2), "fashion-mnist": dict(crop=2)}
# The tuned recipe on the 60,000-image 28x28 datasets: one convolution per stage and 10 epochs, chosen on
# Fashion-MNIST's validation split to train in at most 15 minutes on 2 CPU cores (bench/fashion_mnist.py).
TUNED_28X28 = dict(convs_per_stage=1, epochs=10)

HELP = {  # the training flags; "(default: ...)" is added from train.DEFAULTS
    "dataset": "which dataset",
    "data_dir": "data folder",
    "data_url": "where to get the data: URL, file:// or path",
    "num_train_examples": "train on this many examples",
    "val_size": "examples held out for validation",
    "image_size": "resize images to this side",
    "flip": "random horizontal flips",
    "crop": "pad by N pixels and crop back randomly; 0 = off",
    "brightness": "random brightness shift up to this",
    "contrast": "random contrast factor 1 +- this",
    "cutout": "blank a random square of this side; 0 = off",
    "optimizer": "the optimizer",
    "lr": "peak learning rate",
    "momentum": "for momentum and rmsprop",
    "beta1": "Adam/AdamW beta_1",
    "beta2": "Adam/AdamW beta_2",
    "epsilon": "Adam/AdamW/RMSprop/Adagrad/Adadelta epsilon",
    "lr_schedule": "how the learning rate changes",
    "warmup_epochs": "linear warm-up before the schedule",
    "weight_decay": "L2 strength on kernels; decoupled decay with adamw",
    "label_smoothing": "for the loss",
    "batch_size": "examples per step",
    "epochs": "passes over the training set",
    "steps": "train for this many steps instead of whole epochs",
    "tta": "test-time flip: average predictions with the mirror image",
    "device": "auto: the GPU when TensorFlow sees one",
    "mixed_precision": "16-bit compute: float16 on a GPU, bfloat16 on a CPU that has it",
    "xla": "compile the training step with XLA (slower on CPUs)",
    "seed": "seed of every random choice",
    "deterministic": "deterministic ops: reproducible, somewhat slower",
    "run_dir": "parent folder of runs",
    "name": "run folder name",
}
UNSET_TYPES = {
    "data_dir": str,
    "data_url": str,
    "name": str,
    "num_train_examples": int,
    "val_size": int,
    "image_size": int,
    "steps": int,
}  # flags whose default is None (decided at run time)
DEFAULT_TEXT = {
    "data_dir": "$CIFAR10_DATA_DIR or ./data",
    "data_url": "the official source",
    "num_train_examples": "all",
    "val_size": "10%% of the training files",
    "image_size": "the dataset's own",
    "name": "PRESET-MMDD-HHMMSS",
    "epochs": f"30; the tuned CNN on MNIST and Fashion-MNIST: {TUNED_28X28['epochs']}",
}


# ----------------------------------------------------------------------------- the model files, read as text
def _literal(node):
    """ast.literal_eval that also accepts dict(key=value, ...) calls."""
    if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "dict" and not node.args:
        return {kw.arg: _literal(kw.value) for kw in node.keywords}
    return ast.literal_eval(node)


@functools.cache
def model_files() -> dict:
    """{model: {"options": {name: default}, "help": {name: text}, "choices": {name: values}}}, read from the
    builders' source: keyword-only parameters, their Args docstring lines, and the file's CHOICES."""
    models = {}
    for model, (filename, builder) in MODEL_FILES.items():
        tree = ast.parse((REPO / filename).read_text())
        function = next(
            n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == builder
        )
        args = function.args
        options = {a.arg: _literal(d) for a, d in zip(args.kwonlyargs, args.kw_defaults)}
        doc = ast.get_docstring(function) or ""
        help_lines = dict(
            re.findall(r"^\s{4}(\w+): (.+?)(?=\n\s{4}\w+:|\n\n|\Z)", doc, re.M | re.S)
        )
        choices = next(
            (
                _literal(n.value)
                for n in tree.body
                if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", None) == "CHOICES"
            ),
            {},
        )
        models[model] = dict(
            options=options,
            choices=choices,
            help={k: " ".join(v.split()) for k, v in help_lines.items()},
        )
    return models


def builder_options(model: str) -> set[str]:
    """The keyword options of a model's builder (flags spelled with underscores)."""
    return set(model_files()[model]["options"])


# ----------------------------------------------------------------------------- the parser
def _int_tuple(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        message = f"expected comma-separated integers such as 32,64,128, not {text!r}"
        raise argparse.ArgumentTypeError(message) from None
    if min(values) <= 0:
        raise argparse.ArgumentTypeError(f"expected positive integers, not {text!r}")
    return values


def _flag_kwargs(default) -> dict:
    if isinstance(default, bool):
        return dict(action=argparse.BooleanOptionalAction)
    if isinstance(default, tuple):
        return dict(type=_int_tuple)
    return dict(type=type(default)) if isinstance(default, (int, float)) else {}


def _show(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value).replace("%", "%%")


def make_parser(defaults: dict) -> argparse.ArgumentParser:
    """The command line. Every default is SUPPRESSed: only flags the user typed reach the config."""
    p = OneLineParser(
        prog="train.py",
        description="Train a linear model, an MLP or a CNN on CIFAR-10, MNIST or Fashion-MNIST.",
        argument_default=argparse.SUPPRESS,
    )
    p.add_argument(
        "--model",
        choices=tuple(MODEL_FILES),
        help=f"which model file to train (default: {defaults['model']})",
    )
    p.add_argument(
        "--preset",
        choices=tuple(PRESETS),
        help="a course stage (see --list-presets); flags override it (default: the model's own)",
    )
    p.add_argument("--list-presets", action="store_true", help="print the presets and exit")
    groups = {
        "data and augmentation (training batches only)": (
            "dataset",
            "data_dir",
            "data_url",
            "num_train_examples",
            "val_size",
            "image_size",
            "flip",
            "crop",
            "brightness",
            "contrast",
            "cutout",
        ),
        "optimisation": (
            "optimizer",
            "lr",
            "momentum",
            "beta1",
            "beta2",
            "epsilon",
            "lr_schedule",
            "warmup_epochs",
            "weight_decay",
            "label_smoothing",
            "batch_size",
            "epochs",
            "steps",
            "tta",
        ),
        "machine and run": (
            "device",
            "mixed_precision",
            "xla",
            "seed",
            "deterministic",
            "run_dir",
            "name",
        ),
    }
    choices = dict(
        dataset=DATASETS, optimizer=OPTIMIZERS, lr_schedule=SCHEDULES, device=("auto", "cpu", "gpu")
    )
    for title, keys in groups.items():
        group = p.add_argument_group(title)
        length = group.add_mutually_exclusive_group() if "epochs" in keys else None
        for key in keys:
            default = defaults[key]
            kwargs = _flag_kwargs(default) if default is not None else dict(type=UNSET_TYPES[key])
            text = DEFAULT_TEXT.get(key, _show(default))
            (length if key in ("epochs", "steps") else group).add_argument(
                "--" + key.replace("_", "-"),
                choices=choices.get(key),
                help=f"{HELP[key]} (default: {text})",
                **kwargs,
            )
    _add_model_flags(p, defaults)
    group = p.add_argument_group("several runs, or instead of training")
    group.add_argument(
        "--sweep",
        action="append",
        metavar="KEY=V1,V2",
        help="train every combination of these values (repeat for more keys), e.g. "
        "lr=1e-3,1e-2; the same command continues an interrupted sweep",
    )
    group.add_argument("--resume", metavar="RUN", help="continue the interrupted run in folder RUN")
    group.add_argument(
        "--eval-only", metavar="MODEL", help="evaluate a saved .keras model on the test set"
    )
    return p


def _add_model_flags(p: argparse.ArgumentParser, defaults: dict) -> None:
    group = p.add_argument_group("model options (each for the models it names)")
    files = model_files()
    names = sorted(
        {name for info in files.values() for name in info["options"]} - set(defaults),
        key=lambda name: [m for m in MODEL_FILES if name in files[m]["options"]] + [name],
    )
    for name in names:
        models = [m for m in MODEL_FILES if name in files[m]["options"]]
        values = {m: files[m]["options"][name] for m in models}
        shown = (
            _show(values[models[0]])
            if len(set(map(repr, values.values()))) == 1
            else ", ".join(f"{m} {_show(v)}" for m, v in values.items())
        )
        texts = {m: files[m]["help"].get(name, "").rstrip(".").replace("%", "%%") for m in models}
        text = (
            "/".join(models) + ": " + texts[models[0]]
            if len(set(texts.values())) == 1
            else "; ".join(f"{m}: {texts[m]}" for m in models)
        )
        choices = next(
            (files[m]["choices"][name] for m in models if name in files[m]["choices"]), None
        )
        group.add_argument(
            "--" + name.replace("_", "-"),
            choices=choices,
            **_flag_kwargs(values[models[0]]),
            help=f"{text} (default: {shown})",
        )


# ----------------------------------------------------------------------------- presets and checks
def as_flags(options: dict) -> str:
    """Options as the command-line flags that set them, e.g. --widths 32,64 --no-batch-norm."""
    flags = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + flag[2:])
        else:
            flags.append(f"{flag} {_show(value)}")
    return " ".join(flags)


def list_presets() -> str:
    return "\n".join(
        f"{name:12s} {as_flags(preset)}{TUNED_NOTE if name == 'tuned' else ''}"
        for name, preset in PRESETS.items()
    )


def resolve(given: dict, defaults: dict) -> dict:
    """DEFAULTS, then the preset, then the dataset's adjustments, then the flags given; checks them."""
    model = given.get("model")
    preset = given.get("preset") or PRESET_OF_MODEL[model or defaults["model"]]
    preset_model = PRESETS[preset]["model"]
    if model and model != preset_model:
        raise UsageError(
            f"--preset {preset} trains the {preset_model} model; drop --model {model}, or "
            f"choose a preset for {model} (see --list-presets)"
        )
    config = {**defaults, **PRESETS[preset], **given, "preset": preset}
    adjustments = DATASET_ADJUSTMENTS.get(config["dataset"], {})
    if preset == "tuned" and config["dataset"] in DATASET_ADJUSTMENTS:
        adjustments = {**adjustments, **TUNED_28X28}
    for key, value in adjustments.items():
        if key not in given and (key != "crop" or config["crop"]):
            config[key] = value
    all_model_options = set().union(*(builder_options(m) for m in MODEL_FILES)) - set(defaults)
    for key in sorted(all_model_options & set(given) - builder_options(config["model"])):
        raise UsageError(
            f"--{key.replace('_', '-')} does not apply to --model {config['model']}; drop it"
        )
    check(config, given)
    return config


def check(config: dict, given: dict) -> None:
    """Raises UsageError for a value no run can use, naming the flag and what it must be."""
    for key, value in config.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise UsageError(f"--{key.replace('_', '-')} must be a finite number, not {value}")
    size = config["image_size"]
    checks = [
        (config["lr"] > 0, "--lr must be positive"),
        (
            not 0 < config["lr"] < MIN_LR,
            f"--lr {config['lr']:g} is too small to change any weight (float32 "
            f"rounds such steps away); use at least {MIN_LR:g}",
        ),
        (0 <= config["momentum"] < 1, "--momentum must be in [0, 1)"),
        (
            0 <= config["beta1"] < 1 and 0 <= config["beta2"] < 1,
            "--beta1 and --beta2 must be in [0, 1)",
        ),
        (config["epsilon"] > 0, "--epsilon must be positive"),
        (config["weight_decay"] >= 0, "--weight-decay must be >= 0"),
        (0 <= config["label_smoothing"] < 1, "--label-smoothing must be in [0, 1)"),
        (0 <= config.get("dropout", 0) < 1, "--dropout must be in [0, 1)"),
        (config["batch_size"] > 0, "--batch-size must be positive"),
        (config["epochs"] > 0, "--epochs must be positive"),
        (config["steps"] is None or config["steps"] > 0, "--steps must be positive"),
        (config["warmup_epochs"] >= 0, "--warmup-epochs must be >= 0"),
        (
            not (config["warmup_epochs"] and config["lr_schedule"] == "onecycle"),
            "--warmup-epochs: the one-cycle schedule warms up by itself (its first 25%); add --lr-schedule "
            "cosine, step or constant",
        ),
        (0 <= config["seed"] < 2**31, "--seed must be between 0 and 2147483647"),
        (
            config["num_train_examples"] is None or config["num_train_examples"] > 0,
            "--num-train-examples must be positive",
        ),
        (config["val_size"] is None or config["val_size"] >= 0, "--val-size must be >= 0"),
        (
            size is None or 8 <= size <= MAX_IMAGE_SIZE,
            f"--image-size must be between 8 and {MAX_IMAGE_SIZE}",
        ),
        (0 <= config["crop"] <= 16, "--crop must be between 0 and 16 (pixels of padding)"),
        (config["cutout"] >= 0, "--cutout must be >= 0"),
        (
            0 <= config["brightness"] <= MAX_BRIGHTNESS and 0 <= config["contrast"] < 1,
            f"--brightness must be between 0 and {MAX_BRIGHTNESS:g} (pixel standard deviations) "
            f"and --contrast in [0, 1)",
        ),
        (config.get("convs_per_stage", 1) >= 1, "--convs-per-stage must be at least 1"),
        (config.get("kernel_size", 1) >= 1, "--kernel-size must be at least 1"),
        (
            config.get("dense_units", 1) >= 1 or "dense_units" not in given,
            "--dense-units must be at least 1 (for no dense layer, use --head gap)",
        ),
        (
            not ("dense_units" in given and config.get("head") == "gap"),
            "--dense-units applies only to --head flatten",
        ),
        (
            not ("pooling" in given and config.get("downsample") != "pool"),
            "--pooling applies only to --downsample pool",
        ),
        (
            config.get("name") is None or _plain_name(config["name"]),
            "--name must be a plain folder name (no '/', not '.' or '..'); "
            "use --run-dir for the parent folder",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise UsageError(message)


def _plain_name(name: str) -> bool:
    return bool(name) and name not in (".", "..") and not any(c in name for c in "/\\\0")


class Job(NamedTuple):
    """What the command line asks for: a config to train, or a run to resume or a model to evaluate
    (then `config` holds only the flags given: the run's own options are read from its folder)."""

    config: dict
    resume: str | None = None  # --resume RUN
    eval_only: str | None = None  # --eval-only MODEL


def parse(argv: list[str] | None, defaults: dict) -> Job:
    """Parses the flags into a Job.

    --help and --list-presets print and exit here. With --resume or --eval-only, the flags given are
    returned as they are: the config is read later from the run's folder.
    """
    given = vars(make_parser(defaults).parse_args(argv))
    if given.pop("list_presets", False):
        print(list_presets())
        sys.exit(0)
    resume, eval_only = given.pop("resume", None), given.pop("eval_only", None)
    sweeps = given.pop("sweep", None)
    if resume or eval_only:  # the saved run's options apply; `given` may only move its data
        if sweeps:
            raise UsageError("--sweep cannot be combined with --resume or --eval-only")
        return Job(given, resume, eval_only)
    config = resolve(given, defaults)
    if sweeps:
        config["sweep"] = sweep_plan(sweeps, given, config, defaults)
    return Job(config)


def sweep_plan(texts: list[str], given: dict, config: dict, defaults: dict) -> dict:
    """The sweep's folder, its grid of (point, config) with every point checked now, and its command."""
    sweeps = sweep.parse(texts, lambda argv: vars(make_parser(defaults).parse_args(argv)))
    both = sorted(set(sweeps) & set(given))
    if both:
        raise UsageError(f"--{both[0].replace('_', '-')} is both given and swept; drop one")
    grid = [(point, resolve({**given, **point}, defaults)) for point in sweep.points(sweeps)]
    flags = {k: v for k, v in given.items() if k not in ("run_dir", "name")}
    return dict(
        folder=sweep.folder(config["run_dir"], config["name"], config["preset"], sweeps),
        grid=grid,
        command=dict(flags=flags, sweeps=sweeps),
    )


RESUME_OVERRIDES = ("data_dir", "data_url")  # a run may follow its data to another folder


def for_resume(saved: dict, given: dict) -> dict:
    """The options of a saved run, with the data location given now (if any). Raises UsageError for others."""
    others = sorted(set(given) - set(RESUME_OVERRIDES))
    if others:
        raise UsageError(
            "--resume and --eval-only take the run's own options; drop "
            + " ".join(f"--{k.replace('_', '-')}" for k in others)
        )
    config = {**saved, **given}
    if given.get("data_dir") or given.get("data_url"):
        config["data_folder"] = None  # prepare the data afresh from where the user points
    elif config.get("data_folder"):  # the folder the run used, wherever it was started from
        config["data_dir"] = str(Path(config["data_folder"]).parent)
    return config


def check_for_data(config: dict, *, num_train: int, image_size: int) -> None:
    """The checks that need the data's size: a batch no larger than the training set, a crop and a cutout
    smaller than the image, a model whose feature maps do not shrink to nothing and that fits in memory."""
    if num_train < config["batch_size"]:
        raise UsageError(
            f"--batch-size {config['batch_size']} is larger than the {num_train} training "
            f"examples; use a smaller batch"
        )
    if config["crop"] >= image_size:
        raise UsageError(
            f"--crop {config['crop']} must be smaller than the {image_size}-pixel images"
        )
    if config["cutout"] >= image_size:
        raise UsageError(
            f"--cutout {config['cutout']} must be smaller than the {image_size}-pixel images"
        )
    check_model_size(config, image_size, 3 if config["dataset"] == "cifar10" else 1)


def model_layers(config: dict, side: int, channels: int) -> list[tuple[str, str, int]]:
    """(layer, the flag that sets its size, number of weights) of the model the config builds, counted
    without building it (that would allocate the weights). Raises UsageError if a pooling stage gets a
    feature map smaller than 2x2 (it would shrink it to nothing)."""
    config = {
        **model_files()[config["model"]]["options"],
        **config,
    }  # a config of an older version too
    inputs, layers = side * side * channels, []
    if config["model"] == "cnn":
        widths, kernel = config["widths"], config["kernel_size"]
        for stage, width in enumerate(widths, start=1):
            if config["downsample"] == "pool" and side < 2:
                raise UsageError(
                    f"--widths {_show(widths)}: each of its {len(widths)} stages halves the "
                    f"feature map, which is 1x1 after stage {stage - 1}; use at most "
                    f"{stage - 1} widths, or --downsample stride or none"
                )
            for conv in range(1, config["convs_per_stage"] + 1):
                layers.append(
                    (f"stage{stage}_conv{conv}", "--widths", kernel * kernel * channels * width)
                )
                channels = width
            if config["downsample"] == "pool":
                side = side // 2
            elif config["downsample"] == "stride":
                side = math.ceil(side / 2)
        inputs = channels if config["head"] == "gap" else side * side * channels
        hidden = (
            [config["dense_units"]] if config["head"] == "flatten" and config["dense_units"] else []
        )
        names = [("dense", "--dense-units")]
    else:
        hidden = list(config.get("hidden_units", ()))
        names = [(f"hidden{i}", "--hidden-units") for i in range(1, len(hidden) + 1)]
    for (name, flag), units in zip(names, hidden):
        layers.append((name, flag, inputs * units))
        inputs = units
    flag = {"mlp": "--hidden-units", "cnn": "--widths"}.get(config["model"], "--image-size")
    return layers + [("classifier", flag, inputs * 10)]


def check_model_size(config: dict, side: int, channels: int) -> None:
    """Refuses a model whose training needs more memory than the machine has, naming its largest layer."""
    layers = model_layers(config, side, channels)
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (
        AttributeError,
        ValueError,
        OSError,
    ):  # not known here (Windows): let TensorFlow find out
        return
    need = MEMORY_PER_PARAMETER * sum(count for _, _, count in layers)
    if need > memory:
        name, flag, count = max(layers, key=lambda layer: layer[2])
        raise UsageError(
            f"the model is too large: its layer {name} alone has {count:,} weights ({flag}), "
            f"and training it needs about {need / 2**30:,.0f} GB of memory, more than this "
            f"machine's {memory / 2**30:,.0f} GB; make {flag} smaller"
        )
