"""DisCo = Dispersion with covariate initialisation (ALGORITHMS.md 3.2).

Each covariate vector is v_d = n_d s_d max(-neg_mean_d, pos_mean_d): the unit normal of a direction
fitted by `fit_direction` (`results/directions/{name}.npy`), its scaling s_d from the config, and the
larger of the two mean signed distances of the training latents on either side of the hyperplane
(`stats_by_side` in `{name}.json`, as synthetics' latent analysis). The initial variations get
sum_d u_d v_d with u_d ~ U(-0.5, 0.5) on top of the Gaussian noise (see dispersion.initial_variations).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from facelatent.errors import InputFileError


def w_space_normal(normal: np.ndarray, w_dim: int, path: str | Path) -> np.ndarray:
    """A [w_dim] or [num_ws, w_dim] normal as one unit W direction (a W+ normal is averaged over ws)."""
    n = np.asarray(normal, np.float64)
    if n.ndim == 2:
        n = n.mean(axis=0)
    if n.ndim != 1 or n.shape[0] != w_dim:
        raise InputFileError(path, f"direction has shape {list(np.shape(normal))}, "
                             f"expected [{w_dim}] or [num_ws, {w_dim}]")
    norm = np.linalg.norm(n)
    if not np.isfinite(norm) or norm == 0:
        raise InputFileError(path, "direction is zero or not finite")
    return n / norm


def side_magnitude(metrics: dict, path: str | Path) -> float:
    """max(-neg_mean, pos_mean) of the signed distances, split by side, from a direction's metrics JSON."""
    sides = metrics.get("stats_by_side") or {}
    try:
        neg, pos = float(sides["negative"]["mean"]), float(sides["positive"]["mean"])
    except (KeyError, TypeError, ValueError):
        raise InputFileError(path, "no stats_by_side means (a conditional or PCA direction?); "
                             "give its magnitude in the config's covariate_magnitudes") from None
    return max(-neg, pos)


def covariate_vector(normal_path: str | Path, w_dim: int, scaling: float = 1.0,
                     magnitude: float | None = None) -> np.ndarray:
    """v = n s m for one direction; m from the sibling `.json` unless given."""
    normal_path = Path(normal_path)
    if not normal_path.exists():
        raise InputFileError(normal_path, "direction file does not exist")
    n = w_space_normal(np.load(normal_path), w_dim, normal_path)
    if magnitude is None:
        metrics_path = normal_path.with_suffix(".json")
        if not metrics_path.exists():
            raise InputFileError(metrics_path, "direction metrics file does not exist")
        magnitude = side_magnitude(json.loads(metrics_path.read_text()), metrics_path)
    return n * float(scaling) * float(magnitude)


def covariate_directions(paths: dict[str, str | Path], w_dim: int, scalings: dict[str, float] | None = None,
                         magnitudes: dict[str, float] | None = None) -> torch.Tensor:
    """[K, w_dim] covariate vectors in the order of `paths` (name -> .npy)."""
    scalings, magnitudes = scalings or {}, magnitudes or {}
    rows = [covariate_vector(p, w_dim, scalings.get(name, 1.0), magnitudes.get(name)) for name, p in paths.items()]
    if not rows:
        return torch.zeros(0, w_dim)
    return torch.from_numpy(np.stack(rows)).float()
