"""One line for every mistake a user can fix, and nothing after it: full disks and files in the way
(TensorBoard logs, checkpoints, plots, config.json), models that cannot be built or do not fit, bad
values, --eval-only on other data, printed commands that can be pasted, exercise stubs (and only
them) as TODOs, and COURSE_DEBUG=1's tracebacks. Not graded."""

import errno
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import matplotlib.figure
import pytest
import tensorflow as tf

import train
from helpers import REPO_ROOT, TINY, run_train
from plumbing import errors, files, logs, options
from plumbing.todo import NotWrittenError

NO_SPACE = "No space left on device"


@pytest.fixture
def unfinished(trained, tmp_path) -> Path:
    """A copy of the finished run without its metrics.json: --resume tests, plots, finishes it."""
    run_dir = tmp_path / "run"
    shutil.copytree(trained, run_dir)
    (run_dir / "metrics.json").unlink()
    return run_dir


def last_line(capsys, code: int, expected_code: int) -> str:
    """The one line a failed command printed on stderr (asserting it, and the exit code)."""
    err = capsys.readouterr().err
    assert code == expected_code and err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip()


# --------------------------------------------------------------------- full disks, files in the way
def test_a_full_disk_while_writing_tensorboard_logs_names_tb_and_says_resume(
    sample_dir, tmp_path, monkeypatch, capsys
):
    def full(*args, **kwargs):
        raise tf.errors.ResourceExhaustedError(
            None,
            None,
            "{{function_node __wrapped__FlushSummaryWriter_"
            "device_/job:localhost/replica:0/task:0/device:CPU:0}} x.v2; "
            + NO_SPACE
            + " [Op:FlushSummaryWriter]",
        )

    monkeypatch.setattr(tf.summary, "scalar", full)
    code, run_dir = run_train(sample_dir.parent, tmp_path, *TINY, "--epochs", "1")
    assert last_line(capsys, code, 1) == (
        f"error: could not write the TensorBoard logs: the disk is full "
        f"({run_dir / 'tb'}); free some space, then continue with: "
        f"python train.py --resume {run_dir}"
    )
    monkeypatch.undo()
    assert train.main(["--resume", str(run_dir)]) == 0 and (run_dir / "metrics.json").is_file()


@pytest.mark.slow  # 10 s; a file in the way of checkpoints/ is checked in the default run
def test_tb_being_a_file_at_resume_is_a_file_in_the_way(unfinished, capsys):
    shutil.rmtree(unfinished / "tb")
    (unfinished / "tb").write_text("not a folder")
    assert last_line(capsys, train.main(["--resume", str(unfinished)]), 1) == (
        f"error: could not write the TensorBoard logs: a file is in the way ({unfinished / 'tb'}): "
        f"a folder must be there; move the file away, then continue with: "
        f"python train.py --resume {unfinished}"
    )
    (unfinished / "tb").unlink()
    assert (
        train.main(["--resume", str(unfinished)]) == 0 and (unfinished / "metrics.json").is_file()
    )


def test_checkpoints_being_a_file_is_not_reported_as_a_full_disk(unfinished, capsys):
    shutil.rmtree(unfinished / "checkpoints")
    (unfinished / "checkpoints").write_text("not a folder")
    line = last_line(capsys, train.main(["--resume", str(unfinished)]), 1)
    assert (
        f"({unfinished / 'checkpoints'})" in line
        and "full" not in line
        and "free some space" not in line
    )


@pytest.mark.slow  # 5 s; a full disk while writing TensorBoard logs is checked in the default run
def test_a_full_disk_while_plotting_names_the_plot_and_says_resume(unfinished, monkeypatch, capsys):
    def full(*args, **kwargs):
        raise OSError(
            errno.ENOSPC, NO_SPACE
        )  # as matplotlib's writes raise it: without a file name

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", full)
    assert last_line(capsys, train.main(["--resume", str(unfinished)]), 1) == (
        f"error: the disk is full ({unfinished / 'learning_curves.png'}); free some space, "
        f"then continue with: python train.py --resume {unfinished}"
    )
    assert not list(unfinished.glob("*.tmp-*")), "a temporary file was left behind"
    monkeypatch.undo()
    assert (
        train.main(["--resume", str(unfinished)]) == 0
        and (unfinished / "learning_curves.png").is_file()
    )


