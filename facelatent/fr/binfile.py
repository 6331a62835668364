"""insightface verification `.bin` files (lfw.bin, cfp_fp.bin, agedb_30.bin, calfw.bin, cplfw.bin), read and written.

Layout (insightface's `lfw2pack.py` writes it, `eval/verification.py` `load_bin` reads it): one pickle of the
2-tuple `(bins, issame_list)`, where `bins` holds 2P encoded images (JPEG or PNG bytes; pair i is bins[2i],
bins[2i + 1]) and `issame_list` P bools. Files made by Python 2 hold `str` images, which Python 3 reads as bytes
with `encoding='bytes'`; some packs hold 1-D uint8 numpy arrays of the encoded bytes instead.

The reader executes nothing: its unpickler resolves only the globals that layout can name (numpy's array
reconstruction through `pickle_safe`'s checked stand-ins, and `_codecs.encode` of a latin-1 string, which is how
protocol 2 spells bytes), refuses every other global with one line naming the file, and then checks the structure
before any image is decoded into one preallocated (2P, H, W, 3) uint8 array.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facelatent.errors import InputFileError
from facelatent.pickle_safe import (
    ALLOWED_GLOBALS,
    NDARRAY_MARKER,
    ArraySpec,
    DtypeSpec,
    RefusedGlobal,
    RestrictedUnpickler,
)
from facelatent.store import atomic_path

IMAGE_FORMATS = (".jpg", ".png")


@dataclass
class PairSet:
    """A verification set in memory: pair i is images[2i] and images[2i + 1]."""

    images: np.ndarray  # (2P, H, W, 3) uint8 RGB
    issame: np.ndarray  # (P,) bool
    folds: np.ndarray | None = None  # (P,) int fold id per pair when the source defines folds, else None
    source: str = ""

    def __post_init__(self) -> None:
        assert self.images.ndim == 4 and self.images.shape[-1] == 3 and self.images.dtype == np.uint8, (
            f"images: expected (2P, H, W, 3) uint8, got {self.images.shape} {self.images.dtype}"
        )
        assert self.images.shape[0] == 2 * len(self.issame), f"{self.images.shape[0]} images for {len(self.issame)}"
        assert self.folds is None or self.folds.shape == self.issame.shape, "one fold id per pair"

    @property
    def n_pairs(self) -> int:
        return len(self.issame)


# ---- the restricted unpickler ---------------------------------------------------------------


def _text(value: Any) -> Any:
    """Python 2 strings arrive as bytes under encoding='bytes'; numpy's names and flags are ASCII."""
    return value.decode("ascii") if isinstance(value, bytes) else value


class _Py2DtypeSpec(DtypeSpec):
    """`pickle_safe.DtypeSpec` that also accepts the bytes byte-order flag of a Python 2 pickle."""

    def __setstate__(self, state: tuple) -> None:
        super().__setstate__(tuple(_text(v) for v in state) if isinstance(state, tuple) else state)


class _Py2ArraySpec(ArraySpec):
    """`pickle_safe.ArraySpec` whose raw data may be a latin-1 string (Python 2 `str` read as text)."""

    def __setstate__(self, state: tuple) -> None:
        if isinstance(state, tuple) and len(state) == 5 and isinstance(state[4], str):
            state = (*state[:4], state[4].encode("latin1"))
        super().__setstate__(state)


def _uint8_dtype(name: Any, align: Any = False, copy: Any = True) -> _Py2DtypeSpec:
    if _text(name) not in ("u1", "uint8"):
        raise pickle.UnpicklingError(f"numpy dtype {name!r} in a .bin file (only uint8 images are allowed)")
    return _Py2DtypeSpec("u1")


def _reconstruct(cls: Any, shape: Any, typecode: Any) -> _Py2ArraySpec:
    if cls is not NDARRAY_MARKER:
        raise pickle.UnpicklingError("numpy _reconstruct of a class other than ndarray")
    return _Py2ArraySpec()


def _latin1_encode(text: Any, encoding: Any = "utf-8") -> bytes:
    """Protocol 2 writes Python 3 bytes as `_codecs.encode(str, 'latin1')`; nothing else is accepted."""
    if not isinstance(text, str) or encoding != "latin1":
        raise pickle.UnpicklingError("_codecs.encode other than of a string to latin1")
    return text.encode("latin1")


_FROMBUFFER = ALLOWED_GLOBALS[("numpy._core.numeric", "_frombuffer")]  # checks its dtype is a DtypeSpec
BIN_GLOBALS: dict[tuple[str, str], Any] = {
    ("_codecs", "encode"): _latin1_encode,
    ("numpy", "ndarray"): NDARRAY_MARKER,
    ("numpy", "dtype"): _uint8_dtype,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy._core.numeric", "_frombuffer"): _FROMBUFFER,
}


