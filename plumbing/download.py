"""Getting data onto the disk safely: download, verify, extract, with locks for parallel jobs.

    fetch(url, dest, verify=...)  http(s) download into dest.part, resumed with Range, retried with
                                  back-off; checked (MD5 and/or a structure check) before the rename
    source_path(url)              a file:// URL or a plain path as a Path (None for http(s))
    data_folder(data_dir)         a lock on the data folder: parallel jobs wait instead of colliding
    extract_members(...)          safe extraction of chosen tar members into a staging folder,
                                  renamed into place when complete and checked
    prepare_archive, prepare_files  a dataset folder made from one archive or from separate files;
                                  it remembers its source (source.json) and refuses to stand in
                                  for another

`what` arguments name where a value came from (a flag or an environment variable), for the messages.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import gzip
import hashlib
import http.client
import json
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
from plumbing.files import atomic_write, locked, remove_stale_temporaries, write_json
from plumbing.progress import Progress

# Errors worth another try: the server or the path to it may recover in a moment.
TRANSIENT = (
    ConnectionError,
    TimeoutError,
    socket.timeout,
    http.client.IncompleteRead,
    http.client.RemoteDisconnected,
)
ARCHIVE_ERRORS = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile)
REDIRECTS = (301, 302, 303, 307, 308)
SOURCE_FILE = "source.json"  # in a dataset folder: what it was made from


class BadReplyError(Exception):
    """A reply that is not valid HTTP, found by our own checks (http.client finds the others)."""


def file_md5(path: Path, *, gunzip: bool = False) -> str:
    """MD5 of a file (or of its decompressed content), read in 1 MiB chunks."""
    digest = hashlib.md5()
    with (gzip.open if gunzip else open)(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def one_line(text: str) -> str:
    """`text` with its line breaks and runs of spaces made single spaces: one-line messages."""
    return " ".join(str(text).split())


def source_path(url: str, what: str = "--data-url") -> Path | None:
    """The path named by a file:// URL or a plain path; None for http(s); else a UsageError."""
    try:
        parsed = urllib.parse.urlparse(url)
    except ValueError as err:
        raise UsageError(
            f"{what} {url!r} is not a valid URL ({err}); give http(s)://..., file://... or a path"
        ) from None
    if parsed.scheme in ("http", "https"):
        if not parsed.netloc:
            raise UsageError(f"{what} {url!r} has no host; write e.g. https://example.org/path")
        return None
    if parsed.scheme == "file":
        return Path(urllib.request.url2pathname(parsed.path))
    if parsed.scheme and len(parsed.scheme) > 1:  # one letter: a Windows drive, C:\...
        raise UsageError(
            f"{what} {url!r}: {parsed.scheme}:// is not supported; use http(s)://, "
            f"file:// or a path"
        )
    return Path(url)


@contextlib.contextmanager
def data_folder(data_dir: Path, what: str = "--data-dir"):
    """Creates `data_dir` and holds its lock: a second job preparing the same data waits for it."""
    data_dir = Path(data_dir)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise UsageError(f"{what} {data_dir} is a file, not a folder; choose a folder") from None
    except PermissionError:
        raise UsageError(
            f"{what} {data_dir} cannot be created (no permission); choose a folder you can write to"
        ) from None

    def waiting():
        print(
            f"waiting for another job that is preparing the data in {data_dir} ...", file=sys.stderr
        )

    try:
        with locked(data_dir / ".lock", on_wait=waiting):
            remove_stale_temporaries(data_dir)
            for staging in data_dir.glob(".extract-*"):  # left by a job killed while extracting
                shutil.rmtree(staging, ignore_errors=True)
            yield data_dir
    except PermissionError:
        raise UsageError(
            f"{what} {data_dir} is not writable; choose a folder you can write to"
        ) from None


