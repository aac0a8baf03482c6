"""train.py's command line: flags, presets, checks. Standard library only, so `--help` is instant.

One source per option. The training flags are train.py's DEFAULTS: a table of Flag entries (default,
help, choices, rule), grouped as --help shows them; the parser, the help, the defaults and the
checks are made from it. The model flags are the builders' keyword options, listed in MODEL_FLAGS
(their per-model defaults, help and choices) because importing the builders would load TensorFlow;
tests/test_train_cli.py checks the list against each builder's inspect.signature."""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from plumbing.errors import OneLineParser, UsageError

# The one model registry: --model NAME trains the builder of this file (train.py imports them).
MODELS = {
    "linear": ("linear_model.py", "build_linear_model"),
    "mlp": ("mlp.py", "build_mlp"),
    "cnn": ("cnn.py", "build_cnn"),
}
MIN_LR = 1e-8  # a smaller step changes no weight: float32 rounds w - lr * gradient back to w
# bytes: float32 weights, best-model copy, gradients, optimizer slots, saving
MEMORY_PER_PARAMETER = 24

TUNED_NOTE = "   (train.py's DEFAULTS)"


# ----------------------------------------------------------------------------- the flags' table
@dataclasses.dataclass(frozen=True)
class Flag:
    """One of train.py's flags: its default, its help, the values it may take.

    `rule` is (what the value must be, a test of it), e.g. ("be positive", lambda lr: lr > 0): the
    error reads "--lr must be positive". A default of None is decided at run time: `kind` is then
    the flag's type and `shown` how --help names that default."""

    default: object
    help: str
    choices: tuple | None = None
    rule: tuple[str, Callable] | None = None
    kind: type | None = None
    shown: str | None = None


@dataclasses.dataclass(frozen=True)
class Recipes:
    """train.py's course recipes: the presets, the preset each --model gets without --preset, the
    per-dataset rules and the tuned recipe's changes for 28x28 data."""

    presets: dict[str, dict]
    preset_of_model: dict[str, str]
    dataset_rules: dict[str, dict]
    tuned_28x28: dict


class Table(dict):
    """The defaults ({name: default}, what train.py's code reads), keeping the Flag of each name in
    `flags`, its --help group in `groups` ({title: names}; "" for the flags shown first) and the
    course's recipes in `recipes`."""

    def __init__(self, groups: dict[str, dict[str, Flag]], recipes: Recipes):
        self.flags = {name: flag for flags in groups.values() for name, flag in flags.items()}
        self.groups = {title: tuple(flags) for title, flags in groups.items()}
        self.recipes = recipes
        super().__init__({name: flag.default for name, flag in self.flags.items()})


def table(groups: dict[str, dict[str, Flag]], **recipes) -> Table:
    """train.py's DEFAULTS from its table of flags, grouped as --help shows them, and its recipes
    (the keyword arguments of Recipes)."""
    return Table(groups, Recipes(**recipes))


@dataclasses.dataclass(frozen=True)
class ModelFlag:
    """A keyword option of some builders: its default in each (model -> default), help, choices."""

    defaults: dict
    help: str
    choices: tuple | None = None


