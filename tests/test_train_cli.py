"""Tests of train.py's command line (plumbing/options.py): usage errors, help that cannot lie,
presets, the device."""

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tensorflow as tf

import train
from helpers import run_train
from plumbing import machine, options
from plumbing.errors import UsageError

REPO = Path(__file__).resolve().parent.parent
SMALL = ["--num-train-examples", "128", "--val-size", "64", "--batch-size", "64"]


def test_an_existing_run_folder_is_never_overwritten(sample_dir, tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    code, _ = run_train(sample_dir.parent, tmp_path, *SMALL, name="taken")
    assert code == 2 and "already exists" in capsys.readouterr().err
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--model", "linear", "--batch-norm"], "--batch-norm does not apply to --model linear"),
        (["--model", "mlp", "--widths", "8,16"], "--widths does not apply to --model mlp"),
        (
            ["--preset", "cnn-bn", "--model", "mlp"],
            "--preset cnn-bn trains the cnn model; drop --model mlp",
        ),
        (["--lr", "-0.1"], "--lr must be positive"),
        (["--dropout", "1.5"], "--dropout must be in [0, 1)"),
        (["--weight-decay", "-1"], "--weight-decay must be >= 0"),
        (["--label-smoothing", "1"], "--label-smoothing must be in [0, 1)"),
        (["--resume", "nowhere"], "nowhere is not a run folder (no such folder)"),
        (["--eval-only", "missing.keras"], "--eval-only missing.keras: no such file"),
        (["--epochs", "2", "--steps", "3"], "argument --steps: not allowed with argument --epochs"),
        (["--widths", "32,x"], "expected comma-separated integers"),
    ],
)
def test_usage_errors_exit_2_with_one_line(argv, message, tmp_path, capsys):
    saved_run = argv[0] in ("--resume", "--eval-only")
    assert train.main(argv if saved_run else [*argv, "--run-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("usage error: "), err
    assert list(tmp_path.iterdir()) == [], "a usage error must not leave a run folder"


def test_data_dependent_usage_error_leaves_no_run_folder(sample_dir, tmp_path, capsys):
    code, run_dir = run_train(sample_dir.parent, tmp_path, "--num-train-examples", "99999")
    assert code == 2 and "--num-train-examples must be between 1 and" in capsys.readouterr().err
    assert not run_dir.exists()


def test_help_is_fast_and_the_last_line_of_an_error_is_ours():
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, str(REPO / "train.py"), "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "--widths" in result.stdout
    assert time.perf_counter() - start < 5, (
        "--help must not load TensorFlow"
    )  # loose: the bench measures
    result = subprocess.run(
        [sys.executable, str(REPO / "train.py"), "--model", "linear", "--dropout", "0.5"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr == "usage error: --dropout does not apply to --model linear; drop it\n"


def test_every_default_in_the_help_is_the_real_one():
    parser = options.make_parser(train.DEFAULTS)
    shown = {}  # flag -> the text in "(default: ...)" at the end of its help
    for action in parser._actions:
        match = re.search(r"\(default: ([^()]*)\)$", (action.help or "").replace("%%", "%"))
        if match and action.option_strings:
            shown[action.option_strings[0][2:].replace("-", "_")] = match.group(1)

    def text(value):
        return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)

    for key, value in train.DEFAULTS.items():
        if value is not None:
            first = shown[key].split(";")[0]  # "30; the tuned CNN on MNIST ...: 16"
            assert first == text(value), (
                f"--{key}: help says {shown[key]!r}, the default is {value!r}"
            )
    for name, flag in options.MODEL_FLAGS.items():  # the model flags: the builders' own defaults
        for model, default in flag.defaults.items():
            assert text(default) in shown[name], (
                f"--{name}: help {shown[name]!r}, {model}: {default!r}"
            )
    import cnn
    import mlp

    help_text = " ".join(parser.format_help().split())
    for module in (cnn, mlp):  # choices come from the model files
        for name, values in module.CHOICES.items():
            assert f"--{name} {{{','.join(values)}}}" in help_text, name


def test_the_model_flags_are_the_builders_keyword_options():
    """options.MODEL_FLAGS lists each builder's keyword options (--help cannot import the builders:
    that loads TensorFlow); it must be exactly what the signatures say, defaults included."""
    import inspect

    assert tuple(options.MODELS) == tuple(train.BUILDERS) == train.DEFAULTS.flags["model"].choices
    for model, (filename, builder_name) in options.MODELS.items():
        builder = train.BUILDERS[model]
        assert (builder.__name__, Path(inspect.getfile(builder)).name) == (builder_name, filename)
        signature = inspect.signature(builder).parameters.values()
        keyword = {p.name: p.default for p in signature if p.kind is p.KEYWORD_ONLY}
        assert options.model_options(model) == keyword, model
    import cnn
    import mlp

    for module, model in ((cnn, "cnn"), (mlp, "mlp")):  # the choices, as the model files give them
        for name, values in module.CHOICES.items():
            assert options.MODEL_FLAGS[name].choices == values, f"{model}: --{name}"


def test_presets_list_their_own_values(capsys):
    with pytest.raises(SystemExit) as done:
        options.parse(["--list-presets"], train.DEFAULTS)
    assert done.value.code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == list(train.PRESETS)
    cnn_bn = next(line for line in lines if line.startswith("cnn-bn "))
    assert "--widths 32,64" in cnn_bn and "--batch-norm" in cnn_bn and "--optimizer adam" in cnn_bn
    for name, preset in train.PRESETS.items():  # each listed flag, parsed back: the preset's values
        line = next(line for line in lines if line.split()[0] == name)
        flags = line.split(None, 1)[1].split("   (")[0].split() if preset else []
        config = options.resolve(
            vars(options.make_parser(train.DEFAULTS).parse_args(flags)), train.DEFAULTS
        )
        assert {k: config[k] for k in preset} == preset, name


def test_flags_override_presets_which_override_defaults():
    config = options.resolve({"preset": "cnn-bn", "dropout": 0.3}, train.DEFAULTS)
    assert config["dropout"] == 0.3  # the flag
    assert config["widths"] == (32, 64) and config["batch_norm"]  # the preset
    assert config["batch_size"] == train.DEFAULTS["batch_size"]  # the default
    assert options.resolve({"model": "mlp"}, train.DEFAULTS)["preset"] == "mlp"
    assert options.resolve({}, train.DEFAULTS)["preset"] == "tuned"


def test_device_falls_back_to_cpu_without_a_gpu(monkeypatch):
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])
    assert machine.select_device("auto") == "CPU"
    assert machine.select_device("cpu") == "CPU"
    with pytest.raises(UsageError, match="--device gpu, but TensorFlow sees no GPU"):
        machine.select_device("gpu")


@pytest.mark.parametrize(
    "model,device,flag,has_bfloat16,expected",
    [
        ("cnn", "CPU", None, True, "mixed_bfloat16"),  # the default, where it pays
        ("cnn", "CPU", None, False, "float32"),  # emulated bfloat16 would be slow
        ("linear", "CPU", None, True, "float32"),  # nothing to gain on a tiny step
        ("mlp", "CPU", None, True, "float32"),
        ("cnn", "GPU", None, True, "float32"),  # float16 on a GPU: only when asked
        ("cnn", "CPU", False, True, "float32"),  # --no-mixed-precision
        ("linear", "CPU", True, True, "mixed_bfloat16"),  # --mixed-precision
        ("cnn", "GPU", True, False, "mixed_float16"),
    ],
)
def test_sixteen_bit_compute_by_default_only_for_the_cnn_on_a_cpu_with_bfloat16(
    monkeypatch, model, device, flag, has_bfloat16, expected
):
    monkeypatch.setattr(machine, "cpu_has_bfloat16", lambda: has_bfloat16)
    config = {"model": model, "mixed_precision": flag}
    assert machine.compute_policy(config, device) == expected


def test_a_run_resumed_on_a_cpu_without_bfloat16_trains_on_in_float32(monkeypatch):
    # the options keep None (decided by the machine that trains), not the policy first chosen
    config = options.resolve({"model": "cnn"}, train.DEFAULTS)
    assert config["mixed_precision"] is None
    monkeypatch.setattr(machine, "cpu_has_bfloat16", lambda: False)
    assert machine.compute_policy(config, "CPU") == "float32"  # no error: nothing was asked


def test_a_run_told_nothing_says_it_computes_in_bfloat16_and_how_to_turn_it_off(
    monkeypatch, capsys
):
    import keras

    monkeypatch.setattr(machine, "cpu_has_bfloat16", lambda: True)
    config = dict(model="cnn", device="cpu", mixed_precision=None, deterministic=False)
    try:
        machine.start(config)
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
        machine.start({**config, "mixed_precision": False})  # asked for float32: no word of it
        assert keras.mixed_precision.global_policy().name == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("training on the CPU (mixed_bfloat16)"), lines
    assert lines[1] == (
        "bfloat16 compute: this CPU has the instructions (--no-mixed-precision: float32)"
    )
    assert lines[2].endswith("training on the CPU") and len(lines) == 3, lines


def test_mixed_precision_takes_bfloat16_only_where_the_cpu_has_it(monkeypatch):
    assert machine.mixed_precision_policy("GPU") == "mixed_float16"
    monkeypatch.setattr(machine, "cpu_has_bfloat16", lambda: True)
    assert machine.mixed_precision_policy("CPU") == "mixed_bfloat16"
    monkeypatch.setattr(machine, "cpu_has_bfloat16", lambda: False)
    with pytest.raises(UsageError, match="no bfloat16 instructions"):
        machine.mixed_precision_policy("CPU")