def test_a_full_disk_before_the_run_started_says_the_same_command_which_then_works(
    sample_dir, tmp_path, monkeypatch, capsys
):
    def full(fd):
        raise OSError(errno.ENOSPC, NO_SPACE)

    monkeypatch.setattr(files.os, "fsync", full)  # the first file written is config.json
    code, run_dir = run_train(sample_dir.parent, tmp_path, *TINY, "--steps", "1")
    assert last_line(capsys, code, 1) == (
        f"error: the disk is full ({run_dir / 'config.json'}); free some "
        f"space, then run the same command again"
    )
    monkeypatch.undo()
    assert run_train(sample_dir.parent, tmp_path, *TINY, "--steps", "1")[0] == 0


def test_tensorflow_write_errors_become_oserrors_with_the_path():
    cases = [
        (
            "{{function_node __wrapped__SaveV2}} /r/ckpt-1_temp/part; No space left on device "
            "[Op:SaveV2]",
            errno.ENOSPC,
        ),
        ("r/tb is not a directory [Op:CreateSummaryFileWriter] name: ", errno.ENOTDIR),
        ("/r/x; Permission denied", errno.EACCES),
        ("/r/x; Read-only file system", errno.EROFS),
        (
            "{{function_node __wrapped__CreateSummaryFileWriter_device_/job:localhost/replica:0/"
            "task:0/device:CPU:0}} r/tb/train/events.out.tfevents.1.v2; No space left on device"
            "\n\tFailed to flush 1 events to r/tb/train/events.out.tfevents.1.v2"
            "\n\tCould not initialize events writer. [Op:CreateSummaryFileWriter] name: ",
            errno.ENOSPC,
        ),
    ]  # tb/ on a full disk at --resume
    for message, number in cases:
        err = errors.write_error(message, "r/checkpoints", "could not save the checkpoint")
        assert (err.errno, err.filename) == (number, "r/checkpoints"), message
    full = errors.write_error(cases[0][0], "r/checkpoints", "could not save the checkpoint")
    assert errors.disk_problem(full, "x") == (
        "could not save the checkpoint: the disk is full (r/checkpoints); free some space, then x"
    )
    odd = errors.write_error(
        "{{function_node __wrapped__X_device_/job:localhost}} odd thing [Op:X] name: ", "r"
    )
    assert errors.disk_problem(odd) == "odd thing (r)", "no TensorFlow internals in the line"


def test_a_dangling_link_as_run_dir_is_named_a_link(sample_dir, tmp_path, capsys):
    (tmp_path / "link").symlink_to(tmp_path / "gone")
    code, _ = run_train(sample_dir.parent, tmp_path / "link", *TINY, "--steps", "1")
    assert last_line(capsys, code, 2) == (
        f"usage error: --run-dir {tmp_path / 'link'} is a link to "
        f"{tmp_path / 'gone'}, which does not exist; create that folder, "
        f"or choose another --run-dir"
    )


# ----------------------------------------------------------------------- the error is the last line
def test_a_checkpoint_of_another_model_is_one_line_with_no_warnings_after_it(unfinished, capfd):
    config = json.loads((unfinished / "config.json").read_text())
    config["options"].update(model="mlp", preset="mlp", hidden_units=[16])
    (unfinished / "config.json").write_text(json.dumps(config))
    code = train.main(["--resume", str(unfinished)])
    err = capfd.readouterr().err  # file descriptor 2: TensorFlow's warnings too
    stems = sorted(
        (p.stem for p in (unfinished / "checkpoints").glob("ckpt-*.index")),
        key=lambda stem: -int(stem.removeprefix("ckpt-")),
    )
    assert code == 1 and err.splitlines() == [
        f"error: the checkpoint in {unfinished / 'checkpoints'} is damaged or belongs to another "
        f"model ({', '.join(f'{stem} (ValueError)' for stem in stems)}); it cannot be resumed: "
        f"start a new run (another --name)"
    ], err


def test_out_of_memory_is_one_line_naming_the_tensor():
    err = tf.errors.ResourceExhaustedError(
        None,
        None,
        "{{function_node x}} OOM when allocating tensor with "
        "shape[3072,1000000000] and type float on /job:localhost [Op:X]",
    )
    assert errors.one_line(err) == (
        1,
        "error: out of memory: TensorFlow could not allocate a tensor of "
        "shape [3072,1000000000] (float); make the model (--hidden-units, "
        "--widths, --dense-units) or --batch-size smaller",
    )
    assert errors.one_line(ValueError("a bug")) is None, "any other error is shown whole"