ACTIVATIONS = ("relu", "elu", "tanh", "sigmoid")
# The builders' keyword options, as their signatures give them (checked by test_train_cli.py), in
# the order --help lists them; weight_decay is a training flag (train.DEFAULTS) that they take too.
MODEL_FLAGS = {
    "batch_norm": ModelFlag({"cnn": True}, "batch norm after every convolution"),
    "convs_per_stage": ModelFlag(
        {"cnn": 2}, "conv blocks per stage (named stage1_conv1, stage1_conv2, ...)"
    ),
    "dense_units": ModelFlag(
        {"cnn": 0}, 'width of the hidden dense layer of the "flatten" head (0: none)'
    ),
    "downsample": ModelFlag(
        {"cnn": "pool"},
        '"pool" (a pool block stageN_pool after each stage), "stride" (the stage\'s last conv '
        'block uses stride 2 instead) or "none"',
        choices=("pool", "stride", "none"),
    ),
    "head": ModelFlag(
        {"cnn": "flatten"},
        '"flatten" (flatten, an optional dense layer of --dense-units, then the classifier) or '
        '"gap" (global average pooling, then the classifier: fewer parameters)',
        choices=("flatten", "gap"),
    ),
    "kernel_size": ModelFlag({"cnn": 3}, "side of every convolution's square kernel"),
    "pooling": ModelFlag(
        {"cnn": "max"}, '"max" or "avg", for --downsample pool', choices=("max", "avg")
    ),
    "regularize_bias": ModelFlag(
        {"cnn": False},
        "the same L2 on the biases of the dense layer and the classifier, as the ETH handout "
        "does (lambda * (sum W^2 + sum b^2))",
    ),
    "widths": ModelFlag(
        {"cnn": (32, 64, 128)}, "channels of each stage; its length is the number of stages"
    ),
    "activation": ModelFlag(
        {"mlp": "relu", "cnn": "relu"},
        "after every hidden layer (mlp), conv block and dense layer (cnn)",
        choices=ACTIVATIONS,
    ),
    "dropout": ModelFlag(
        {"mlp": 0.0, "cnn": 0.0},
        "rate of a Dropout layer after each hidden layer (mlp), after each stage and the dense "
        "layer (cnn); 0: none",
    ),
    "hidden_units": ModelFlag(
        {"mlp": (512,)},
        "width of each hidden layer (Dense layers named hidden1, hidden2, ...); 512 is the "
        "one-hidden-layer MLP of the course",
    ),
    "init_scale": ModelFlag({"mlp": 0.01}, 'std of "normal", half-width of "uniform"'),
    "initializer": ModelFlag(
        {"mlp": "he_normal"},
        "he_normal (for ReLU), glorot_uniform, normal or uniform",
        choices=("he_normal", "glorot_uniform", "normal", "uniform"),
    ),
    "regularizer": ModelFlag(
        {"mlp": "l2"}, "the penalty on every kernel (make_regularizer)", choices=("l2", "l1")
    ),
}
BUILDER_WEIGHT_DECAY = 0.0  # the builders' own default: train.py always passes --weight-decay


def model_options(model: str) -> dict:
    """{option: default} of a model's builder: its keyword options (flags spelled with
    underscores)."""
    found = {
        name: flag.defaults[model] for name, flag in MODEL_FLAGS.items() if model in flag.defaults
    }
    return {**found, "weight_decay": BUILDER_WEIGHT_DECAY}


def builder_options(model: str) -> set[str]:
    """The keyword options of a model's builder (flags spelled with underscores)."""
    return set(model_options(model))


def flag_name(key: str) -> str:
    """The command-line flag of an option: learning_rate -> --learning-rate."""
    return "--" + key.replace("_", "-")


def show(value, sep: str = ",") -> str:
    """A value as --help and --list-presets write it: 32,64 for a tuple (32x64 with sep="x", as a
    sweep's folder names do), else str(value)."""
    return sep.join(map(str, value)) if isinstance(value, tuple) else str(value)


def choices_of(key: str, defaults: Table) -> tuple | None:
    """The values a flag (training or model) may take, or None for any of its type."""
    if key in defaults.flags:
        return defaults.flags[key].choices
    return MODEL_FLAGS[key].choices if key in MODEL_FLAGS else None


def kind_of(key: str, defaults: Table) -> type | None:
    """The type of a training flag's values: that of its default, or its Flag's `kind`."""
    flag = defaults.flags[key]
    return flag.kind if flag.default is None else type(flag.default)


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


def make_parser(defaults: Table) -> argparse.ArgumentParser:
    """The command line. Every default is SUPPRESSed: only flags the user typed reach the config."""
    p = OneLineParser(
        prog="train.py",
        description="Train a linear model, an MLP or a CNN on CIFAR-10, MNIST or Fashion-MNIST.",
        argument_default=argparse.SUPPRESS,
    )
    for title, names in defaults.groups.items():
        group = p.add_argument_group(title) if title else p
        # --epochs and --steps: one or the other (two ways to say how long to train)
        length = group.add_mutually_exclusive_group() if "epochs" in names else None
        for name in names:
            flag = defaults.flags[name]
            where = length if name in ("epochs", "steps") else group
            where.add_argument(
                flag_name(name),
                choices=flag.choices,
                help=_escape(f"{flag.help} (default: {_shown_default(name, flag, defaults)})"),
                **_flag_kwargs(flag.default if flag.default is not None else flag.kind()),
            )
        if not title:
            p.add_argument(
                "--preset",
                choices=tuple(defaults.recipes.presets),
                help="a course stage (see --list-presets); flags override it "
                "(default: the model's own)",
            )
            p.add_argument("--list-presets", action="store_true", help="print the presets and exit")
    _add_model_flags(p, defaults)
    _add_other_commands(p)
    return p


