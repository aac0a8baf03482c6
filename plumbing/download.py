"""Getting data onto the disk safely: download, verify, extract, with locks for parallel jobs.

    fetch(url, dest, verify=...)  http(s) download into dest.part, resumed with Range, retried with
                                  back-off; checked (MD5 and/or a structure check) before the rename
    source_path(url)              a file:// URL or a plain path as a Path (None for http(s))
    data_folder(data_dir)         a lock on the data folder: parallel jobs wait instead of colliding
    extract_members(...)          safe extraction of chosen tar members into a staging folder,
                                  renamed into place when complete and checked
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import os
import shutil
import socket
import ssl
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from plumbing.errors import DataError, UsageError
from plumbing.files import atomic_write, locked, remove_stale_temporaries
from plumbing.progress import Progress

# Errors worth another try: the server or the path to it may recover in a moment.
TRANSIENT = (ConnectionError, TimeoutError, socket.timeout, http.client.IncompleteRead,
             http.client.RemoteDisconnected)
ARCHIVE_ERRORS = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile)


def file_md5(path: Path, *, gunzip: bool = False) -> str:
    """MD5 of a file (or of its decompressed content), read in 1 MiB chunks."""
    digest = hashlib.md5()
    with (gzip.open if gunzip else open)(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def source_path(url: str) -> Path | None:
    """The path named by a file:// URL or a plain path; None for http(s). Raises UsageError otherwise."""
    try:
        parsed = urllib.parse.urlparse(url)
    except ValueError as err:
        raise UsageError(f"--data-url {url!r} is not a valid URL ({err}); give http(s)://..., file://... "
                         f"or a path") from None
    if parsed.scheme in ("http", "https"):
        if not parsed.netloc:
            raise UsageError(f"--data-url {url!r} has no host; write e.g. https://example.org/path")
        return None
    if parsed.scheme == "file":
        return Path(urllib.request.url2pathname(parsed.path))
    if parsed.scheme and len(parsed.scheme) > 1:  # one letter: a Windows drive, C:\...
        raise UsageError(f"--data-url {url!r}: {parsed.scheme}:// is not supported; use http(s)://, "
                         f"file:// or a path")
    return Path(url)


@contextlib.contextmanager
def data_folder(data_dir: Path):
    """Creates `data_dir` and holds its lock: a second job preparing the same data waits, then finds it."""
    data_dir = Path(data_dir)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise UsageError(f"--data-dir {data_dir} is a file, not a folder; choose a folder") from None
    except PermissionError:
        raise UsageError(f"--data-dir {data_dir} cannot be created (no permission); choose a folder "
                         f"you can write to") from None

    def waiting():
        print(f"waiting for another job that is preparing the data in {data_dir} ...", file=sys.stderr)
    try:
        with locked(data_dir / ".lock", on_wait=waiting):
            remove_stale_temporaries(data_dir)
            for staging in data_dir.glob(".extract-*"):  # left by a job killed while extracting
                shutil.rmtree(staging, ignore_errors=True)
            yield data_dir
    except PermissionError:
        raise UsageError(f"--data-dir {data_dir} is not writable; choose a folder you can write to") from None


# ----------------------------------------------------------------------------- download
def fetch(url: str, dest: Path, *, md5: str | None = None, verify: Callable[[Path], None] | None = None,
          retries: int = 4, backoff_s: float = 1.0, timeout_s: float = 30.0, show_progress: bool = True,
          offline: str | None = None) -> Path:
    """Downloads `url` to `dest`, atomically: into `dest.part`, renamed only once verified.

    Transient errors (dropped connections, time-outs, 5xx) are retried with exponential back-off,
    resuming the partial file when the server supports ranges. DNS, TLS and other HTTP errors fail
    at once. SSL certificates are always verified. A download that fails its check after resuming a
    partial file from an earlier run is fetched once more from the start.

    Args:
        url, dest: the http(s) URL, and the final path (its folder exists, locked by the caller).
        md5: the expected MD5 hex digest, or None; verify: called with the file, raises DataError if wrong.
        retries, backoff_s, timeout_s: how often to retry, the first wait (doubled each time), and the
            socket time-out for connecting and for each read.
        show_progress: a progress bar (bytes, percent, rate) on stderr.
        offline: what to do without a network, for the messages (default: get the file elsewhere).

    Raises DataError with the URL, the reason and the ways out.
    """
    part = dest.with_name(dest.name + ".part")
    resumed = part.exists() and part.stat().st_size > 0
    offline = offline or way_out(dest)
    for attempt in range(retries + 1):
        try:
            _fetch_once(url, part, timeout_s, show_progress)
            break
        except urllib.error.HTTPError as err:
            if err.code < 500 and err.code != 429:
                raise DataError(f"could not download {url}: HTTP {err.code} {err.reason}. {offline}"
                                ) from None
            reason = f"HTTP {err.code}"
        except urllib.error.URLError as err:
            if not isinstance(err.reason, TRANSIENT) or isinstance(err.reason, ssl.SSLError):
                raise DataError(f"could not download {url}: {err.reason}. {offline}") from None
            reason = str(err.reason)
        except TRANSIENT as err:
            reason = str(err) or type(err).__name__
        except OSError as err:  # the network errors are above: this is the disk (full, read-only)
            raise DataError(f"could not write {part} ({err.strerror or err}); free some space or choose "
                            f"another --data-dir, then run again: the download resumes") from None
        if attempt == retries:
            raise DataError(f"could not download {url} after {retries + 1} tries ({reason}). {offline}")
        wait = backoff_s * 2 ** attempt
        print(f"  download interrupted ({reason}); retrying in {wait:.0f} s", file=sys.stderr)
        time.sleep(wait)
    try:
        check(part, md5=md5, verify=verify, what=url)
    except DataError as err:
        part.unlink(missing_ok=True)
        if resumed:  # the partial file from before may have been the problem: one fresh try
            print("  the resumed download failed its check; downloading it again from the start",
                  file=sys.stderr)
            return fetch(url, dest, md5=md5, verify=verify, retries=retries, backoff_s=backoff_s,
                         timeout_s=timeout_s, show_progress=show_progress, offline=offline)
        raise DataError(f"{err}; the damaged file was deleted. Run again, or use another mirror with "
                        f"--data-url.") from None
    os.replace(part, dest)
    return dest


