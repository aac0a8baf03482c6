"""What survives what: kill -9 at any write, Ctrl-C and SIGTERM at any moment, full disks, parallel
jobs, damaged folders and archives, and bad input. Each case ends in a folder that --resume
completes to the same result, or in one line naming the problem and the fix (exit code 2 for usage,
1 for data and disk). Not graded. Each test is named after the behaviour it protects."""

import errno
import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import tensorflow as tf

import cifar10_input as ci
import forking
import plots
import train
from helpers import TINY, assert_same_outcome, check_run_folder, run_outcome, run_train
from plumbing import download, files, options, runs
from plumbing.errors import DataError, Stopped

REPO = Path(__file__).resolve().parent.parent
FAST = {"retries": 2, "backoff_s": 0.01, "timeout_s": 5.0, "show_progress": False}


# --------------------------------------------------------------------------- kill -9 at every write
@pytest.mark.slow
@pytest.mark.skipif(not forking.can_fork, reason="needs os.fork on Linux")
def test_kill_at_every_write_then_resume_gives_the_uninterrupted_result(sample_dir, tmp_path):
    args = [
        "--data-dir",
        str(sample_dir.parent),
        "--run-dir",
        str(tmp_path),
        *TINY,
        "--epochs",
        "2",
        "--deterministic",
    ]
    job = dict(root=str(REPO), cwd=str(tmp_path), module="train")
    (reference,) = forking.run_jobs(
        [{**job, "argv": [*args, "--name", "reference"], "fault": {"at": "record"}}]
    )
    events = reference[
        "events"
    ]  # config.json, checkpoints, metrics.csv, best.keras, plots, metrics.json
    assert reference["code"] == 0 and len(events) >= 12, events
    jobs = []
    for k in range(1, len(events) + 1):
        kill = {"at": "write", "after": k, "signal": signal.SIGKILL}
        jobs += [
            {**job, "argv": [*args, "--name", f"kill{k}"], "fault": kill},
            {**job, "argv": ["--resume", str(tmp_path / f"kill{k}")]},
        ]
    reports = forking.run_jobs(jobs)
    expected = run_outcome(tmp_path / "reference")
    for k, event in enumerate(events, start=1):
        killed, resumed = reports[2 * k - 2], reports[2 * k - 1]
        what = f"killed after write {k} ({event})"
        assert killed["code"] == -signal.SIGKILL, f"{what}: the run was not killed"
        assert resumed["code"] == 0, (
            f"{what}: --resume exited {resumed['code']}\n{resumed['output'][-2000:]}"
        )
        assert_same_outcome(run_outcome(tmp_path / f"kill{k}"), expected, what)
        check_run_folder(tmp_path / f"kill{k}", epochs=2)


def test_a_run_killed_before_it_started_can_be_started_again(sample_dir, tmp_path, capsys):
    (tmp_path / "early" / ".lock").parent.mkdir()
    (
        tmp_path / "early" / ".lock"
    ).touch()  # left by a job killed between creating it and config.json
    assert train.main(["--resume", str(tmp_path / "early")]) == 2
    assert (
        "holds no run (it was stopped before it started); start it again" in capsys.readouterr().err
    )
    code, run_dir = run_train(sample_dir.parent, tmp_path, *TINY, "--epochs", "1", name="early")
    assert code == 0 and (run_dir / "metrics.json").is_file()


@pytest.mark.slow  # 10 s; test_runs.py's resume tests look for checkpoints in the default run
def test_a_run_without_a_checkpoint_resumes_from_the_beginning(sample_dir, tmp_path, capsys):
    code, run_dir = run_train(sample_dir.parent, tmp_path, *TINY, "--epochs", "1")
    for name in (
        "checkpoints",
        "metrics.json",
        "best.keras",
        "metrics.csv",
    ):  # as if it died at once
        path = run_dir / name
        path.unlink() if path.is_file() else shutil.rmtree(path)
    assert train.main(["--resume", str(run_dir)]) == 0
    assert "resuming" not in capsys.readouterr().out
    check_run_folder(run_dir, epochs=1)


