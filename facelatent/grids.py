"""Image grids people look at: generator samples, target vs reconstruction, edit strips."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

from facelatent.generators import GeneratorBase, GeneratorSettings
from facelatent.generators.base import assert_shape
from facelatent.store import atomic_path


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[B, C, H, W] in about [-1, 1] -> [B, H, W, 3] uint8 RGB (NVlabs convention: x*127.5+128, clamp)."""
    x = (images.detach().float().cpu() * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    return x.permute(0, 2, 3, 1).numpy()


@torch.no_grad()
def render_uint8(G: GeneratorBase, ws: np.ndarray, noise_mode: str) -> np.ndarray:
    """ws [B, num_ws, w_dim] -> RGB uint8 [B, R, R, 3] (one generator call: the caller batches)."""
    batch = torch.from_numpy(np.ascontiguousarray(ws, dtype=np.float32)).to(G.w_avg.device)
    assert_shape(batch, [None, G.num_ws, G.w_dim], "ws")
    return to_uint8(G.synthesis(batch, noise_mode=noise_mode))


def seed_z(seeds: Sequence[int], z_dim: int) -> np.ndarray:
    """[len(seeds), z_dim] float64: z from `np.random.RandomState(seed)` per seed (NVlabs' seed convention)."""
    return np.stack([np.random.RandomState(s).randn(z_dim) for s in seeds])


def tile(images: np.ndarray, rows: int, cols: int, pad: int = 2, fill: int = 255) -> np.ndarray:
    """Tile [N, H, W, 3] uint8 images row-major into one image with `pad` px gutters."""
    n, h, w, c = images.shape
    assert n <= rows * cols, f"{n} images do not fit a {rows}x{cols} grid"
    canvas = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), fill, np.uint8)
    for i, img in enumerate(images):
        r, q = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + q * (w + pad)
        canvas[y : y + h, x : x + w] = img
    return canvas


def upscale(image: np.ndarray, min_side: int = 512) -> np.ndarray:
    """Nearest-neighbour upscale by an integer factor so small faces stay crisp in reports."""
    factor = max(1, int(np.ceil(min_side / max(image.shape[:2]))))
    return cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_NEAREST) if factor > 1 else image


def put_label(image: np.ndarray, text: str, xy: tuple[int, int], scale: float = 0.5) -> None:
    """Draw dark-outlined white text in place, readable on any face."""
    cv2.putText(image, text, xy, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(image, text, xy, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)


def write_png(path: str | Path, image_rgb: np.ndarray) -> Path:
    """Write an RGB uint8 image as PNG atomically."""
    with atomic_path(path, suffix=".png") as tmp:
        if not cv2.imwrite(str(tmp), np.ascontiguousarray(image_rgb[..., ::-1])):
            raise OSError(f"{path}: could not write PNG")
    return Path(path)


@torch.no_grad()
def sample_grid(
    G: GeneratorBase,
    out: str | Path,
    rows: int = 4,
    cols: int = 4,
    seed: int = 0,
    truncation_psi: float = GeneratorSettings.truncation_psi,
    seeds: Sequence[int] | None = None,
    truncation_cutoff: int | None = GeneratorSettings.truncation_cutoff,
    noise_mode: str = GeneratorSettings.noise_mode,
) -> np.ndarray:
    """Render rows*cols samples, z_i from `np.random.RandomState(seed + i)` (NVlabs' seed convention);
    the truncation and noise settings are the config's `generator:` ones."""
    seeds = list(seeds) if seeds is not None else [seed + i for i in range(rows * cols)]
    z = seed_z(seeds, G.z_dim)
    device = next(G.parameters()).device
    images = G(
        torch.from_numpy(z).float().to(device),
        truncation_psi=truncation_psi,
        truncation_cutoff=truncation_cutoff,
        noise_mode=noise_mode,
    )
    grid = upscale(tile(to_uint8(images), rows, cols))
    write_png(out, grid)
    return grid