def check(path: Path, *, md5: str | None, verify: Callable[[Path], None] | None, what: str) -> None:
    """Raises DataError naming `what` when `path` has the wrong MD5 or fails `verify`."""
    if md5 is not None and (actual := file_md5(path)) != md5:
        raise DataError(f"checksum mismatch for {what}: MD5 {actual}, expected {md5}")
    if verify is not None:
        verify(path)


def way_out(dest: Path) -> str:
    return (f"Either download {dest.name} on another machine and pass --data-url /path/to/{dest.name}, "
            f"or place it in {dest.parent}/ and run again.")


def _fetch_once(url: str, part: Path, timeout: float, show_progress: bool) -> None:
    """Fetches `url` into `part`, continuing a partial file when the server honours Range."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # nothing left to fetch: the check decides
            return
        raise
    with response:
        if have and response.status != 206:  # the server ignored Range: start again
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length else None
        bar = Progress(total, initial=have, desc=part.name[:-5], file=sys.stderr, unit="B", unit_scale=True,
                       disable=not show_progress)
        with open(part, "ab" if have else "wb") as out:
            while chunk := response.read1(1 << 16):  # what has arrived, up to 64 KiB
                out.write(chunk)
                out.flush()  # on disk at once: a later run resumes from here
                bar.update(bar.position + len(chunk))
        bar.update(bar.position, final=True)
    if total is not None and part.stat().st_size < total:
        raise ConnectionResetError(f"connection closed after {part.stat().st_size:,} of {total:,} bytes")


# ----------------------------------------------------------------------------- archives
def read_whole_gzip(path: Path) -> None:
    """Reads a .gz file to its end, so that a truncated or non-gzip file (an HTML page) raises DataError."""
    try:
        with gzip.open(path, "rb") as f:
            while f.read(1 << 20):
                pass
    except (EOFError, OSError, zlib.error) as err:
        raise DataError(f"{path} is not a complete gzip file ({err})") from None


def tar_members(archive: Path, wanted: set[str]) -> dict[str, tarfile.TarInfo]:
    """The regular-file members of `archive` whose base name is in `wanted`, refusing unsafe archives.

    A tar file can otherwise write anywhere on disk: absolute paths, '..' and links are refused.
    """
    members = {}
    with tarfile.open(archive, "r:*") as tar:
        for member in tar.getmembers():
            path = PurePosixPath(member.name)
            if path.is_absolute() or ".." in path.parts or member.name.startswith("\\"):
                raise DataError(f"{archive} has an unsafe member path {member.name!r}; not extracting it")
            if member.issym() or member.islnk():
                raise DataError(f"{archive} has a link member {member.name!r}; refusing to extract it")
            if member.isfile() and path.name in wanted:
                members[path.name] = member
    return members


def extract_members(archive: Path, members: dict[str, tarfile.TarInfo], target: Path,
                    check_folder: Callable[[Path], str | None]) -> Path:
    """Extracts `members` (from tar_members) into `target` through a staging folder renamed into place.

    The staging folder is `.extract-<pid>` in the same folder: a job killed half-way leaves it, and the
    next job (holding the data-folder lock) deletes it. The folder gets the permissions the umask allows.
    """
    staging = target.parent / f".extract-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        with tarfile.open(archive, "r:*") as tar:
            for name, member in members.items():
                if hasattr(tarfile, "data_filter"):  # Python 3.11.4+: tarfile's own safety filter as well
                    tar.extract(member.replace(name=name, deep=False), staging, filter="data")
                    continue
                with tar.extractfile(member) as src, open(staging / name, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        if problem := check_folder(staging):
            raise DataError(f"{archive} is damaged: {problem}")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staging, 0o777 & ~umask)
        os.rename(staging, target)
    except ARCHIVE_ERRORS as err:
        raise DataError(f"could not read {archive} ({err}): it is damaged or not a tar archive") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


# ----------------------------------------------------------------------------- a dataset in one archive
def prepare_archive(data_dir: Path, url: str, *, folder: str, files: tuple[str, ...], record_bytes: int,
                    official: tuple[str, str], md5: str | None = None, **download_options) -> Path:
    """Makes `data_dir/folder` hold `files` (fixed-size records) from the tar archive at `url`.

    Args:
        official: (name, MD5): an archive of that name must have that MD5. Any other archive is
            checked for structure before it is trusted (every file, whole records, complete gzip).
        md5: the expected MD5 when known (overrides `official`).
    """
    local, target = source_path(url), data_dir / folder
    spec = dict(files=files, record_bytes=record_bytes)
    if target.is_dir() and not whole_records(target, **spec):
        return target
    with data_folder(data_dir):
        if target.exists():
            if problem := whole_records(target, **spec):
                raise DataError(f"{problem}; delete {target} and run again to extract it afresh")
            return target  # another job extracted it while we waited
        name = PurePosixPath(urllib.parse.urlparse(url).path).name
        archive = local if local is not None else data_dir / name
        expected_md5 = md5 or (official[1] if archive.name == official[0] else None)
        if local is not None and not archive.is_file():
            raise DataError(f"no archive at {archive}: check the path given with --data-url")
        if archive.is_file():
            fix = ("check the file, or download a fresh copy" if local is not None
                   else f"delete {archive} and run again to download it afresh")
            if expected_md5 and (actual := file_md5(archive)) != expected_md5:
                raise DataError(f"{archive} is damaged or not the official archive (MD5 {actual}, expected "
                                f"{expected_md5}); {fix}")
            try:
                check_tar_archive(archive, folder=folder, **spec)
            except DataError as err:
                raise DataError(f"{err}; {fix}") from None
        else:
            print(f"Downloading {url} to {archive}", file=sys.stderr)
            fetch(url, archive, md5=expected_md5, **download_options,
                  verify=lambda path: check_tar_archive(path, folder=folder, **spec))
        return extract_members(archive, tar_members(archive, set(files)), target,
                               lambda path: whole_records(path, **spec))


def whole_records(path: Path, files: tuple[str, ...], record_bytes: int) -> str | None:
    """What is wrong with an extracted folder, or None when every file is a whole number of records."""
    for name in files:
        size = (path / name).stat().st_size if (path / name).is_file() else None
        if size is None:
            return f"{path / name} is missing"
        if size == 0 or size % record_bytes:
            return f"{path / name} has {size:,} bytes, not a whole number of {record_bytes}-byte records"
    return None


def check_tar_archive(archive: Path, *, folder: str, files: tuple[str, ...], record_bytes: int) -> None:
    """Raises DataError unless `archive` is a complete tar archive holding every file as whole records."""
    with open(archive, "rb") as f:
        head = f.read(64).lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")):
        raise DataError(f"{archive} is a web page, not an archive (an error or login page?)")
    if head[:2] == b"\x1f\x8b":  # gzip
        read_whole_gzip(archive)
    try:
        members = tar_members(archive, set(files))
    except ARCHIVE_ERRORS as err:
        raise DataError(f"{archive} is not a readable tar archive ({str(err).splitlines()[0]})") from None
    for name in files:
        if name not in members:
            raise DataError(f"{archive} lacks {folder}/{name}: it is not the expected archive")
        if members[name].size == 0 or members[name].size % record_bytes:
            raise DataError(f"{archive}: {name} has {members[name].size:,} bytes, not a whole number of "
                            f"{record_bytes}-byte records")


# ----------------------------------------------------------------------------- a dataset in separate files
def prepare_files(target: Path, base: str, *, names: tuple[str, ...], verify: Callable[[Path, str], None],
                  **download_options) -> Path:
    """Makes the folder `target` hold the files `names` from `base`: a base URL, or a folder (a file:// URL
    or a path) whose files are copied in. Each file is checked by verify(path, name) before it is placed."""
    if all((target / name).is_file() for name in names):
        return target  # checked when they were placed
    local = source_path(base)
    if local is not None and not local.is_dir():
        raise DataError(f"{local} is not a folder: --data-url must name the folder (or base URL) holding "
                        f"{', '.join(names)}")
    with data_folder(target.parent):
        target.mkdir(exist_ok=True)
        remove_stale_temporaries(target)
        for name in names:
            dest = target / name
            if dest.is_file():
                continue
            if local is None:
                print(f"Downloading {base.rstrip('/')}/{name} to {dest}", file=sys.stderr)
                offline = (f"Either download the four files elsewhere and pass --data-url with their folder, "
                           f"or place them in {target}/ and run again.")
                fetch(f"{base.rstrip('/')}/{name}", dest, verify=lambda path, name=name: verify(path, name),
                      offline=offline, **download_options)
                continue
            if not (local / name).is_file():
                raise DataError(f"{local} has no {name}: --data-url must name the folder holding "
                                f"{', '.join(names)}")
            try:
                verify(local / name, name)
            except DataError as err:
                raise DataError(f"{err}; check the files in {local}, or download fresh copies") from None
            atomic_write(dest, lambda tmp, name=name: shutil.copyfile(local / name, tmp))
    return target