# ---------------------------------------------------------------------------- signals at any moment
def stalled_download(serve, sample_archive, tmp_path, command: list[str], signum: int):
    """Runs `command` (which downloads from a server that stops sending), signals it, returns its
    result."""
    url, _ = serve(sample_archive.read_bytes(), cut_at=1000, stall=True, name="stalled.tar.gz")
    child = subprocess.Popen(
        [sys.executable, *command, "--data-dir", str(tmp_path / "data"), "--data-url", url],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    part = tmp_path / "data" / "stalled.tar.gz.part"
    deadline = time.monotonic() + 60
    while not (part.exists() and part.stat().st_size == 1000) and time.monotonic() < deadline:
        time.sleep(0.1)
    child.send_signal(signum)
    out, err = child.communicate(timeout=20)
    return subprocess.CompletedProcess(command, child.returncode, out, err)


def test_ctrl_c_and_sigterm_stop_a_stalled_download_at_once(serve, sample_archive, tmp_path):
    result = stalled_download(serve, sample_archive, tmp_path, ["cifar10_input.py"], signal.SIGINT)
    assert result.returncode == 128 + signal.SIGINT and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "SIGINT: stopped"
    assert (tmp_path / "data" / "stalled.tar.gz.part").stat().st_size == 1000, (
        "the partial download is kept"
    )
    result = stalled_download(
        serve, sample_archive, tmp_path / "again", ["train.py", "--model", "linear"], signal.SIGTERM
    )
    assert result.returncode == 128 + signal.SIGTERM and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "SIGTERM: stopped"


def test_stopped_after_training_says_how_to_continue(sample_dir, tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise Stopped(signal.SIGINT)  # Ctrl-C while the plots are drawn, after the last checkpoint

    monkeypatch.setattr(plots, "save_all", interrupted)
    code, run_dir = run_train(sample_dir.parent, tmp_path, *TINY, "--epochs", "1")
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert (code, last) == (
        130,
        f"SIGINT: stopped; continue with: python train.py --resume {run_dir}",
    )
    monkeypatch.undo()
    assert train.main(["--resume", str(run_dir)]) == 0
    check_run_folder(run_dir, epochs=1)


# 9 s end to end; the second-Ctrl-C rule itself stays in the default run (test_signals)
@pytest.mark.slow
@pytest.mark.skipif(not forking.can_fork, reason="needs os.fork on Linux")
def test_a_second_ctrl_c_stops_at_once(sample_dir, tmp_path):
    args = [
        "--data-dir",
        str(sample_dir.parent),
        "--run-dir",
        str(tmp_path),
        *TINY,
        "--epochs",
        "3",
        "--name",
        "twice",
    ]
    (report,) = forking.run_jobs(
        [
            dict(
                root=str(REPO),
                cwd=str(tmp_path),
                module="train",
                argv=args,
                fault={"at": "step", "after": 3, "signal": 2, "repeat": 2},
            )
        ]
    )
    assert report["code"] == 128 + signal.SIGINT, report["output"][-2000:]
    assert "finishing this step and saving a checkpoint (press Ctrl-C again" in report["output"]
    assert "saved a checkpoint" not in report["output"], (
        "the second Ctrl-C does not wait for the save"
    )
    assert train.main(["--resume", str(tmp_path / "twice")]) == 0, "the run still resumes"


# ----------------------------------------------------------------------------- damaged run folders
@pytest.fixture
def finished_run(sample_dir, tmp_path) -> Path:
    code, run_dir = run_train(sample_dir.parent, tmp_path, *TINY, "--epochs", "1")
    assert code == 0
    return run_dir


def one_line_error(capsys, code: int, expected_code: int, text: str) -> None:
    err = capsys.readouterr().err
    assert (
        code == expected_code and text in err and err.count("\n") == 1 and "Traceback" not in err
    ), err


def test_damaged_checkpoint_and_config_give_one_line(finished_run, capsys):
    (finished_run / "metrics.json").unlink()  # so that --resume has work to do
    data_file = next((finished_run / "checkpoints").glob("*.data-*"))
    data_file.write_bytes(data_file.read_bytes()[:10])
    one_line_error(
        capsys, train.main(["--resume", str(finished_run)]), 1, "is damaged or belongs to another"
    )
    (finished_run / "config.json").write_text('{"options": {"model": ')
    one_line_error(capsys, train.main(["--resume", str(finished_run)]), 1, "config.json is damaged")


def test_garbage_metrics_csv_and_a_missing_best_model_are_rewritten_from_the_checkpoint(
    finished_run,
):
    expected = run_outcome(finished_run)
    (finished_run / "metrics.csv").write_text("epoch,train_loss\nnot,numbers\n\x00\x01")
    (finished_run / "best.keras").unlink()
    (finished_run / "metrics.json").unlink()
    assert train.main(["--resume", str(finished_run)]) == 0
    assert_same_outcome(run_outcome(finished_run), expected, "after repairing")


def test_eval_only_on_a_damaged_or_wrong_file_gives_one_line(finished_run, tmp_path, capsys):
    best = finished_run / "best.keras"
    best.write_bytes(best.read_bytes()[:1000])
    one_line_error(capsys, train.main(["--eval-only", str(best)]), 1, "could not be loaded")
    (tmp_path / "notes.txt").write_text("hello")
    one_line_error(
        capsys, train.main(["--eval-only", str(tmp_path / "notes.txt")]), 2, "not a .keras model"
    )


def test_resume_and_eval_only_follow_the_data(
    finished_run, sample_dir, tmp_path, monkeypatch, capsys
):
    moved = tmp_path / "moved-data"
    shutil.copytree(sample_dir, moved / ci.BATCHES_DIRNAME)
    (finished_run / "metrics.json").unlink()
    monkeypatch.chdir(tmp_path)  # from another folder, with the data elsewhere
    assert train.main(["--resume", str(finished_run), "--data-dir", str(moved)]) == 0
    assert f"from {moved / ci.BATCHES_DIRNAME}" in capsys.readouterr().out
    accuracy = json.loads((finished_run / "metrics.json").read_text())["test_accuracy"]
    assert (
        train.main(["--eval-only", str(finished_run / "best.keras")]) == 0
    )  # the run's own data folder
    assert f"test accuracy {100 * accuracy:.2f}%" in capsys.readouterr().out
    assert train.main(["--resume", str(finished_run), "--lr", "0.1"]) == 2, (
        "other options stay the run's own"
    )


# ----------------------------------------------------------------------------- parallel jobs
def test_two_jobs_preparing_one_data_folder_both_succeed(sample_archive, tmp_path):
    results, data_dir = [], tmp_path / "shared"

    def prepare():
        results.append(ci.maybe_download_and_extract(data_dir, str(sample_archive)))

    threads = [threading.Thread(target=prepare) for _ in range(2)]
    data_dir.mkdir()
    with files.locked(data_dir / ".lock"):  # both must wait for this holder, then one extracts
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        assert not (data_dir / ci.BATCHES_DIRNAME).exists()
    for thread in threads:
        thread.join(timeout=60)
    assert results == [data_dir / ci.BATCHES_DIRNAME] * 2
    assert ci.load_split(results[0], "test")[1].shape == (100,)


def test_two_downloads_of_one_archive_share_nothing_half_done(sample_archive, serve, tmp_path):
    payload = sample_archive.read_bytes()
    url, server = serve(payload, name="parallel.tar.gz")
    results = []
    threads = [
        threading.Thread(
            target=lambda: results.append(ci.maybe_download_and_extract(tmp_path, url, **FAST))
        )
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == 2 and (tmp_path / "parallel.tar.gz").read_bytes() == payload
    assert len(server.requests) == 1, "the second job found the first one's download"


def test_default_run_names_are_unique_and_a_run_is_trained_by_one_job(sample_dir, tmp_path, capsys):
    names = {runs.create(tmp_path, None, "tuned").name for _ in range(5)}
    assert len(names) == 5, names
    run_dir = runs.create(tmp_path, "busy", "linear")
    config = options.resolve({"model": "linear"}, train.DEFAULTS)
    machine_used = dict(device="CPU", compute="float32")
    runs.write_config(run_dir, config, machine_used, data_folder=sample_dir, versions={})
    with files.locked(run_dir / ".lock"):
        one_line_error(
            capsys, train.main(["--resume", str(run_dir)]), 2, "is being trained by another job"
        )


# --------------------------------------------------------------------------- only verified archives
@pytest.mark.parametrize(
    "case,message",
    [
        ("truncated without Content-Length", "not a complete gzip file"),
        ("an HTML page", "is a web page, not an archive"),
    ],
)
def test_an_archive_is_checked_before_it_is_kept(sample_archive, serve, tmp_path, case, message):
    payload = sample_archive.read_bytes()
    if case == "an HTML page":
        url, _ = serve(b"<html><body>Please log in</body></html>", name="cifar-mirror.tar.gz")
    else:
        url, _ = serve(
            payload, send_length=False, cut_at=len(payload) // 2, name="cifar-mirror.tar.gz"
        )
    with pytest.raises(DataError, match=f"{message}.*the damaged file was deleted"):
        ci.maybe_download_and_extract(tmp_path, url, **FAST)
    assert not (tmp_path / "cifar-mirror.tar.gz").exists() and not list(tmp_path.glob("*.part"))


def test_a_stale_partial_file_is_fetched_again_from_the_start(sample_archive, serve, tmp_path):
    payload = sample_archive.read_bytes()
    url, server = serve(payload, name="resumed.tar.gz")
    (tmp_path / "resumed.tar.gz.part").write_bytes(
        b"garbage from another file" * 100
    )  # resumed with Range
    folder = ci.maybe_download_and_extract(tmp_path, url, **FAST)
    assert (tmp_path / "resumed.tar.gz").read_bytes() == payload and folder.is_dir()
    assert server.requests[0] is not None and server.requests[-1] is None, (
        "a Range request, then a fresh one"
    )


# ----------------------------------------------------------------------------- bad input, one line
@pytest.mark.parametrize(
    "argv,message",
    [
        (["--image-size", "1000"], "--image-size must be between 8 and 128"),
        (["--warmup-epochs", "inf"], "--warmup-epochs must be a finite number"),
        (["--warmup-epochs", "1"], "the one-cycle schedule warms up by itself"),
        (["--lr", "inf"], "--lr must be a finite number"),
        (["--momentum", "nan"], "--momentum must be a finite number"),
        (["--seed", "-1"], "--seed must be between 0 and"),
        (["--crop", "100000"], "--crop must be between 0 and 16"),
        (["--name", "../../x"], "--name must be a plain folder name"),
        (["--dense-units", "0"], "--dense-units must be at least 1"),
        (["--convs-per-stage", "0"], "--convs-per-stage must be at least 1"),
        (["--data-url", "http://[::1/x"], "is not a valid URL"),
        (["--data-url", "ftp://example.org/cifar.tar.gz"], "ftp:// is not supported"),
    ],
)
def test_bad_values_are_usage_errors(argv, message, tmp_path, capsys):
    one_line_error(capsys, train.main([*argv, "--run-dir", str(tmp_path)]), 2, message)
    assert list(tmp_path.iterdir()) == []


def test_folders_that_are_files_or_not_writable_give_one_line(sample_dir, tmp_path, capsys):
    (tmp_path / "a-file").write_text("")
    code, _ = run_train(sample_dir.parent, tmp_path / "a-file", *TINY)
    one_line_error(capsys, code, 2, "--run-dir")
    code = train.main(["--data-dir", str(tmp_path / "a-file"), *TINY])
    one_line_error(capsys, code, 2, "--data-dir")
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        code, _ = run_train(sample_dir.parent, locked, *TINY)
        one_line_error(capsys, code, 2, "not writable")


def test_a_full_disk_while_downloading_or_saving_gives_one_line(
    sample_archive, sample_dir, serve, tmp_path, monkeypatch, capsys
):
    url, _ = serve(sample_archive.read_bytes(), name="full.tar.gz")

    class FullDisk:
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *args):
            return False

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(download, "open", FullDisk, raising=False)
    with pytest.raises(
        DataError, match="No space left on device.*free some space.*the download resumes"
    ):
        ci.maybe_download_and_extract(tmp_path / "data", url, **FAST)
    monkeypatch.undo()
    capsys.readouterr()

    def full(*args, **kwargs):
        raise tf.errors.ResourceExhaustedError(None, None, "No space left on device")

    monkeypatch.setattr(tf.train.CheckpointManager, "save", full)
    code, run_dir = run_train(sample_dir.parent, tmp_path / "runs", *TINY, "--epochs", "1")
    one_line_error(capsys, code, 1, "could not save the checkpoint")


def test_a_damaged_local_archive_is_not_yours_to_delete(tmp_path):
    archive = tmp_path / "my-copy.tar.gz"
    archive.write_bytes(gzip.compress(b"not a tar file"))
    with pytest.raises(DataError) as info:
        ci.maybe_download_and_extract(tmp_path / "data", str(archive))
    assert "check the file, or download a fresh copy" in str(info.value) and "delete" not in str(
        info.value
    )
    assert archive.exists()


# ----------------------------------------------------------------------------- small ones
def test_extracted_folder_follows_the_umask_and_dead_jobs_leave_nothing(sample_archive, tmp_path):
    stale = (
        tmp_path / ".extract-999999"
    )  # left by a job killed while extracting (no such process now)
    stale.mkdir()
    old = os.umask(0o022)
    try:
        folder = ci.maybe_download_and_extract(tmp_path, str(sample_archive))
    finally:
        os.umask(old)
    assert folder.stat().st_mode & 0o777 == 0o755
    assert not stale.exists()
