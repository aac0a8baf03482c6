"""Downloads that go wrong in the ways http.client and urllib report badly: each gives one line
naming the URL and the problem, never a traceback, and leaves nothing half-done. The replies come
from raw servers on 127.0.0.1 (tests/helpers.py); the fault suite (tests/test_faults_http.py) serves
the same replies to the command line. Not graded."""

import pytest

import cifar10_input as ci
import mnist_input as mi
from helpers import BAD_REPLIES, raw_server
from plumbing.errors import report

FAST = {"retries": 2, "backoff_s": 0.01, "timeout_s": 5.0, "show_progress": False}


def last_line_only(capsys) -> str:
    """The error line of a command: the last line on stderr, with no traceback before it."""
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return err.strip().splitlines()[-1]


@pytest.mark.parametrize("case", BAD_REPLIES)
def test_a_reply_http_client_rejects_is_one_line_and_not_retried(case, tmp_path, capsys):
    reply, reason = BAD_REPLIES[case]
    base, requests = raw_server(reply)
    url = f"{base}/cifar-10-binary.tar.gz"
    code = report(ci.main, ["--data-dir", str(tmp_path), "--data-url", url])  # the command line
    line = last_line_only(capsys)
    assert code == 1 and line.startswith(
        f"error: could not download {url}: the reply is not valid HTTP ("
    )
    assert reason in line and "place it in" in line, line
    assert len(requests) == 1, "a server that does not speak HTTP is not asked again"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock"], "nothing half-done is left"


@pytest.mark.parametrize("case", ["a bad status line", "Content-Length: abc"])
def test_a_bad_reply_for_one_of_the_mnist_files_is_one_line(case, tmp_path):
    reply, reason = BAD_REPLIES[case]
    base, _ = raw_server(reply)
    with pytest.raises(ci.DataError) as info:
        mi.maybe_download(tmp_path, "mnist", base + "/", **FAST)
    message = str(info.value)
    assert message.startswith(
        f"could not download {base}/{mi.FILES['train'][0]}: the reply is not valid"
    )
    assert (
        reason in message and "\n" not in message and "download the four files elsewhere" in message
    )


def test_a_redirect_loop_is_one_line(tmp_path):
    base, requests = raw_server(
        b"HTTP/1.1 302 Found\r\nLocation: /loop.tar.gz\r\nContent-Length: 0\r\n\r\n"
    )
    with pytest.raises(ci.DataError) as info:
        ci.maybe_download_and_extract(tmp_path, f"{base}/loop.tar.gz", **FAST)
    message = str(info.value)
    assert message.startswith(
        f"could not download {base}/loop.tar.gz: the server redirects in a loop "
        f"(HTTP 302). Either download loop.tar.gz"
    ), message
    assert "\n" not in message and 2 <= len(requests) <= 11


def test_an_http_error_reason_is_kept_on_one_line(tmp_path):
    base, requests = raw_server(b"HTTP/1.1 403 Forbidden  by\tpolicy\r\nContent-Length: 0\r\n\r\n")
    with pytest.raises(ci.DataError) as info:
        ci.maybe_download_and_extract(tmp_path, f"{base}/x.tar.gz", **FAST)
    assert str(info.value).startswith(
        f"could not download {base}/x.tar.gz: HTTP 403 Forbidden by policy. "
    )
    assert len(requests) == 1
