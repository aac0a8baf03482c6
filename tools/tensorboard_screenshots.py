"""Look at TensorBoard as a student does, without a screen: `python tools/tensorboard_screenshots.py
runs [--out results/screenshots]`.

Starts TensorBoard on 127.0.0.1 (a free port) for a folder of runs, takes a screenshot of its Time
Series, Scalars, Images and HParams dashboards with headless Chromium (Debian's `chromium` package:
`apt-get install chromium`), then stops TensorBoard. Chromium gets a profile folder of its own in a
temporary folder, so nothing is written to the home folder. An instructor's check (the instructors'
guide, "Looking at TensorBoard"), not part of the test run: it needs Chromium and takes a minute.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

DASHBOARDS = ("timeseries", "scalars", "images", "hparams")
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_tensorboard(logdir: Path, port: int) -> subprocess.Popen:
    """TensorBoard serving `logdir` on 127.0.0.1:`port`; returns once it answers."""
    command = [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--reload_interval", "0"]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"error: TensorBoard did not start: {server.stderr.read().strip()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/runs", timeout=2):
                return server
        except OSError:
            time.sleep(0.5)
    server.terminate()
    raise SystemExit("error: TensorBoard did not answer within 60 s")


def screenshot(browser: str, url: str, path: Path, profile: Path, size: str) -> None:
    """One page as a PNG, after letting its scripts run for 20 s of virtual time."""
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    command += [f"--user-data-dir={profile}", f"--window-size={size}"]
    command += ["--virtual-time-budget=20000", f"--screenshot={path}", url]
    env = {**os.environ, "HOME": str(profile)}  # some Chromium builds write under $HOME anyway
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, env=env)
    if done.returncode != 0 or not path.is_file():
        raise SystemExit(f"error: {browser} made no screenshot of {url}: {done.stderr.strip()}")
    shrink(path)


def shrink(path: Path) -> None:
    """The PNG with a palette of 256 colours: a third of the size, enough for a web page."""
    from PIL import Image  # Pillow comes with matplotlib

    with Image.open(path) as image:
        small = image.convert("RGB").quantize(256)
    small.save(path, optimize=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("logdir", type=Path, help="a folder of runs (what --logdir gets)")
    parser.add_argument("--out", type=Path, default=Path("results/screenshots"))
    parser.add_argument("--size", default="1400,900", help="the window, WIDTH,HEIGHT in pixels")
    args = parser.parse_args(argv)
    browser = next((name for name in BROWSERS if shutil.which(name)), None)
    if browser is None:
        parser.error("no Chromium found: install it (apt-get install chromium), then run again")
    if not args.logdir.is_dir():
        parser.error(f"{args.logdir} is not a folder of runs")
    args.out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = start_tensorboard(args.logdir, port)
    try:
        with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
            for dashboard in DASHBOARDS:
                path = args.out / f"{dashboard}.png"
                url = f"http://127.0.0.1:{port}/#{dashboard}"
                screenshot(browser, url, path, Path(profile), args.size)
                print(f"{path}: {url}")
    finally:
        server.terminate()
        server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
