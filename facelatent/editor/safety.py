"""What the editor accepts from a request: files under the results folder only, faces named by an allow-listed
spec, slider states of known directions, and uploads within a size and pixel budget."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from facelatent.errors import FaceLatentError

# a name the catalog lists (a dataset, a run, a direction): never a path, never a dot-dot
NAME = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}"
FACE_SPEC = re.compile(rf"^(?:(latents|synthetic)/({NAME})/(\d{{1,9}})|(seed)/(\d{{1,9}})|(upload)/([0-9a-f]{{16}}))$")
EDIT_ITEM = re.compile(rf"^({NAME}):(-?\d+(?:\.\d+)?)$")
LAYERS = re.compile(r"^(\d{1,3})-(\d{1,3})$")


class RequestError(FaceLatentError):
    """A request the editor refuses; `status` is the HTTP status it answers with."""

    def __init__(self, message: str, status: int = 400):
        self.status = status
        super().__init__(message)


@dataclass(frozen=True)
class FaceSpec:
    """Where a face comes from: `latents/<file>/<row>`, `synthetic/<run>/<identity>`, `seed/<n>`, `upload/<token>`."""

    source: str
    name: str
    index: int

    def __str__(self) -> str:
        if self.source == "seed":
            return f"seed/{self.index}"
        if self.source == "upload":
            return f"upload/{self.name}"
        return f"{self.source}/{self.name}/{self.index}"


def parse_face(text: str) -> FaceSpec:
    """A face spec from a query parameter; anything else (a path, `..`, an encoded slash) is a 400."""
    m = FACE_SPEC.match(text or "")
    if not m:
        raise RequestError(f"bad face {text[:80]!r}: expected latents/<name>/<row>, synthetic/<run>/<id>, seed/<n>")
    if m[1]:
        return FaceSpec(m[1], m[2], int(m[3]))
    if m[4]:
        return FaceSpec("seed", "", int(m[5]))
    return FaceSpec("upload", m[7], 0)


def parse_edits(text: str, known: set[str], limit: float) -> dict[str, float]:
    """`name:value,name:value` -> {direction: signed distance}; unknown names and values past `limit` are a 400."""
    edits: dict[str, float] = {}
    for item in filter(None, (text or "").split(",")):
        m = EDIT_ITEM.match(item)
        if not m:
            raise RequestError(f"bad edit {item[:80]!r}: expected <direction>:<distance>")
        if m[1] not in known:
            raise RequestError(f"unknown direction {m[1]!r}", 404)
        value = float(m[2])
        if abs(value) > limit:
            raise RequestError(f"edit {m[1]} = {value} is beyond the slider range (+-{limit})")
        edits[m[1]] = value
    return edits


def parse_layers(text: str | None, num_ws: int) -> tuple[int, int]:
    """`lo-hi` (inclusive) within the generator's ws; empty means all of them."""
    if not text:
        return 0, num_ws - 1
    m = LAYERS.match(text)
    if not m or not int(m[1]) <= int(m[2]) < num_ws:
        raise RequestError(f"bad layer range {text[:20]!r}: expected lo-hi with 0 <= lo <= hi < {num_ws}")
    return int(m[1]), int(m[2])


def inside(root: Path, path: Path) -> bool:
    """True when `path`, with every symlink resolved, lies under `root` (itself resolved)."""
    try:
        return path.resolve(strict=True).is_relative_to(root.resolve(strict=True))
    except (OSError, RuntimeError):  # missing, or a symlink loop
        return False


def file_under(root: Path, relative: str) -> Path:
    """The regular file `relative` names under `root`; absolute paths, `..` and links leading out are a 404."""
    parts = Path(relative).parts
    if not relative or Path(relative).is_absolute() or ".." in parts or "\\" in relative or "\x00" in relative:
        raise RequestError(f"no such file under the results folder: {relative[:80]!r}", 404)
    path = root / relative
    if not inside(root, path) or not path.is_file():
        raise RequestError(f"no such file under the results folder: {relative[:80]!r}", 404)
    return path.resolve()


@dataclass(frozen=True)
class UploadLimits:
    """Caps on an uploaded photo: its bytes, and its width and height before any decoding."""

    max_bytes: int = 10 * 1024 * 1024
    max_side: int = 4096


def decode_upload(data: bytes, limits: UploadLimits) -> np.ndarray:
    """Uploaded bytes -> RGB uint8 HxWx3; too many bytes (413), too many pixels (413) or not an image (415)."""
    if len(data) > limits.max_bytes:
        raise RequestError(f"upload of {len(data)} bytes is over the {limits.max_bytes} byte limit", 413)
    if not data:
        raise RequestError("empty upload: choose a photo", 415)
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size  # the header alone: nothing is decoded yet
            if max(width, height) > limits.max_side:
                raise RequestError(f"photo is {width}x{height}; the limit is {limits.max_side} px a side", 413)
            img.load()
            rgb = np.asarray(img.convert("RGB"))
    except UnidentifiedImageError:
        raise RequestError("not an image: upload a photo (JPEG, PNG, WebP, ...)", 415) from None
    except (Image.DecompressionBombError, OSError, SyntaxError, ValueError) as exc:
        raise RequestError(f"not an image the editor can read ({str(exc).splitlines()[0][:120]})", 415) from None
    return np.ascontiguousarray(rgb, dtype=np.uint8)
