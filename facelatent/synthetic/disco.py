"""DisCo = Dispersion with covariate initialisation (ALGORITHMS.md 3.2).

Each covariate vector is v_d = n_d s_d max(-neg_mean_d, pos_mean_d): n_d the W step of one unit of
signed distance along a direction fitted by `fit_direction` (`results/directions/{name}.npy`; the unit
normal in W, the mean of its per-layer steps in W+, as edits move latents), its scaling s_d from the
config, and the larger of the two mean signed distances of the training latents on either side of the
hyperplane (`stats_by_side` in `{name}.json`, as synthetics' latent analysis). The initial variations
get sum_d u_d v_d with u_d ~ U(-0.5, 0.5) on top of the Gaussian noise (see dispersion.initial_variations).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from facelatent.directions.edit import layer_steps
from facelatent.errors import InputFileError


def w_space_step(normal: np.ndarray, w_dim: int, path: str | Path) -> np.ndarray:
    """[w_dim]: what one unit of the direction's signed distance adds to a W latent (every layer's w).

    A W normal [w_dim] gives its unit vector. A W+ normal [num_ws, w_dim] is a unit vector over all layers,
    so one unit of distance moves layer l by its own row (edit.layer_steps); the W step is the mean of those
    rows, e.g. n / sqrt(num_ws) for a unit n repeated on every layer (not n: the distances measured along a
    W+ normal are sqrt(num_ws) times those along n).
    """
    n = np.asarray(normal, np.float64)
    if n.ndim not in (1, 2) or n.shape[-1] != w_dim:
        raise InputFileError(
            path, f"direction has shape {list(np.shape(normal))}, expected [{w_dim}] or [num_ws, {w_dim}]"
        )
    if not np.all(np.isfinite(n)) or not np.any(n):
        raise InputFileError(path, "direction is zero or not finite")
    return layer_steps(n, 1 if n.ndim == 1 else n.shape[0]).mean(axis=0)


def side_magnitude(metrics: dict, path: str | Path) -> float:
    """max(-neg_mean, pos_mean) of the signed distances, split by side, from a direction's metrics JSON."""
    sides = metrics.get("stats_by_side") or {}
    try:
        neg, pos = float(sides["negative"]["mean"]), float(sides["positive"]["mean"])
    except (KeyError, TypeError, ValueError):
        raise InputFileError(
            path,
            "no stats_by_side means (a conditional or PCA direction?); "
            "give its magnitude in the config's covariate_magnitudes",
        ) from None
    return max(-neg, pos)


def covariate_vector(
    normal_path: str | Path, w_dim: int, scaling: float = 1.0, magnitude: float | None = None
) -> np.ndarray:
    """v = n s m for one direction (n its W step per unit distance); m from the sibling `.json` unless given."""
    normal_path = Path(normal_path)
    if not normal_path.exists():
        raise InputFileError(normal_path, "direction file does not exist")
    n = w_space_step(np.load(normal_path), w_dim, normal_path)
    if magnitude is None:
        metrics_path = normal_path.with_suffix(".json")
        if not metrics_path.exists():
            raise InputFileError(metrics_path, "direction metrics file does not exist")
        magnitude = side_magnitude(json.loads(metrics_path.read_text()), metrics_path)
    return n * float(scaling) * float(magnitude)


def covariate_directions(
    paths: dict[str, str | Path],
    w_dim: int,
    scalings: dict[str, float] | None = None,
    magnitudes: dict[str, float] | None = None,
) -> torch.Tensor:
    """[K, w_dim] covariate vectors in the order of `paths` (name -> .npy)."""
    scalings, magnitudes = scalings or {}, magnitudes or {}
    rows = [covariate_vector(p, w_dim, scalings.get(name, 1.0), magnitudes.get(name)) for name, p in paths.items()]
    if not rows:
        return torch.zeros(0, w_dim)
    return torch.from_numpy(np.stack(rows)).float()
