"""Robust image reading: every file becomes RGB uint8, or a one-line reason why it cannot."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from facelatent.errors import InputFileError


def _wide_to_uint16(array: np.ndarray) -> np.ndarray:
    """32/64-bit integers -> uint16 without wrapping: values within 0..65535 (Pillow's mode 'I' for
    16-bit files) stay as they are; wider data is scaled from its own bit depth (a 17-bit peak is not
    crushed by the 32-bit range of its container); negatives become 0."""
    if array.size and (array.min() < 0 or array.max() > 65535):
        top = float(2 ** int(array.max()).bit_length() - 1)
        return (np.clip(array.astype(np.float64), 0, None) / top * 65535.0).round().astype(np.uint16)
    return array.astype(np.uint16)


def _to_rgb8(array: np.ndarray, bgr: bool) -> np.ndarray:
    """Any depth and channel count -> HxWx3 uint8 RGB (16-bit is scaled by 1/257, alpha dropped)."""
    if array.dtype.kind in "iu" and array.dtype.itemsize > 2:
        array = _wide_to_uint16(array)
    if array.dtype == np.uint16:
        array = (array.astype(np.float32) / 257.0).round().astype(np.uint8)
    elif array.dtype != np.uint8:
        array = np.clip(array, 0, 255).astype(np.uint8)
    if array.ndim == 2:
        return np.repeat(array[:, :, None], 3, axis=2)
    if array.shape[2] == 1:
        return np.repeat(array, 3, axis=2)
    array = array[:, :, :3]
    return np.ascontiguousarray(array[:, :, ::-1] if bgr else array)


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image as HxWx3 uint8 RGB; raise InputFileError naming the file when it is unusable."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(path, "image file does not exist")
    if path.stat().st_size == 0:
        raise InputFileError(path, "empty file (zero bytes)")
    _check_pixel_count(path)
    data = np.fromfile(path, dtype=np.uint8)
    try:
        decoded = cv2.imdecode(data, cv2.IMREAD_UNCHANGED | cv2.IMREAD_ANYDEPTH)
    except cv2.error:  # e.g. over OpenCV's own pixel limit; Pillow below gives the reason
        decoded = None
    if decoded is not None and _complete(path, data):
        return _to_rgb8(decoded, bgr=True)
    # Pillow handles CMYK and odd modes, and reports truncation that OpenCV silently pads
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("I;16", "I;16B", "I"):
                return _to_rgb8(np.asarray(img), bgr=False)
            return _to_rgb8(np.asarray(img.convert("RGB")), bgr=False)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputFileError(path, f"corrupt or truncated image ({str(exc).splitlines()[0]})") from exc


def _check_pixel_count(path: Path) -> None:
    """Reject, from the header alone, an image with more pixels than `PIL.Image.MAX_IMAGE_PIXELS`
    (a decompression bomb: a small file that decodes to gigabytes), before any decoder allocates it."""
    limit = Image.MAX_IMAGE_PIXELS
    try:
        with Image.open(path) as img:
            width, height = img.size
    except Image.DecompressionBombError as exc:
        raise InputFileError(path, f"image too large, a decompression bomb? ({str(exc).splitlines()[0]})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return  # not for Pillow's header reader: OpenCV and the fallback below decide
    if limit and width * height > limit:
        raise InputFileError(
            path,
            f"image too large, a decompression bomb? ({width}x{height} = "
            f"{width * height} pixels > PIL.Image.MAX_IMAGE_PIXELS {limit})",
        )


def _complete(path: Path, data: np.ndarray) -> bool:
    """PNG and JPEG files must end with their end marker (OpenCV decodes truncated files without error)."""
    suffix = path.suffix.lower()
    tail = data[-12:].tobytes()
    if suffix == ".png":
        return b"IEND" in tail
    if suffix in (".jpg", ".jpeg"):
        return data[-2:].tobytes() == b"\xff\xd9" or b"\xff\xd9" in tail
    return True