class BinUnpickler(RestrictedUnpickler):
    """`pickle_safe.RestrictedUnpickler` (BUILD on its numpy stand-ins only) with the `.bin` allow-list."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return BIN_GLOBALS[(module, name)]
        except KeyError:
            raise RefusedGlobal(module, name) from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not part of the .bin layout")


def _encoded(item: Any) -> bytes | np.ndarray | None:
    """An encoded image as unpickled (bytes, or a 1-D uint8 array's data), or None when it is neither."""
    if isinstance(item, (bytes, bytearray)):
        return bytes(item)
    if isinstance(item, ArraySpec):
        item = item.array
    if isinstance(item, np.ndarray) and item.dtype == np.uint8 and item.ndim == 1:
        return item
    return None


def load_bin_payload(path: str | Path) -> tuple[list, np.ndarray]:
    """(encoded images, issame) of a `.bin` file after the allow-list and structure checks; one-line errors."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "verification .bin file does not exist")
    try:
        with open(path, "rb") as fh:
            obj = BinUnpickler(fh, encoding="bytes").load()
    except RefusedGlobal as exc:
        raise InputFileError(
            path, f"refused global '{exc.qualname}': not part of the .bin layout (nothing was executed)"
        ) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, KeyError, IndexError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise InputFileError(path, f"not a readable .bin pickle ({type(exc).__name__}: {first})") from None
    if not (isinstance(obj, tuple) and len(obj) == 2 and all(isinstance(v, list) for v in obj)):
        raise InputFileError(
            path, f"expected a pickled (bins, issame_list) tuple of two lists, got {type(obj).__name__}"
        )
    bins, issame = obj
    if not all(isinstance(v, (bool, np.bool_)) for v in issame):
        raise InputFileError(path, "issame_list holds something other than bools")
    if len(bins) != 2 * len(issame):
        raise InputFileError(path, f"{len(bins)} images for {len(issame)} pairs (expected {2 * len(issame)})")
    encoded = [_encoded(b) for b in bins]
    bad = next((i for i, b in enumerate(encoded) if b is None), None)
    if bad is not None:
        raise InputFileError(path, f"image {bad} is a {type(bins[bad]).__name__}, not encoded bytes or uint8 data")
    return encoded, np.asarray(issame, dtype=bool)


# ---- decoding and encoding ------------------------------------------------------------------


def decode_rgb(encoded: bytes | np.ndarray) -> np.ndarray | None:
    """JPEG/PNG bytes -> (H, W, 3) uint8 RGB, or None when cv2 cannot decode them."""
    buf = np.frombuffer(encoded, dtype=np.uint8) if isinstance(encoded, bytes) else encoded
    if buf.size == 0:
        return None
    bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def resize_rgb(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) -> size (H, W): area averaging when shrinking, bilinear when enlarging."""
    if image.shape[:2] == tuple(size):
        return image
    shrink = image.shape[0] > size[0] or image.shape[1] > size[1]
    return cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def read_bin(path: str | Path, image_size: tuple[int, int] | None = None) -> PairSet:
    """A `.bin` file's pairs, decoded to RGB uint8 into one (2P, H, W, 3) array.

    `image_size` (H, W) defaults to the first image's size; images of another size are resized to it.
    Memory: the file's encoded images once, and the decoded array (each encoded image is dropped once decoded).
    """
    path = Path(path)
    encoded, issame = load_bin_payload(path)
    images: np.ndarray | None = None
    for i in range(len(encoded)):
        rgb = decode_rgb(encoded[i])
        if rgb is None:
            raise InputFileError(path, f"image {i} (pair {i // 2}) cannot be decoded as JPEG/PNG")
        if images is None:
            size = tuple(image_size) if image_size is not None else rgb.shape[:2]
            images = np.empty((len(encoded), *size, 3), dtype=np.uint8)
        images[i] = resize_rgb(rgb, images.shape[1:3])
        encoded[i] = None  # the encoded bytes are not needed once decoded
    if images is None:
        raise InputFileError(path, "the .bin file holds no pairs")
    return PairSet(images=images, issame=issame, source=str(path))


def encode_rgb(image: np.ndarray, fmt: str = ".jpg", jpeg_quality: int = 95) -> bytes:
    """(H, W, 3) uint8 RGB -> JPEG or PNG bytes."""
    assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8, f"{image.shape} {image.dtype}"
    if fmt not in IMAGE_FORMATS:
        raise ValueError(f"fmt must be one of {IMAGE_FORMATS}, got {fmt!r}")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if fmt == ".jpg" else []
    ok, buf = cv2.imencode(fmt, cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ValueError(f"cv2 could not encode a {image.shape} image as {fmt}")
    return buf.tobytes()


def write_bin(
    path: str | Path,
    images: np.ndarray | Sequence[np.ndarray],
    issame: Sequence[bool] | np.ndarray,
    fmt: str = ".jpg",
    jpeg_quality: int = 95,
    protocol: int = pickle.HIGHEST_PROTOCOL,
) -> Path:
    """Write pairs (images[2i], images[2i + 1]) as an insightface `.bin`, atomically.

    The pickle holds `(list of encoded bytes, list of bools)` with insightface's `pickle.HIGHEST_PROTOCOL`, so
    insightface's own `load_bin` reads it as well as `read_bin`.
    """
    issame_list = [bool(v) for v in np.asarray(issame, dtype=bool).ravel()]
    if len(images) != 2 * len(issame_list):
        raise ValueError(f"{len(images)} images for {len(issame_list)} pairs (expected {2 * len(issame_list)})")
    bins = [encode_rgb(np.asarray(img), fmt, jpeg_quality) for img in images]
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        pickle.dump((bins, issame_list), fh, protocol=protocol)
    return Path(path)
