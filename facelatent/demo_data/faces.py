"""Rendering fixture images: DCGAN faces pasted into smooth synthetic backgrounds, and file writers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from facelatent.generators.base import GeneratorBase
from facelatent.store import atomic_path, atomic_write_text

PNG_FLAGS = [cv2.IMWRITE_PNG_COMPRESSION, 3]


@dataclass(frozen=True)
class Box:
    """Square face box in pixels: top-left (x, y) and side."""

    x: int
    y: int
    size: int

    def as_str(self) -> str:
        return f"{self.x},{self.y},{self.size},{self.size}"


def render_faces(G: GeneratorBase, z: np.ndarray, batch: int = 64) -> np.ndarray:
    """uint8 RGB faces [N, R, R, 3] for latents z [N, z_dim]."""
    z = np.atleast_2d(np.asarray(z, dtype=np.float32))
    assert z.shape[1] == G.z_dim, f"z: expected [N, {G.z_dim}], got {list(z.shape)}"
    out = []
    with torch.no_grad():
        for start in range(0, len(z), batch):
            img = G(torch.from_numpy(z[start : start + batch]))
            img = ((img.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
            out.append(img.permute(0, 2, 3, 1).numpy())
    return np.concatenate(out) if out else np.zeros((0, G.img_resolution, G.img_resolution, 3), np.uint8)


def smooth_background(
    rng: np.random.Generator, height: int, width: int, channels: int, lo: int = 70, hi: int = 190, step: int = 4
) -> np.ndarray:
    """A smooth random field (bicubic upsampling of a 4x5 grid) plus a gradient, studio-like.

    Quantised to multiples of `step` grey levels so the PNGs stay small (fixture size budget).
    """
    grid = rng.uniform(lo, hi, size=(4, 5, 1)) + rng.normal(0, 12, size=(1, 1, channels))  # grey + a tint
    grid = np.clip(grid + rng.normal(0, 6, size=(4, 5, channels)), 0, 255).astype(np.float32)
    field = cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC).reshape(height, width, channels)
    field = field + np.linspace(-12, 12, width, dtype=np.float32)[None, :, None]
    return (np.clip(field, 0, 255 - step) // step * step + step // 2).astype(np.uint8)


SEAM_MARGIN = (
    0.0625  # border of replicated edge pixels around the face box, as a fraction of its side, that hides the seam
)


def seam_mask(outer: int, inner: int) -> np.ndarray:
    """[outer, outer] in 0..1: opaque over the centred inner square, a smooth ramp to 0 across the margin.

    Only the margin blends with the background, so a crop at the generator's framing holds nothing
    but generator pixels (projection can reproduce it) while the detector sees no hard paste seam.
    """
    yy, xx = np.mgrid[0:outer, 0:outer].astype(np.float32) + 0.5
    d = np.maximum(np.abs(xx - 0.5 * outer), np.abs(yy - 0.5 * outer))
    t = np.clip((0.5 * outer - d) / max(0.5 * (outer - inner), 1e-6), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def paste_face(canvas: np.ndarray, face: np.ndarray, box: Box) -> np.ndarray:
    """Blend `face` (uint8 RGB, any square size) into canvas (H,W) grey or (H,W,3) RGB at `box`, in place.

    The face fills `box` exactly; its edge, stretched over a margin of `SEAM_MARGIN` x side, fades into the canvas.
    """
    up = cv2.resize(face, (box.size, box.size), interpolation=cv2.INTER_CUBIC)
    margin = max(1, round(SEAM_MARGIN * box.size))
    up = cv2.copyMakeBorder(up, margin, margin, margin, margin, cv2.BORDER_REPLICATE)
    if canvas.ndim == 2:
        up = cv2.cvtColor(up, cv2.COLOR_RGB2GRAY)
    outer = Box(box.x - margin, box.y - margin, box.size + 2 * margin)
    mask = seam_mask(outer.size, box.size)
    h, w = canvas.shape[:2]
    x0, y0 = max(outer.x, 0), max(outer.y, 0)
    x1, y1 = min(outer.x + outer.size, w), min(outer.y + outer.size, h)
    if x1 <= x0 or y1 <= y0:
        return canvas
    sl = (slice(y0 - outer.y, y1 - outer.y), slice(x0 - outer.x, x1 - outer.x))
    m = mask[sl] if canvas.ndim == 2 else mask[sl][..., None]
    region = canvas[y0:y1, x0:x1].astype(np.float32)
    canvas[y0:y1, x0:x1] = np.clip(m * up[sl] + (1 - m) * region, 0, 255).round().astype(np.uint8)
    return canvas


def write_png(path: Path, image: np.ndarray) -> None:
    """uint8/uint16 grey or RGB array -> PNG (cv2 wants BGR)."""
    data = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    with atomic_path(path, suffix=path.suffix) as tmp:
        if not cv2.imwrite(str(tmp), data, PNG_FLAGS):
            raise OSError(f"{path}: cv2.imwrite failed")


def matlab_ascii(rows) -> str:
    """Numbers as MATLAB `save -ascii` writes them: '%16.7e' per value, one row per line, trailing newline."""
    rows = np.atleast_2d(np.asarray(rows, dtype=np.float64))
    return "".join("".join("%16.7e" % v for v in row) + "\n" for row in rows)


def write_text(path: Path, text: str) -> None:
    atomic_write_text(path, text)


def face_anchors(
    faces: np.ndarray, box_size: int = 192, grey: np.ndarray | None = None, mtcnn_weights: str | Path | None = None
) -> np.ndarray:
    """Eye centres and mouth corners [N, 4, 2] of each rendered face, as fractions of its box.

    MTCNN locates them on the clean face (upscaled, and made grey where `grey[i]`, as it will be
    pasted), so the 68-point files written for the fixtures follow each face; faces it misses get
    the mean face's anchors.
    """
    from facelatent.align.template import BOX_ANCHORS
    from facelatent.detect.mtcnn import MTCNN

    margin = box_size // 2
    canvases = []
    for i, face in enumerate(faces):
        if grey is not None and grey[i]:
            face = np.repeat(cv2.cvtColor(face, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
        canvas = np.full((box_size + 2 * margin, box_size + 2 * margin, 3), 128, np.uint8)
        canvases.append(paste_face(canvas, face, Box(margin, margin, box_size)))  # as the fixture pastes it
    out = np.repeat(BOX_ANCHORS[None], len(faces), axis=0)
    for i, found in enumerate(MTCNN(weights=mtcnn_weights).detect(canvases) if canvases else []):
        if found:
            k = max(found, key=lambda d: d["box"][2] * d["box"][3])["keypoints"]
            pts = np.array([k["left_eye"], k["right_eye"], k["mouth_left"], k["mouth_right"]], np.float64)
            out[i] = (pts - margin) / box_size
    return out
