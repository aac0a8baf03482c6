"""Files that are never half-written, and locks that let parallel jobs share a folder.

Every file the project writes goes to `<stem>.tmp-<pid><suffix>` first (best.tmp-123.keras:
writers that go by the suffix still see it), is flushed to disk and renamed into place, and then
the folder itself is flushed (on POSIX systems): a crash, a kill -9, a power cut or a full disk
leaves either the old file or the new one, never a mixture. Locks are advisory locks on a `.lock`
file (released by the operating system when the process dies, even by kill -9).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
    import msvcrt


TEMPORARY = re.compile(r"\.tmp-(\d+)(\.[^.]*)?$")


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Calls write(tmp) on a temporary file beside `path`, flushes it to disk, renames it into
    place, then flushes the folder (the new name is an entry of the folder: a power cut before that
    can lose it).

    The temporary name keeps the extension (best.tmp-123.keras), for writers that go by it."""
    path = Path(path)
    tmp = path.with_name(f"{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        sync_folder(path.parent)
    except OSError as err:  # a full disk, say: named by the file the user knows, not the temporary
        if err.filename not in (None, str(tmp), tmp):
            raise
        raise OSError(err.errno, err.strerror or str(err), str(path)) from err
    finally:
        if tmp.exists():
            tmp.unlink()


def sync_folder(folder: Path) -> None:
    """Flushes a folder's entries (the names of its files) to disk. POSIX only: where a folder
    cannot be opened (Windows has no O_DIRECTORY) or its file system cannot flush one, nothing is
    done."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    try:
        handle = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:  # not readable: the file is in place all the same
        return
    try:
        os.fsync(handle)
    except OSError as err:
        if err.errno not in (errno.EINVAL, errno.ENOTSUP):  # a file system that cannot: no error
            raise
    finally:
        os.close(handle)


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def write_json(path: Path, data) -> None:
    write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def picture_path(text: str) -> Path:
    """An argparse type for a picture's file (--out, --plot, --show): its suffix must name a format
    matplotlib writes, checked before any work is done (the figure is saved at the end, to a
    temporary name that keeps this suffix, and matplotlib goes by it)."""
    from matplotlib.backend_bases import FigureCanvasBase  # here: only when a picture is asked for

    suffix = Path(text).suffix.lower().removeprefix(".")
    if suffix not in FigureCanvasBase.get_supported_filetypes():
        raise argparse.ArgumentTypeError(
            f"{text} is not a picture file name: end it in .png (or .pdf, .svg, .jpg)"
        )
    return Path(text)


def remove_stale_temporaries(folder: Path) -> None:
    """Deletes `*.tmp-<pid>` files left by processes that died (the pid is no longer running)."""
    for tmp in Path(folder).glob("*.tmp-*"):
        match = TEMPORARY.search(tmp.name)
        if match and not _running(int(match.group(1))):
            with contextlib.suppress(OSError):
                tmp.unlink()


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, but not ours
        return True
    return True


class BusyError(Exception):
    """The lock is held by another process."""


@contextlib.contextmanager
def locked(lock_path: Path, *, wait: bool = True, on_wait: Callable[[], None] | None = None):
    """Holds an exclusive lock on `lock_path` (created if missing) for the duration of the block.

    Args:
        wait: block until the lock is free; with False, raise BusyError at once if another process
            holds it.
        on_wait: called once if the lock is busy and we are about to wait (to say so).
    """
    lock_path = Path(lock_path)
    with open(lock_path, "a+b") as handle:
        if not _try_lock(handle):
            if not wait:
                raise BusyError(str(lock_path))
            if on_wait:
                on_wait()
            while not _try_lock(handle):
                time.sleep(0.2)
        try:
            yield
        finally:
            _unlock(handle)


def _try_lock(handle) -> bool:
    try:
        if fcntl:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            handle.seek(0)
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        return True
    except OSError:
        return False


def _unlock(handle) -> None:
    if fcntl:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    else:
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