# ----------------------------------------------------------------------------- download
def fetch(
    url: str,
    dest: Path,
    *,
    md5: str | None = None,
    verify: Callable[[Path], None] | None = None,
    retries: int = 4,
    backoff_s: float = 1.0,
    timeout_s: float = 30.0,
    show_progress: bool = True,
    offline: str | None = None,
) -> Path:
    """Downloads `url` to `dest`, atomically: into `dest.part`, renamed only once verified.

    Transient errors (dropped connections, time-outs, 5xx) are retried with exponential back-off,
    resuming the partial file when the server supports ranges. DNS, TLS and other HTTP errors fail
    at once. SSL certificates are always verified. A download that fails its check after resuming a
    partial file from an earlier run is fetched once more from the start.

    Args:
        url, dest: the http(s) URL, and the final path (its folder exists, locked by the caller).
        md5: the expected MD5 hex digest, or None.
        verify: called with the file; raises DataError if it is wrong.
        retries, backoff_s, timeout_s: how often to retry, the first wait (doubled each time), and
            the socket time-out for connecting and for each read.
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
        except (OSError, http.client.HTTPException, BadReplyError) as err:
            reason = retry_reason(err, url, part, offline)
        if attempt == retries:
            raise DataError(
                f"could not download {url} after {retries + 1} tries ({reason}). {offline}"
            )
        wait = backoff_s * 2**attempt
        print(f"  download interrupted ({reason}); retrying in {wait:.0f} s", file=sys.stderr)
        time.sleep(wait)
    try:
        check(part, md5=md5, verify=verify, what=url)
    except DataError as err:
        part.unlink(missing_ok=True)
        if resumed:  # the partial file from before may have been the problem: one fresh try
            print(
                "  the resumed download failed its check; downloading it again from the start",
                file=sys.stderr,
            )
            return fetch(
                url,
                dest,
                md5=md5,
                verify=verify,
                retries=retries,
                backoff_s=backoff_s,
                timeout_s=timeout_s,
                show_progress=show_progress,
                offline=offline,
            )
        raise DataError(
            f"{err}; the damaged file was deleted. Run again, or use another mirror with "
            f"--data-url."
        ) from None
    os.replace(part, dest)
    return dest


def retry_reason(err: Exception, url: str, part: Path, offline: str) -> str:
    """Why a download attempt failed, when another try may succeed; else a one-line DataError."""
    if isinstance(err, urllib.error.HTTPError):
        if err.code in REDIRECTS and "infinite loop" in str(
            err.reason
        ):  # a loop, or over 10 redirects
            raise DataError(
                f"could not download {url}: the server redirects in a loop (HTTP {err.code}). "
                f"{offline}"
            ) from None
        if err.code < 500 and err.code != 429:
            raise DataError(
                f"could not download {url}: HTTP {err.code} {one_line(err.reason)}. {offline}"
            ) from None
        return f"HTTP {err.code}"
    if isinstance(err, urllib.error.URLError):
        if not isinstance(err.reason, TRANSIENT) or isinstance(err.reason, ssl.SSLError):
            raise DataError(
                f"could not download {url}: {one_line(err.reason)}. {offline}"
            ) from None
        return one_line(err.reason)
    if isinstance(err, TRANSIENT):
        return one_line(err) or type(err).__name__
    if isinstance(
        err, (http.client.HTTPException, BadReplyError)
    ):  # garbage will not improve with a retry
        raise DataError(
            f"could not download {url}: the reply is not valid HTTP ({bad_reply(err)}); is it "
            f"the right address? {offline}"
        ) from None
    # the network errors are above: this is the disk (full, read-only)
    raise DataError(
        f"could not write {part} ({err.strerror or err}); free some space or choose another "
        f"--data-dir, then run again: the download resumes"
    ) from None


def check(path: Path, *, md5: str | None, verify: Callable[[Path], None] | None, what: str) -> None:
    """Raises DataError naming `what` when `path` has the wrong MD5 or fails `verify`."""
    if md5 is not None and (actual := file_md5(path)) != md5:
        raise DataError(f"checksum mismatch for {what}: MD5 {actual}, expected {md5}")
    if verify is not None:
        verify(path)


def bad_reply(err: Exception) -> str:
    """What was wrong with a reply, in a few words (http.client's are terse or very long)."""
    if isinstance(err, http.client.BadStatusLine):
        return f"its first line is {one_line(err)[:60]!r}, not 'HTTP/1.1 <status> <reason>'"
    return one_line(err)[:120] or type(err).__name__


def way_out(dest: Path) -> str:
    return (
        f"Either download {dest.name} on another machine and pass --data-url /path/to/{dest.name}, "
        f"or place it in {dest.parent}/ and run again."
    )


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
        if length is not None and not length.strip().isdigit():
            raise BadReplyError(
                f"Content-Length {one_line(length)[:40]!r} is not a number of bytes"
            )
        total = have + int(length) if length else None
        bar = Progress(
            total,
            initial=have,
            desc=part.name[:-5],
            file=sys.stderr,
            unit="B",
            unit_scale=True,
            disable=not show_progress,
        )
        with open(part, "ab" if have else "wb") as out:
            while chunk := response.read1(1 << 16):  # what has arrived, up to 64 KiB
                out.write(chunk)
                out.flush()  # on disk at once: a later run resumes from here
                bar.update(bar.position + len(chunk))
        bar.update(bar.position, final=True)
    if total is not None and part.stat().st_size < total:
        raise ConnectionResetError(
            f"connection closed after {part.stat().st_size:,} of {total:,} bytes"
        )


# ----------------------------------------------------------------------------- archives
def read_whole_gzip(path: Path) -> None:
    """Reads a .gz file to its end: a truncated or non-gzip file (an HTML page) is a DataError."""
    try:
        with gzip.open(path, "rb") as f:
            while f.read(1 << 20):
                pass
    except (EOFError, OSError, zlib.error) as err:
        raise DataError(f"{path} is not a complete gzip file ({one_line(err)})") from None


def tar_reason(err: Exception) -> str:
    """Why tarfile could not read an archive, in one line (its message lists every method tried)."""
    if "could not be opened successfully" in str(err):
        return "neither a plain tar file nor a gzip-, bzip2- or xz-compressed one"
    return one_line(err) or type(err).__name__


def tar_members(archive: Path, folder: str, files: tuple[str, ...]) -> dict[str, tarfile.TarInfo]:
    """The regular-file members of `archive` that hold `files`, refusing unsafe and ambiguous
    archives.

    A tar file can otherwise write anywhere on disk: absolute paths, '..' and links are refused. The
    files come from `folder/` (the official layout) when it holds them all, else from the one folder
    that does (a re-packed copy). Two such folders, or one file twice, are ambiguous: refused, never
    guessed. Returns what `folder/` holds when no folder holds them all (the caller names what is
    missing).
    """
    found: dict[str, dict[str, list[tarfile.TarInfo]]] = {}  # folder -> file name -> members
    with tarfile.open(archive, "r:*") as tar:
        for member in tar.getmembers():
            path = PurePosixPath(member.name)  # "./a//b" reads as "a/b"
            if path.is_absolute() or ".." in path.parts or member.name.startswith("\\"):
                raise DataError(
                    f"{archive} has an unsafe member path {member.name!r}; not extracting it"
                )
            if member.issym() or member.islnk():
                raise DataError(
                    f"{archive} has a link member {member.name!r}; refusing to extract it"
                )
            if member.isfile() and path.name in files:
                found.setdefault(str(path.parent), {}).setdefault(path.name, []).append(member)
    complete = sorted(name for name, held in found.items() if len(held) == len(files))
    if folder not in complete and len(complete) > 1:
        raise DataError(
            f"{archive} holds the data files in several folders ({', '.join(complete)}), none of "
            f"them {folder}/: it is ambiguous; not extracting it"
        )
    chosen = folder if folder in complete or not complete else complete[0]
    held = found.get(chosen, {})
    if twice := [name for name, members in held.items() if len(members) > 1]:
        raise DataError(
            f"{archive} holds {chosen}/{twice[0]} more than once: it is ambiguous; not "
            f"extracting it"
        )
    return {name: members[0] for name, members in held.items()}


def extract_members(
    archive: Path,
    members: dict[str, tarfile.TarInfo],
    target: Path,
    check_folder: Callable[[Path], str | None],
    *,
    record: dict | None = None,
    fix: str = "check the file, or download a fresh copy",
    where: str = "--data-dir",
) -> Path:
    """Extracts `members` (from tar_members) into `target` through a staging folder renamed into
    place.

    The staging folder is `.extract-<pid>` in the same folder: a job killed half-way leaves it, and
    the next job (holding the data-folder lock) deletes it. The folder gets the permissions the
    umask allows. `record` (where the data came from) is written into it as source.json; `fix` ends
    a damage message.
    """
    staging = target.parent / f".extract-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir()
        with tarfile.open(archive, "r:*") as tar:
            for name, member in members.items():
                if hasattr(
                    tarfile, "data_filter"
                ):  # Python 3.11.4+: tarfile's own safety filter as well
                    tar.extract(member.replace(name=name, deep=False), staging, filter="data")
                    continue
                with tar.extractfile(member) as src, open(staging / name, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        if problem := check_folder(staging):
            raise DataError(f"{archive} is damaged: {problem}; {fix}")
        if record is not None:
            write_json(staging / SOURCE_FILE, record)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staging, 0o777 & ~umask)
        os.rename(staging, target)
    except ARCHIVE_ERRORS as err:
        raise DataError(
            f"could not read {archive} ({tar_reason(err)}): it is damaged or not a tar "
            f"archive; {fix}"
        ) from None
    except OSError as err:  # the archive was readable: this is the disk (full, read-only)
        size = sum(member.size for member in members.values())
        full = err.errno in (errno.ENOSPC, errno.EDQUOT)
        advice = (
            f"free some space (the data takes {size / 1e6:,.1f} MB) or choose another {where}"
            if full
            else f"choose another {where} you can write to"
        )
        raise DataError(
            f"could not extract {archive} into {target.parent} ({err.strerror or err}): "
            f"{advice}, then run the same command again"
        ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


# ---------------------------------------------------------------------- what a folder was made from
def read_source(folder: Path) -> dict | None:
    """What a dataset folder was made from, or None (no record: an older version made it)."""
    try:
        record = json.loads((folder / SOURCE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("source"), str) else None


def source_key(url: str, local: Path | None) -> str:
    """How a source is recorded: a local file or folder by its absolute path, else by its URL."""
    return str(local.resolve()) if local is not None else url


def other_source(folder: Path, was: str | None, now: str, what: str, where: str) -> UsageError:
    """The error for a folder made from `was` (None: not recorded) when the command names `now`."""
    held = f"the data of {was}, not of {now}" if was else f"other data than {now}"
    return UsageError(
        f"{folder} holds {held} (given by {what}); choose another {where} for it, or delete "
        f"{folder} and run again to put it there"
    )


def check_archive_source(
    target: Path, source: str, archive: Path, known_md5: str | None, *, what: str, where: str
) -> None:
    """Raises UsageError unless the folder `target` was extracted from the archive `source`: the
    same path (unchanged) or URL, or an archive of the same MD5 (`known_md5`, else that of `archive`
    if it is there). A folder that records no source (an older version extracted it) stands for the
    official archive only.
    """
    record = read_source(target)
    if record is None:
        if known_md5 is None:
            raise UsageError(
                f"{target} does not record which archive it was extracted from (an older "
                f"version made it); delete it and run again to extract {source} ({what}) "
                f"there, or choose another {where}"
            )
        return
    if record["source"] == source:
        if source.startswith(("http://", "https://")) or not archive.is_file():
            return  # the same URL; or a local archive since deleted: the folder is all there is
        stat = archive.stat()
        if (record.get("size"), record.get("mtime_ns")) == (
            stat.st_size,
            stat.st_mtime_ns,
        ) or file_md5(archive) == record.get("md5"):
            return
        raise UsageError(
            f"{source} has changed since {target} was extracted from it; delete {target} "
            f"and run again to extract it afresh"
        )
    if known_md5 is None and archive.is_file():  # a local archive, or one downloaded earlier
        known_md5 = file_md5(archive)
    if known_md5 is None or known_md5 != record.get("md5"):
        raise other_source(target, record["source"], source, what, where)


# ------------------------------------------------------------------------- a dataset in one archive
def obtain_archive(
    url: str,
    archive: Path,
    local: Path | None,
    expected_md5: str | None,
    fix: str,
    what: str,
    check: dict,
    download_options: dict,
) -> None:
    """Makes `archive` a checked tar archive (`check`: check_tar_archive's options): a local one,
    or one downloaded before, is checked against its MD5 (when known) and for structure; else it is
    downloaded from `url` and checked the same way. `fix` ends the message of a damaged one."""
    if local is not None:
        check_local_archive(local, what)
    if not archive.is_file():
        print(f"Downloading {url} to {archive}", file=sys.stderr)
        verify = functools.partial(check_tar_archive, **check)
        fetch(url, archive, md5=expected_md5, **download_options, verify=verify)
        return
    if expected_md5 and (actual := file_md5(archive)) != expected_md5:
        raise DataError(
            f"{archive} is damaged or not the official archive (MD5 {actual}, expected "
            f"{expected_md5}); {fix}"
        )
    try:
        check_tar_archive(archive, **check)
    except DataError as err:
        raise DataError(f"{err}; {fix}") from None


def prepare_archive(
    data_dir: Path,
    url: str,
    *,
    folder: str,
    files: tuple[str, ...],
    record_bytes: int,
    official: tuple[str, str],
    md5: str | None = None,
    named: bool = True,
    check_content: Callable[[Path], str | None] | None = None,
    what: str = "--data-url",
    where: str = "--data-dir",
    **download_options,
) -> Path:
    """Makes `data_dir/folder` hold `files` (fixed-size records) from the tar archive at `url`.

    The folder records its archive (source.json): a command that names another archive (`named`, by
    `what`: a flag or a variable) is refused rather than given this folder's data. Without a named
    source, the folder in place is used.

    Args:
        official: (name, MD5): an archive of that name must have that MD5. Any other archive is
            checked for structure before it is trusted (every file, whole records, complete gzip).
        md5: the expected MD5 when known (overrides `official`).
        check_content: what is wrong with an extracted folder beyond its sizes (None: nothing).
        where: what named `data_dir` (a flag or a variable), for the messages.
    """
    local, target = source_path(url, what), Path(data_dir) / folder
    spec = dict(files=files, record_bytes=record_bytes)
    name = PurePosixPath(urllib.parse.urlparse(url).path).name
    archive = local if local is not None else Path(data_dir) / name
    expected_md5 = md5 or (official[1] if archive.name == official[0] else None)
    source = source_key(url, local)
    if target.is_dir() and not whole_records(target, **spec):
        if named:
            check_archive_source(target, source, archive, expected_md5, what=what, where=where)
        return target
    with data_folder(data_dir, where):
        if target.exists():
            if problem := whole_records(target, **spec):
                raise DataError(f"{problem}; delete {target} and run again to extract it afresh")
            if named:
                check_archive_source(target, source, archive, expected_md5, what=what, where=where)
            return target  # another job extracted it while we waited
        if local is not None:
            fix = "check the file, or download a fresh copy"
        else:
            fix = f"delete {archive} and run again to download it afresh"
        check = dict(folder=folder, **spec)
        obtain_archive(url, archive, local, expected_md5, fix, what, check, download_options)
        stat = archive.stat()
        record = dict(
            source=source,
            md5=expected_md5 or file_md5(archive),
            size=stat.st_size,
            mtime_ns=stat.st_mtime_ns,
        )

        def problem(path: Path) -> str | None:
            return whole_records(path, **spec) or (check_content(path) if check_content else None)

        return extract_members(
            archive,
            tar_members(archive, folder, files),
            target,
            problem,
            record=record,
            fix=fix,
            where=where,
        )


def check_local_archive(archive: Path, what: str) -> None:
    """Raises DataError unless the path given for an archive is a file."""
    if archive.is_dir():
        raise DataError(
            f"{archive} is a folder, not an archive: {what} must name the archive file itself "
            f"(a .tar.gz)"
        )
    if not archive.is_file():
        raise DataError(f"no such file {archive}: check the path given with {what}")


def whole_records(path: Path, files: tuple[str, ...], record_bytes: int) -> str | None:
    """What is wrong with an extracted folder; None when each file is a whole number of records."""
    for name in files:
        size = (path / name).stat().st_size if (path / name).is_file() else None
        if size is None:
            return f"{path / name} is missing"
        if size == 0 or size % record_bytes:
            records = f"a whole number of {record_bytes}-byte records"
            return f"{path / name} has {size:,} bytes, not {records}"
    return None


def check_tar_archive(
    archive: Path, *, folder: str, files: tuple[str, ...], record_bytes: int
) -> None:
    """Raises DataError unless `archive` is a whole tar archive of files of whole records."""
    with open(archive, "rb") as f:
        head = f.read(64).lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")):
        raise DataError(f"{archive} is a web page, not an archive (an error or login page?)")
    if head[:2] == b"\x1f\x8b":  # gzip
        read_whole_gzip(archive)
    try:
        members = tar_members(archive, folder, files)
    except ARCHIVE_ERRORS as err:
        raise DataError(f"{archive} is not a readable tar archive ({tar_reason(err)})") from None
    for name in files:
        if name not in members:
            raise DataError(f"{archive} lacks {folder}/{name}: it is not the expected archive")
        if members[name].size == 0 or members[name].size % record_bytes:
            raise DataError(
                f"{archive}: {name} has {members[name].size:,} bytes, not a whole number of "
                f"{record_bytes}-byte records"
            )


# ---------------------------------------------------------------------- a dataset in separate files
def prepare_files(
    target: Path,
    base: str,
    *,
    names: tuple[str, ...],
    verify: Callable[[Path, str], None],
    named: bool = True,
    official: tuple[str, dict[str, str]] | None = None,
    what: str = "--data-url",
    where: str = "--data-dir",
    **download_options,
) -> Path:
    """Makes the folder `target` hold the files `names` from `base`: a base URL, or a folder (a
    file:// URL or a path) whose files are copied in. Each file is checked by verify(path, name)
    before it is placed.

    The folder records its source and the MD5 of each file's content (source.json): a command that
    names another source (`named`) whose content differs is refused. `official` is (base URL, {name:
    content MD5}) of the official files; `what` and `where` name the flags or variables, for the
    messages.
    """
    local = source_path(base, what)
    source = source_key(base, local)
    if all((target / name).is_file() for name in names):  # checked when they were placed
        if named:
            check_files_source(target, source, local, names, official, what=what, where=where)
        return target
    if local is not None and not local.is_dir():
        kind = "is a file, not a folder" if local.exists() else "does not exist"
        raise DataError(
            f"{local} {kind}: {what} must name the folder (or base URL) holding {', '.join(names)}"
        )
    with data_folder(target.parent, where):
        target.mkdir(exist_ok=True)
        remove_stale_temporaries(target)
        if all(
            (target / name).is_file() for name in names
        ):  # another job placed them while we waited
            if named:
                check_files_source(target, source, local, names, official, what=what, where=where)
            return target
        if (read_source(target) or {}).get(
            "source"
        ) != source:  # begun from elsewhere: never mix two
            for name in names:
                (target / name).unlink(missing_ok=True)
            write_json(target / SOURCE_FILE, dict(source=source))
        for name in names:
            if not (target / name).is_file():
                place_file(target / name, base, local, verify, **download_options)
        write_json(
            target / SOURCE_FILE, dict(source=source, content_md5=content_md5s(target, names))
        )
    return target


def place_file(
    dest: Path,
    base: str,
    local: Path | None,
    verify: Callable[[Path, str], None],
    **download_options,
) -> None:
    """Downloads one file of a dataset from the base URL (or copies it from `local`), checked."""
    name = dest.name
    if local is None:
        print(f"Downloading {base.rstrip('/')}/{name} to {dest}", file=sys.stderr)
        offline = (
            f"Either download the four files elsewhere and pass --data-url with their folder, "
            f"or place them in {dest.parent}/ and run again."
        )
        fetch(
            f"{base.rstrip('/')}/{name}",
            dest,
            verify=lambda path: verify(path, name),
            offline=offline,
            **download_options,
        )
        return
    if not (local / name).is_file():
        raise DataError(
            f"{local} has no {name}: --data-url must name the folder holding the dataset's files"
        )
    try:
        verify(local / name, name)
    except DataError as err:
        raise DataError(f"{err}; check the files in {local}, or download fresh copies") from None
    atomic_write(dest, lambda tmp: shutil.copyfile(local / name, tmp))


def content_md5s(folder: Path, names: tuple[str, ...]) -> dict[str, str] | None:
    """The MD5 of each gzip file's content (a re-compressed copy has the same), or None if one is
    missing or unreadable."""
    try:
        return {name: file_md5(Path(folder) / name, gunzip=True) for name in names}
    except (OSError, EOFError, zlib.error):
        return None


def check_files_source(
    target: Path,
    source: str,
    local: Path | None,
    names: tuple[str, ...],
    official: tuple[str, dict[str, str]] | None,
    *,
    what: str,
    where: str,
) -> None:
    """Raises UsageError unless the folder `target` holds the files of `source`: the same path or
    URL, or files of the same content (a local folder's, or the official ones)."""
    record = read_source(target) or {}
    if record.get("source") == source:
        return
    held = record.get("content_md5") or content_md5s(target, names)
    if local is not None:
        given = content_md5s(local, names)
    else:
        given = official[1] if official is not None and source == official[0] else None
    if given is None or given != held:
        raise other_source(target, record.get("source"), source, what, where)
