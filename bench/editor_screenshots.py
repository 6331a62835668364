"""The README's editor screenshots: `facelatent serve` on the demo results, photographed by headless Chromium.

    python bench/editor_screenshots.py --results results --config config/config.yaml --out resources/readme

Writes editor_projected.png (a projected Multi-PIE face beside its photo) and editor_slider.png (the same face
with the smile slider moved), each kept under 200 KB.
"""

from __future__ import annotations

import argparse
import io
import tempfile
from pathlib import Path

from PIL import Image
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from facelatent.editor.browser import free_port, headless_chromium, start_server, wait_for

MAX_BYTES = 200_000


def save_small(png: bytes, out: Path) -> int:
    """Write a screenshot as PNG, with a 128-colour palette if the full-colour file passes MAX_BYTES."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    image.save(out, optimize=True)
    if out.stat().st_size > MAX_BYTES:
        image.quantize(128).save(out, optimize=True)
    return out.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results")
    parser.add_argument("--config", default="config/config.yaml")
    parser.add_argument("--out", default="resources/readme")
    parser.add_argument("--face", default="latents/multipie/2")
    parser.add_argument("--direction", default="smile")
    args = parser.parse_args()
    out = Path(args.out)
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        server = start_server(Path(args.results), Path(args.config), port, Path(tmp) / "serve.log")
        driver = headless_chromium(Path(tmp) / "profile", 1180, 880)
        try:
            driver.get(f"http://127.0.0.1:{port}/?face={args.face}")
            wait_for(driver, "return document.getElementById('render').dataset.shown")
            print(
                out / "editor_projected.png", save_small(driver.get_screenshot_as_png(), out / "editor_projected.png")
            )
            driver.find_element(By.ID, f"slider-{args.direction}").send_keys(Keys.END)
            wait_for(driver, "return (document.getElementById('render').dataset.shown || '').includes('edits=')")
            print(out / "editor_slider.png", save_small(driver.get_screenshot_as_png(), out / "editor_slider.png"))
        finally:
            driver.quit()
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
