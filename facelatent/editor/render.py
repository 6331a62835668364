"""Slider state -> edited latent -> PNG, in the units of the edit grids (signed distance to each direction's
hyperplane, added: `move(..., mode="relative")`), on the layers a W+ generator's range selects."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np

from facelatent.directions.edit import layer_steps, read_direction, signed_distance
from facelatent.generators import GeneratorBase
from facelatent.grids import render_uint8


def load_directions(paths: Mapping[str, Path], num_ws: int, w_dim: int) -> dict[str, np.ndarray]:
    """{name: normal [w_dim] or [num_ws, w_dim]}, each checked against the generator's latent shape."""
    return {name: read_direction(path, num_ws, w_dim) for name, path in paths.items()}


def apply_edits(
    w: np.ndarray, directions: Mapping[str, np.ndarray], edits: Mapping[str, float], layers: tuple[int, int]
) -> np.ndarray:
    """w [num_ws, w_dim] moved by `edits[name]` units along each direction (what one unit adds to each layer:
    `layer_steps`), on layers lo..hi (inclusive) only."""
    lo, hi = layers
    out = w.astype(np.float64)
    for name, t in edits.items():
        out[lo : hi + 1] += t * layer_steps(directions[name], len(w))[lo : hi + 1]
    return out.astype(np.float32)


def distances(w: np.ndarray, directions: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Where a face starts on each direction: its signed distance, as `fit_direction` measured it."""
    return {name: float(signed_distance(w[None], d)[0]) for name, d in directions.items()}


def render_rgb(G: GeneratorBase, w: np.ndarray, noise_mode: str) -> np.ndarray:
    """One latent [num_ws, w_dim] -> RGB uint8 [R, R, 3] (the NVlabs conversion the grids use)."""
    assert w.shape == (G.num_ws, G.w_dim), f"latent {list(w.shape)} for a generator of [{G.num_ws}, {G.w_dim}]"
    return render_uint8(G, w[None], noise_mode)[0]


def png_bytes(rgb: np.ndarray) -> bytes:
    """RGB uint8 -> PNG bytes (lossless, so the browser shows exactly these pixels)."""
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    assert ok, "PNG encoding failed"
    return buf.tobytes()
