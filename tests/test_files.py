"""Tests for plumbing/files.py: atomic writes reach the disk, the folder's entry too. Not graded."""

import errno
import os
import stat

import pytest

from plumbing import files


def record_fsyncs(monkeypatch) -> list[tuple[bool, int]]:
    """Wraps os.fsync: each call is recorded as (is it a folder, its inode)."""
    calls = []
    real_fsync = os.fsync

    def fsync(handle):
        info = os.fstat(handle)
        calls.append((stat.S_ISDIR(info.st_mode), info.st_ino))
        return real_fsync(handle)

    monkeypatch.setattr(os, "fsync", fsync)
    return calls


def test_an_atomic_write_flushes_the_file_then_its_folder_after_the_rename(tmp_path, monkeypatch):
    calls = record_fsyncs(monkeypatch)
    target = tmp_path / "metrics.json"
    seen_at_folder_sync = []
    real_sync_folder = files.sync_folder

    def sync_folder(folder):
        seen_at_folder_sync.append(target.read_text())  # renamed into place before the folder
        real_sync_folder(folder)

    monkeypatch.setattr(files, "sync_folder", sync_folder)
    files.write_json(target, {"epoch": 3})
    assert target.read_text() == '{\n  "epoch": 3\n}\n'
    assert seen_at_folder_sync == ['{\n  "epoch": 3\n}\n']
    assert calls == [(False, target.stat().st_ino), (True, tmp_path.stat().st_ino)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"], "no temporary left"


def test_writes_work_where_folders_cannot_be_opened(tmp_path, monkeypatch):
    calls = record_fsyncs(monkeypatch)
    monkeypatch.delattr(os, "O_DIRECTORY")  # as on Windows
    files.write_text(tmp_path / "notes.txt", "kept")
    assert (tmp_path / "notes.txt").read_text() == "kept"
    assert calls == [(False, (tmp_path / "notes.txt").stat().st_ino)], "the file alone is flushed"


@pytest.mark.parametrize("code", ["EINVAL", "ENOTSUP"])
def test_a_file_system_that_cannot_flush_a_folder_is_no_error(tmp_path, monkeypatch, code):
    real_fsync = os.fsync

    def fsync(handle):
        if stat.S_ISDIR(os.fstat(handle).st_mode):
            raise OSError(getattr(errno, code), "not supported")
        return real_fsync(handle)

    monkeypatch.setattr(os, "fsync", fsync)
    files.write_text(tmp_path / "notes.txt", "kept")
    assert (tmp_path / "notes.txt").read_text() == "kept"


def test_a_failing_folder_flush_is_reported_with_the_files_name(tmp_path, monkeypatch):
    real_fsync = os.fsync

    def fsync(handle):
        if stat.S_ISDIR(os.fstat(handle).st_mode):
            raise OSError(errno.EIO, "Input/output error")
        return real_fsync(handle)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OSError) as caught:
        files.write_text(tmp_path / "notes.txt", "kept")
    assert (caught.value.errno, caught.value.filename) == (errno.EIO, str(tmp_path / "notes.txt"))