@pytest.mark.slow  # 7 s, a subprocess loading TensorFlow: pytest -m slow
# -------------------------------------------------------------------------------------- --eval-only
def test_eval_only_refuses_a_model_of_another_input_shape_in_one_line_without_cuda_noise(
    sample_dir, tmp_path
):
    model = keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)]
    )
    model.save(tmp_path / "digits.keras")
    result = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "train.py"),
            "--eval-only",
            str(tmp_path / "digits.keras"),
            "--data-dir",
            str(sample_dir.parent),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert (result.returncode, result.stderr) == (
        2,
        (
            f"usage error: {tmp_path / 'digits.keras'} takes 28x28x1 images, but the cifar10 "
            f"images in {sample_dir} are 32x32x3; evaluate it with the --dataset and --image-size "
            f"it was trained with\n"
        ),
    ), result.stderr


# ---------------------------------------------------------------------------------- checks up front
@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["--preset", "cnn", "--widths", "4,4,4,4,4,4"],
            "usage error: --widths 4,4,4,4,4,4: each of its 6 "
            "stages halves the feature map, which is 1x1 after stage 5; use at most 5 widths, "
            "or --downsample stride or none",
        ),
        (
            ["--model", "mlp", "--hidden-units", "1000000000"],
            "usage error: the model is too large: its layer hidden1 alone has "
            "3,072,000,000,000 weights (--hidden-units), and training it needs about",
        ),
        (
            ["--preset", "cnn", "--dense-units", "100000000"],
            "usage error: the model is too large: its layer "
            "dense alone has 409,600,000,000 weights (--dense-units)",
        ),
        (["--cutout", "32"], "usage error: --cutout 32 must be smaller than the 32-pixel images"),
        (
            ["--lr", "1e-300"],
            "usage error: --lr 1e-300 is too small to change any weight (float32 rounds such "
            "steps away); use at least 1e-08",
        ),
        (
            ["--brightness", "1e30"],
            "usage error: --brightness must be between 0 and 5 (pixel standard deviations)",
        ),
    ],
)
def test_models_and_values_no_run_can_use_are_refused_before_anything_is_built(
    argv, message, sample_dir, tmp_path, capsys
):
    code, run_dir = run_train(sample_dir.parent, tmp_path, *argv, "--steps", "1")
    assert last_line(capsys, code, 2).startswith(message) and not run_dir.exists()


@pytest.mark.parametrize(
    "flags",
    [
        dict(model="linear"),
        dict(model="mlp", hidden_units=(64, 32)),
        dict(
            model="cnn",
            widths=(8, 16),
            convs_per_stage=2,
            downsample="pool",
            head="flatten",
            dense_units=32,
        ),
        dict(
            model="cnn",
            widths=(8, 16, 4),
            convs_per_stage=1,
            downsample="stride",
            head="flatten",
            dense_units=0,
        ),
        dict(
            model="cnn",
            widths=(8,),
            convs_per_stage=1,
            kernel_size=5,
            downsample="none",
            head="gap",
        ),
    ],
)
def test_the_weight_count_checked_up_front_is_the_one_the_builders_make(flags):
    config = {**train.DEFAULTS, **flags}
    counted = options.model_layers(config, 32, 3)
    model = train.build_model(config, (32, 32, 3))
    kernels = {
        layer.name: int(layer.kernel.shape.num_elements())
        for layer in model.layers
        if hasattr(layer, "kernel")
    }
    assert sorted(count for _, _, count in counted) == sorted(kernels.values())
    assert {name for name, _, _ in counted} - {"classifier"} <= set(kernels)


# ---------------------------------------------------------------------- commands that can be pasted
@pytest.mark.parametrize("run_dir", [Path("-x"), Path("my runs") / "a b", Path("runs") / "plain"])
def test_printed_resume_commands_paste_back_to_the_same_folder(run_dir):
    command = errors.resume_command(run_dir)
    argv = shlex.split(command)
    assert argv[:2] == ["python", "train.py"]
    assert options.parse(argv[2:], train.DEFAULTS)[1] == str(run_dir)


def test_the_tensorboard_command_quotes_a_folder_with_spaces(sample_dir, tmp_path, capsys):
    code, run_dir = run_train(sample_dir.parent, tmp_path / "my runs", *TINY, "--steps", "1")
    out = capsys.readouterr().out
    assert code == 0 and f"(tensorboard --logdir {shlex.quote(str(tmp_path / 'my runs'))})" in out
    pasted = out.split("tensorboard ")[1].split(")\n")[0]
    assert shlex.split(pasted) == ["--logdir", str(tmp_path / "my runs")]


def test_a_file_given_as_a_run_folder_is_called_a_file(trained, capsys):
    code = train.main(["--resume", str(trained / "metrics.json")])
    assert last_line(capsys, code, 2) == (
        f"usage error: {trained / 'metrics.json'} is not a run folder (a "
        f"file, not a folder); pass the run's folder, runs/NAME"
    )


