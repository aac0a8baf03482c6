"""Fault injection, bad HTTP replies: each reply a broken server, proxy or wrong address can send,
served raw from 127.0.0.1 (tests/helpers.py: a thread that stops by itself), to the command line and
to the download code. Each ends in one line naming the URL and the problem (exit code 1), never a
traceback, with nothing half-done left but a partial download that the next run resumes.

Run with `pytest -m faults` (left out of the default run; the default run has a fast test of each of
the five replies http.client rejects, in tests/test_downloads.py). Not graded."""

import subprocess
import sys
from pathlib import Path

import pytest

import cifar10_input as ci
import mnist_input as mi
from helpers import BAD_REPLIES, raw_server
from plumbing.errors import DataError

pytestmark = pytest.mark.faults
REPO = Path(__file__).resolve().parent.parent
FAST = {"retries": 2, "backoff_s": 0.01, "timeout_s": 1.0, "show_progress": False}


def command(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """python cifar10_input.py ARGS with tmp_path/data as the data folder, bounded in time."""
    return subprocess.run(
        [sys.executable, "cifar10_input.py", "--data-dir", str(tmp_path / "data"), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_one_line(result: subprocess.CompletedProcess, starts: str, contains: str) -> None:
    """Exit code 1, no traceback, and the error in one line, the last (after the progress)."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert [line for line in lines if line.startswith("error:")] == lines[-1:], lines
    assert lines[-1].startswith(f"error: {starts}") and contains in lines[-1], lines[-1]


@pytest.mark.parametrize("case", BAD_REPLIES)
def test_the_command_line_gives_one_line_for_a_reply_http_client_rejects(case, tmp_path):
    reply, reason = BAD_REPLIES[case]
    base, requests = raw_server(reply)
    url = f"{base}/cifar-10-binary.tar.gz"
    result = command(tmp_path, "--data-url", url)
    assert_one_line(result, f"could not download {url}: the reply is not valid HTTP (", reason)
    assert len(requests) == 1 and sorted(p.name for p in (tmp_path / "data").iterdir()) == [".lock"]


@pytest.mark.parametrize("case", BAD_REPLIES)
def test_the_mnist_download_gives_one_line_for_a_reply_http_client_rejects(case, tmp_path):
    reply, reason = BAD_REPLIES[case]
    base, _ = raw_server(reply)
    result = command(tmp_path, "--dataset", "mnist", "--data-url", base + "/")
    first = f"{base}/{mi.FILES['train'][0]}"  # the first of the four files
    assert_one_line(result, f"could not download {first}: the reply is not valid", reason)
    assert "download the four files elsewhere" in result.stderr


@pytest.mark.parametrize(
    "reply,starts,contains",
    [
        (
            b"HTTP/1.1 302 Found\r\nLocation: /x.tar.gz\r\nContent-Length: 0\r\n\r\n",
            "could not download {url}: the server redirects in a loop (HTTP 302)",
            "place it in",
        ),
        (
            b"HTTP/1.1 301 Moved\r\nLocation: gopher://127.0.0.1/x\r\nContent-Length: 0\r\n\r\n",
            "could not download {url}: HTTP 301 Moved - "
            "Redirection to url 'gopher://127.0.0.1/x' is not allowed",
            "place it in",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 26\r\n\r\n<html><body>Login</body>\n\n",
            "{part} is a web page, not an archive",
            "the damaged file was deleted",
        ),
        (
            # the official name needs the official MD5
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            "checksum mismatch for {url}: MD5 5d41402abc4b2a76b9719d911017c592",
            "the damaged file was deleted",
        ),
    ],
    ids=["a redirect loop", "a redirect to another scheme", "a login page", "the wrong bytes"],
)
def test_the_command_line_gives_one_line_for_replies_that_are_http_but_wrong(
    reply, starts, contains, tmp_path
):
    base, _ = raw_server(reply)
    name = ci.ARCHIVE_NAME if b"hello" in reply else "x.tar.gz"
    url = f"{base}/{name}"
    result = command(tmp_path, "--data-url", url)
    starts = starts.format(url=url, part=tmp_path / "data" / f"{name}.part")
    assert_one_line(result, starts, contains)
    assert not list((tmp_path / "data").glob("*.tar.gz")), "nothing unverified is kept"


@pytest.mark.parametrize(
    "reply,stall_s,reason",
    [
        (b"", 0.0, "Remote end closed connection without response"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nabc",
            0.0,
            "connection closed after 3 of 1,000 bytes",
        ),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 0.0, "IncompleteRead"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nabc", 1.5, "timed out"),
        (b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n", 0.0, "HTTP 503"),
    ],
    ids=["no reply", "a cut body", "a garbled chunk", "a stall", "busy"],
)
def test_transient_faults_are_retried_then_reported_in_one_line(reply, stall_s, reason, tmp_path):
    base, requests = raw_server(reply, stall_s=stall_s)
    url = f"{base}/x.tar.gz"
    with pytest.raises(DataError) as info:
        ci.maybe_download_and_extract(tmp_path, url, **FAST)
    message = str(info.value)
    assert message.startswith(f"could not download {url} after 3 tries (") and reason in message, (
        message
    )
    assert "\n" not in message and len(requests) == 3
