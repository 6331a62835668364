"""The editor in a real browser: headless Chromium (Debian's chromium + chromium-driver, driven by Selenium) against
`facelatent serve` in a child process. A slider moved with the keyboard changes the image, and the pixels the page
shows are the server-side render of that latent; the shareable URL reopens the same state; Save writes a latent
that reads back; a demo photo uploads, projects and edits. The latency from slider move to new image (median of
20 moves) is printed and written to a JSON file (`FACELATENT_EDITOR_LATENCY`, else the test's tmp folder)."""

from __future__ import annotations

import json
import os
import platform
import statistics
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO
from editor_results import make_results

from facelatent.editor.browser import CHROMIUM, headless_chromium, shown_pixels, start_server, wait_for

if not CHROMIUM.exists():
    pytest.skip(
        f"{CHROMIUM} is absent: apt-get install chromium chromium-driver (.ci/run does)", allow_module_level=True
    )
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402

from facelatent.editor.render import apply_edits, render_rgb  # noqa: E402
from facelatent.generators import load_generator  # noqa: E402
from facelatent.latents import read_latents  # noqa: E402

UPLOAD_STEPS = 30  # the upload test caps Adam (the server's --upload-steps) so it runs in seconds


@pytest.fixture(scope="module")
def made(tmp_path_factory, dcgan_path):
    return make_results(tmp_path_factory.mktemp("editor_browser"), dcgan_path)


@pytest.fixture(scope="module")
def server(made, tmp_path_factory):
    from facelatent.editor.browser import free_port

    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    proc = start_server(made["results"], made["config_path"], port, log, "--upload-steps", str(UPLOAD_STEPS))
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    browser = headless_chromium(tmp_path_factory.mktemp("chromium_profile"))
    yield browser
    browser.quit()


@pytest.fixture(scope="module")
def G(dcgan_path):
    return load_generator(dcgan_path, "cpu")


def open_page(driver, url: str) -> None:
    driver.get(url)
    wait_for(driver, "return document.body.dataset.ready === '1' && document.getElementById('render').dataset.shown")


def shown_state(driver) -> str:
    return driver.execute_script("return document.getElementById('render').dataset.shown || ''")


def wait_shown(driver, fragment: str, timeout: float = 30.0) -> str:
    """Wait until the displayed image is the render of a state whose query holds `fragment`."""
    script = "return (document.getElementById('render').dataset.shown || '').includes(arguments[0])"
    wait_for(driver, script, timeout, fragment)
    return shown_state(driver)


def test_slider_move_shows_the_server_render_of_that_latent(driver, server, made, G):
    open_page(driver, f"{server}/?face=latents/demo/1")
    before = shown_pixels(driver)
    assert np.array_equal(before, render_rgb(G, made["w"][1], "const"))
    slider = driver.find_element(By.ID, "slider-smile")
    slider.send_keys(Keys.END)  # a real key press: the range input jumps to +3 and fires its input event
    wait_shown(driver, "edits=smile%3A3.00")
    after = shown_pixels(driver)
    assert np.abs(after.astype(int) - before.astype(int)).mean() > 2, "the image did not change"
    expected = render_rgb(G, apply_edits(made["w"][1], made["directions"], {"smile": 3.0}, (0, 0)), "const")
    assert np.array_equal(after, expected)
    # the shareable URL holds face and sliders: opened afresh, it shows the same pixels
    shared = driver.find_element(By.ID, "share").get_attribute("href")
    assert "face=latents%2Fdemo%2F1" in shared and "smile%3A3.00" in shared
    open_page(driver, shared)
    assert driver.find_element(By.ID, "slider-smile").get_attribute("value") == "3"
    assert np.array_equal(shown_pixels(driver), expected)


def test_latency_from_slider_move_to_new_image(driver, server, tmp_path):
    open_page(driver, f"{server}/?face=latents/demo/0")
    slider = driver.find_element(By.ID, "slider-pca_0")
    latencies = []
    for k in range(1, 21):  # 20 moves of one step (0.1), each a key press; wait for its image each time
        slider.send_keys(Keys.ARROW_RIGHT)
        wait_shown(driver, f"edits=pca_0%3A{0.1 * k:.2f}")
        latencies.append(float(driver.execute_script("return document.getElementById('render').dataset.latencyMs")))
    median = statistics.median(latencies)
    record = {
        "median_ms": round(median, 1),
        "min_ms": round(min(latencies), 1),
        "max_ms": round(max(latencies), 1),
        "moves": len(latencies),
        "generator": "dcgan_digiface64 (the demo's), 64 px, on the CPU",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
        "load_average_1min": round(os.getloadavg()[0], 2),  # other jobs on the machine slow the render
        "browser": driver.capabilities.get("browserVersion", ""),
    }
    print(f"\neditor latency, slider move to new image: median {median:.1f} ms over 20 moves ({record})")
    out = Path(os.environ.get("FACELATENT_EDITOR_LATENCY") or tmp_path / "editor_latency.json")
    out.write_text(json.dumps(record, indent=2) + "\n")
    assert len(latencies) == 20 and all(t > 0 for t in latencies)


def test_save_writes_a_latent_that_reads_back(driver, server, made):
    open_page(driver, f"{server}/?face=synthetic/run1/2&edits=happy:-2.00")
    driver.find_element(By.ID, "save").click()
    links = wait_for(driver, "return Array.from(document.querySelectorAll('a.saved-file')).map(a => a.textContent)")
    latent = next(p for p in links if p.endswith(".h5"))
    w, _ = read_latents(made["results"] / latent)
    import h5py

    with h5py.File(made["results"] / "synthetic" / "run1" / "references.h5") as fh:
        start = fh["w"][2][None]
    assert np.array_equal(w[0], apply_edits(start, made["directions"], {"happy": -2.0}, (0, 0)))
    # the PNG link downloads what the page shows
    png_link = driver.find_element(By.CSS_SELECTOR, "a.saved-file[href$='.png']").get_attribute("href")
    assert png_link.startswith(f"{server}/files/editor/saved/")


def test_upload_a_demo_photo_and_edit_it(driver, server):
    photo = REPO / "resources" / "demo_photos" / "astronaut.png"
    if not photo.exists():
        from facelatent.fetch import fetch_demo_photo

        fetch_demo_photo(photo.name, photo)
    open_page(driver, f"{server}/?face=seed/0")
    driver.find_element(By.ID, "upload").send_keys(str(photo))
    # the progress bar and message while it projects, then the uploaded face with its aligned photo
    wait_for(driver, "return !document.getElementById('upload-progress').hidden", 60)
    wait_shown(driver, "face=upload%2F", timeout=300)
    assert "uploaded photo" in driver.find_element(By.ID, "caption").text
    assert driver.find_element(By.ID, "target-figure").is_displayed()
    unedited = shown_pixels(driver)
    driver.find_element(By.ID, "slider-smile").send_keys(Keys.HOME)
    wait_shown(driver, "smile%3A-3.00")
    edited = shown_pixels(driver)
    assert edited.shape == unedited.shape == (64, 64, 3)
    assert np.abs(edited.astype(int) - unedited.astype(int)).mean() > 2
    assert "error" not in driver.find_element(By.ID, "upload-status").get_attribute("class")