# ------------------------------------------------------------------------- what a large model costs
def test_weight_histograms_sample_a_large_layer_instead_of_taking_30_doubles_per_weight():
    large = tf.reshape(tf.range(3 * 2**20, dtype=tf.float32), [3072, 1024])
    sampled = logs._sample(large).numpy()
    assert len(sampled) <= 2**20 and sampled[0] == 0 and set(sampled[1:] - sampled[:-1]) == {4.0}
    small = tf.ones([64, 10])
    assert logs._sample(small).numpy().tolist() == [1.0] * 640


# ---------------------------------------------------------------------------- stubs, and only stubs
def hint_stub(*args, **kwargs):
    """What the exercise version holds until it is written."""
    raise NotWrittenError("cifar10_input.py::random_flip: a uniform number per image")


STUB_LINE = (
    "NOT IMPLEMENTED: cifar10_input.py::random_flip: a uniform number per image; "
    "write it (see the TODO there), then run again"
)


def test_a_stub_reached_inside_a_tf_function_or_a_tf_data_map_is_reported_as_the_todo():
    def traced():
        return tf.function(hint_stub)(tf.constant(1.0))

    def mapped():
        return tf.data.Dataset.range(2).map(hint_stub)

    class Unwritten(keras.layers.Layer):
        def call(self, x):
            return hint_stub(x)

    def apply_layer(x):
        return Unwritten()(x)

    def layer_in_a_tf_function():
        return tf.function(apply_layer)(tf.ones([1, 2]))

    for call in (traced, mapped, layer_in_a_tf_function):
        with pytest.raises(Exception) as caught:
            call()
        assert type(caught.value).__name__ == "StagingError", call.__name__  # TensorFlow's
        assert errors.one_line(caught.value) == (2, STUB_LINE), call.__name__


def test_an_error_raised_while_handling_a_stubs_error_is_shown_as_itself():
    try:
        try:
            hint_stub()
        except NotWrittenError:
            raise KeyError("a bug in the handler")  # noqa: B904 (the point of the test)
    except KeyError as err:
        assert errors.one_line(err) is None


def test_train_names_a_stub_met_in_the_data_pipeline_in_one_line(
    sample_dir, tmp_path, monkeypatch, capsys
):
    import cifar10_input

    monkeypatch.setattr(cifar10_input, "random_flip", hint_stub)
    argv = ["--data-dir", str(sample_dir.parent), "--run-dir", str(tmp_path), *TINY, "--flip"]
    assert last_line(capsys, train.main(argv), 2) == STUB_LINE


def test_a_not_implemented_error_of_keras_is_shown_as_the_error_it_is(
    sample_dir, tmp_path, monkeypatch, capsys
):
    class NoCall(keras.Model):  # Keras raises NotImplementedError: "does not have a call()"
        pass

    with pytest.raises(NotImplementedError) as caught:
        NoCall()(tf.ones([1, 2]))
    assert errors.one_line(caught.value) is None, "a bug: report lets it through, traceback"

    import cifar10_input

    def keras_internal(*args, **kwargs):
        raise NotImplementedError("Layer X does not have a `compute_output_shape` method")

    monkeypatch.setattr(cifar10_input, "random_flip", keras_internal)
    argv = ["--data-dir", str(sample_dir.parent), "--run-dir", str(tmp_path), *TINY, "--flip"]
    with pytest.raises(NotImplementedError, match="does not have a `compute_output_shape`"):
        train.main(argv)
    assert "NOT IMPLEMENTED" not in capsys.readouterr().err


# ----------------------------------------------------------------------------- COURSE_DEBUG=1
def test_course_debug_shows_the_traceback_instead_of_the_line_with_the_same_exit_code(
    monkeypatch, capsys
):
    def main(argv):
        raise errors.UsageError("--epochs must be at least 1")

    assert errors.report(main, []) == 2
    assert capsys.readouterr().err == "usage error: --epochs must be at least 1\n"
    monkeypatch.setenv("COURSE_DEBUG", "1")
    assert errors.report(main, []) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):\n"), err
    assert err.endswith("plumbing.errors.UsageError: --epochs must be at least 1\n"), err
    assert "usage error:" not in err
    assert train.main(["--bogus"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "UsageError: unrecognized arguments: --bogus" in err, err
    monkeypatch.setenv("COURSE_DEBUG", "0")  # 0 (or empty) is off
    assert errors.report(main, []) == 2
    assert capsys.readouterr().err == "usage error: --epochs must be at least 1\n"