def _escape(text: str) -> str:
    return text.replace("%", "%%")  # argparse formats help texts with %


def _shown_default(name: str, flag: Flag, defaults: Table) -> str:
    """The "(default: ...)" of a flag's help: its default, and that of the tuned 28x28 recipe."""
    text = flag.shown or show(flag.default)
    tuned_28x28 = defaults.recipes.tuned_28x28
    if name in tuned_28x28:
        text += f"; the tuned CNN on MNIST and Fashion-MNIST: {show(tuned_28x28[name])}"
    return text


def _add_model_flags(p: argparse.ArgumentParser, defaults: Table) -> None:
    """The builders' options (MODEL_FLAGS), each saying which models take it and their defaults."""
    group = p.add_argument_group("model options (each for the models it names)")
    for name, flag in MODEL_FLAGS.items():
        if name in defaults:
            continue
        models, values = list(flag.defaults), list(flag.defaults.values())
        shown = show(values[0])
        if len(set(map(repr, values))) > 1:
            shown = ", ".join(f"{model} {show(value)}" for model, value in flag.defaults.items())
        group.add_argument(
            flag_name(name),
            choices=flag.choices,
            help=_escape(f"{'/'.join(models)}: {flag.help} (default: {shown})"),
            **_flag_kwargs(values[0]),
        )


def _add_other_commands(p: argparse.ArgumentParser) -> None:
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


# ----------------------------------------------------------------------------- presets and checks
def as_flags(options: dict) -> str:
    """Options as the command-line flags that set them, e.g. --widths 32,64 --no-batch-norm."""
    flags = []
    for key, value in options.items():
        if isinstance(value, bool):
            flags.append(flag_name(key) if value else "--no-" + flag_name(key)[2:])
        else:
            flags.append(f"{flag_name(key)} {show(value)}")
    return " ".join(flags)


def list_presets(defaults: Table) -> str:
    return "\n".join(
        f"{name:12s} {as_flags(preset)}{TUNED_NOTE if name == 'tuned' else ''}"
        for name, preset in defaults.recipes.presets.items()
    )


def resolve(given: dict, defaults: Table) -> dict:
    """DEFAULTS, then the preset, then the dataset's adjustments, then the flags given; checks
    them."""
    recipes, model = defaults.recipes, given.get("model")
    preset = given.get("preset") or recipes.preset_of_model[model or defaults["model"]]
    preset_model = recipes.presets[preset]["model"]
    if model and model != preset_model:
        raise UsageError(
            f"--preset {preset} trains the {preset_model} model; drop --model {model}, or "
            f"choose a preset for {model} (see --list-presets)"
        )
    config = {**defaults, **recipes.presets[preset], **given, "preset": preset}
    adjustments = recipes.dataset_rules.get(config["dataset"], {})
    if preset == "tuned" and config["dataset"] in recipes.dataset_rules:
        adjustments = {**adjustments, **recipes.tuned_28x28}
    for key, value in adjustments.items():
        if key not in given and (key != "crop" or config["crop"]):
            config[key] = value
    others = set(MODEL_FLAGS) & set(given) - builder_options(config["model"]) - set(defaults)
    if others:
        key = sorted(others)[0]
        raise UsageError(f"{flag_name(key)} does not apply to --model {config['model']}; drop it")
    check(config, given, defaults)
    return config


def check(config: dict, given: dict, defaults: Table) -> None:
    """Raises UsageError for a value no run can use, naming the flag and what it must be: first each
    flag's own rule (train.py's table), then the rules that involve several flags."""
    for key, value in config.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise UsageError(f"{flag_name(key)} must be a finite number, not {value}")
    for key, flag in defaults.flags.items():
        if flag.rule and config.get(key) is not None:
            must, ok = flag.rule
            if not ok(config[key]):
                raise UsageError(f"{flag_name(key)} must {must}")
    for ok, message in _joint_rules(config, given):
        if not ok:
            raise UsageError(message)


