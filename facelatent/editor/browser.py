"""Headless Chromium under Selenium (Debian's `chromium` + `chromium-driver`), for the browser test and the README
screenshots: the driver path is given, so Selenium Manager never tries to download one; and what the page shows
(pixels, render state, latency) read back from it."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# no network, no first-run UI, no background fetches: the test machine has no internet
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def headless_chromium(profile: Path, width: int = 1280, height: int = 720):
    """A Selenium Chrome driver on /usr/bin/chromium with its own throwaway profile folder."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(results: Path, config: Path, port: int, log: Path, *extra: str) -> subprocess.Popen:
    """`facelatent serve` in a child process, returned once it answers (its output goes to `log`)."""
    cmd = [sys.executable, "-m", "facelatent", "serve", "--results", str(results), "--config", str(config)]
    with open(log, "w") as out:
        proc = subprocess.Popen([*cmd, "--port", str(port), *extra], stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"facelatent serve exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/catalog", timeout=5).close()
            return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"facelatent serve did not answer within 120 s: {log.read_text()[-2000:]}")


# the <img>'s decoded pixels at its natural size, as the browser holds them
PIXELS_JS = """
const img = document.getElementById(arguments[0]);
const c = document.createElement('canvas');
c.width = img.naturalWidth; c.height = img.naturalHeight;
const ctx = c.getContext('2d');
ctx.drawImage(img, 0, 0);
return Array.from(ctx.getImageData(0, 0, c.width, c.height).data);
"""


def shown_pixels(driver, element_id: str = "render") -> np.ndarray:
    """RGB uint8 [H, W, 3] of an image on the page, read back through a canvas."""
    size = driver.execute_script(
        "const i = document.getElementById(arguments[0]); return [i.naturalHeight, i.naturalWidth];", element_id
    )
    rgba = np.asarray(driver.execute_script(PIXELS_JS, element_id), np.uint8)
    return rgba.reshape(size[0], size[1], 4)[..., :3]


def wait_for(driver, script: str, timeout: float = 30.0, *args):
    """Poll a JavaScript expression (`return ...`) until it is truthy; its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script, *args)
        if value:
            return value
        time.sleep(0.01)
    raise TimeoutError(f"page never satisfied: {script} {args}")
