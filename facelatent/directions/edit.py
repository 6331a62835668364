"""Latent edits along a unit direction, and the edit grids shown in the report.

Distances are signed distances to the hyperplane through the origin, measured as the direction was
fitted: for a W normal [w_dim], `w . n` of the W vector that every layer repeats (a W+ latent: its
layers' mean), so a step of t moves every layer by t n; for a W+ normal [num_ws, w_dim], the dot
product over all layers. (InterFaceGAN set absolute distances in W and added relative offsets in W+.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from facelatent.errors import InputFileError
from facelatent.generators import GeneratorBase, GeneratorSettings
from facelatent.grids import put_label, tile, to_uint8, upscale, write_png


def layer_steps(direction: np.ndarray, num_ws: int) -> np.ndarray:
    """[num_ws, w_dim]: what one unit of signed distance adds to each layer of a latent."""
    d = np.asarray(direction, np.float64)
    if d.ndim == 1:  # a W normal: every layer takes the whole unit step, as the W vector does
        return np.repeat(d[None] / np.linalg.norm(d), num_ws, axis=0)
    if d.shape[0] != num_ws:
        raise ValueError(f"direction has {d.shape[0]} ws but the latents have {num_ws}")
    return d / np.linalg.norm(d)


def read_direction(path: str | Path, num_ws: int, w_dim: int) -> np.ndarray:
    """A direction .npy checked against the latents it will move: [w_dim] or [num_ws, w_dim], finite, non-zero."""
    try:
        d = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:  # missing, truncated, not an .npy, or a pickled object
        raise InputFileError(path, f"not a readable direction .npy ({exc})") from exc
    if d.shape not in ((w_dim,), (num_ws, w_dim)):
        raise InputFileError(
            path,
            f"direction of shape {list(d.shape)} does not fit latents with num_ws={num_ws}, "
            f"w_dim={w_dim} (expected [{w_dim}] or [{num_ws}, {w_dim}])",
        )
    if not np.all(np.isfinite(d)) or not np.any(d):
        raise InputFileError(path, "direction is zero or holds NaN/inf")
    return d


def signed_distance(ws: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Signed distance of latents [N, num_ws, w_dim] to the direction's hyperplane through the origin."""
    d = np.asarray(direction, np.float64)
    if d.ndim == 1:
        return ws.astype(np.float64).mean(axis=1) @ (d / np.linalg.norm(d))
    return np.einsum("nlc,lc->n", ws.astype(np.float64), layer_steps(d, ws.shape[1]))


def move(ws: np.ndarray, direction: np.ndarray, strength: float | np.ndarray, mode: str = "relative") -> np.ndarray:
    """`relative`: move by `strength` along the direction; `absolute`: set the signed distance to `strength`."""
    step = layer_steps(direction, ws.shape[1])
    strength = np.asarray(strength, np.float64).reshape(-1, 1, 1) if np.ndim(strength) else float(strength)
    if mode == "absolute":
        strength = strength - signed_distance(ws, direction).reshape(-1, 1, 1)
    elif mode != "relative":
        raise ValueError(f"mode must be 'relative' or 'absolute', got {mode!r}")
    return (ws.astype(np.float64) + strength * step[None]).astype(np.float32)


@torch.no_grad()
def edit_grid(
    G: GeneratorBase,
    ws: np.ndarray,
    direction: np.ndarray,
    distances: list[float],
    out_png: str | Path,
    mode: str = "relative",
    row_labels: list[str] | None = None,
    title: str = "",
    noise_mode: str = GeneratorSettings.noise_mode,
) -> np.ndarray:
    """One row per source latent, one column per distance; labels drawn on the image."""
    device = G.w_avg.device
    cells = []
    for t in distances:
        moved = torch.from_numpy(move(ws, direction, t, mode)).to(device)
        cells.append(to_uint8(G.synthesis(moved, noise_mode=noise_mode)))
    images = np.stack(cells, axis=1).reshape(-1, *cells[0].shape[1:])  # row-major: source, distance
    grid = upscale(tile(images, len(ws), len(distances)), 96 * len(distances))
    title_h = 24 if title else 0  # the title gets its own line, so a long name never covers the first distance
    header = np.full((title_h + 28, grid.shape[1], 3), 255, np.uint8)
    cell_w = grid.shape[1] / len(distances)
    for j, t in enumerate(distances):
        put_label(header, f"{t:+.1f}", (int(j * cell_w + cell_w / 2 - 16), title_h + 20), 0.5)
    if title:
        put_label(header, title, (6, 18), 0.5)
    canvas = np.concatenate([header, grid], axis=0)
    if row_labels:
        cell_h = grid.shape[0] / len(ws)
        for i, label in enumerate(row_labels):
            put_label(canvas, label[:18], (4, int(header.shape[0] + i * cell_h + 16)), 0.4)
    write_png(out_png, canvas)
    return canvas