def _joint_rules(config: dict, given: dict) -> list[tuple[bool, str]]:
    """(holds, the message if not) for the rules of model options and of several flags together."""
    return [
        (
            not 0 < config["lr"] < MIN_LR,
            f"--lr {config['lr']:g} is too small to change any weight (float32 "
            f"rounds such steps away); use at least {MIN_LR:g}",
        ),
        (
            not (config["warmup_epochs"] and config["lr_schedule"] == "onecycle"),
            "--warmup-epochs: the one-cycle schedule warms up by itself (its first 25%); add "
            "--lr-schedule cosine, step or constant",
        ),
        (0 <= config.get("dropout", 0) < 1, "--dropout must be in [0, 1)"),
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
            config.get("name") is None or plain_name(config["name"]),
            "--name must be a plain folder name (no '/', not '.' or '..'); use --run-dir for "
            "the parent folder",
        ),
    ]


def plain_name(name: str) -> bool:
    """A folder name without a path in it: --name must not leave --run-dir."""
    return bool(name) and name not in (".", "..") and not any(c in name for c in "/\\\0")


class Job(NamedTuple):
    """What the command line asks for: a config to train, or a run to resume or a model to evaluate
    (then `config` holds only the flags given: the run's own options are read from its folder)."""

    config: dict
    resume: str | None = None  # --resume RUN
    eval_only: str | None = None  # --eval-only MODEL


def parse(argv: list[str] | None, defaults: Table) -> Job:
    """Parses the flags into a Job.

    --help and --list-presets print and exit here. With --resume or --eval-only, the flags given are
    returned as they are: the config is read later from the run's folder.
    """
    given = vars(make_parser(defaults).parse_args(argv))
    if given.pop("list_presets", False):
        print(list_presets(defaults))
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


def sweep_plan(texts: list[str], given: dict, config: dict, defaults: Table) -> dict:
    """The sweep's folder, its grid of (point, config) with every point checked now, and its
    command."""
    from plumbing import sweep  # here: sweep.py uses this module's flag names

    sweeps = sweep.parse(texts, lambda argv: vars(make_parser(defaults).parse_args(argv)))
    both = sorted(set(sweeps) & set(given))
    if both:
        raise UsageError(f"{flag_name(both[0])} is both given and swept; drop one")
    grid = [(point, resolve({**given, **point}, defaults)) for point in sweep.points(sweeps)]
    flags = {k: v for k, v in given.items() if k not in ("run_dir", "name")}
    return dict(
        folder=sweep.folder(config["run_dir"], config["name"], config["preset"], sweeps),
        grid=grid,
        command=dict(flags=flags, sweeps=sweeps),
    )


RESUME_OVERRIDES = ("data_dir", "data_url")  # a run may follow its data to another folder


def for_resume(saved: dict, given: dict) -> dict:
    """The options of a saved run, with the data location given now (if any). Raises UsageError for
    others."""
    others = sorted(set(given) - set(RESUME_OVERRIDES))
    if others:
        raise UsageError(
            "--resume and --eval-only take the run's own options; drop "
            + " ".join(flag_name(key) for key in others)
        )
    config = {**saved, **given}
    if given.get("data_dir") or given.get("data_url"):
        config["data_folder"] = None  # prepare the data afresh from where the user points
    elif config.get("data_folder"):  # the folder the run used, wherever it was started from
        config["data_dir"] = str(Path(config["data_folder"]).parent)
    return config


def check_for_data(config: dict, *, num_train: int, image_size: int) -> None:
    """The checks that need the data's size: a batch no larger than the training set, a crop and a
    cutout smaller than the image, a model whose feature maps do not shrink to nothing and that fits
    in memory."""
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
    """(layer, the flag that sets its size, number of weights) of the model the config builds,
    counted without building it (that would allocate the weights). Raises UsageError if a pooling
    stage gets a feature map smaller than 2x2 (it would shrink it to nothing)."""
    config = {**model_options(config["model"]), **config}  # a config of an older version too
    inputs, layers = side * side * channels, []
    if config["model"] == "cnn":
        widths, kernel = config["widths"], config["kernel_size"]
        for stage, width in enumerate(widths, start=1):
            if config["downsample"] == "pool" and side < 2:
                raise UsageError(
                    f"--widths {show(widths)}: each of its {len(widths)} stages halves the "
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
    """Refuses a model whose training needs more memory than the machine has, naming its largest
    layer."""
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
