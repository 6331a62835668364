"""What an edit does, measured: the scores and FR embeddings of held-out samples moved along a direction.

Inputs are arrays over strengths S, samples N and predictors P: `scores` [S, N, P] (NaN where no face was found)
and `angles` [S, N], the FR angle (degrees) of each edited image to the same sample unedited (strength 0).
- response curve of the target: mean and spread of its change from strength 0, per strength; Spearman's rho of
  that change with the strength, and the slope (change per unit strength, least squares over every finite pair);
- side effects: each predictor's slope, raw and standardized (divided by its spread over the unedited samples),
  and per unit change of the target (slope / target slope);
- identity drift: mean and spread of the FR angle per strength.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import spearmanr


def zero_index(strengths: Sequence[float]) -> int:
    """Where strength 0 (the unedited image) is; an error when it is missing."""
    hits = [i for i, s in enumerate(strengths) if s == 0]
    if not hits:
        raise ValueError(f"strengths {list(strengths)} do not include 0, the unedited image")
    return hits[0]


def score_changes(scores: np.ndarray, strengths: Sequence[float]) -> np.ndarray:
    """[S, N, P] change of every score from the same sample unedited (NaN where either has no face)."""
    assert scores.ndim == 3 and scores.shape[0] == len(strengths), f"scores {scores.shape}, {len(strengths)} strengths"
    return scores - scores[zero_index(strengths)][None]


def per_strength(values: np.ndarray) -> dict:
    """Mean, spread and count of the finite values of each row of [S, N]."""
    finite = np.isfinite(values)
    n = finite.sum(axis=1)
    safe = np.where(finite, values, 0.0)
    mean = np.where(n > 0, safe.sum(axis=1) / np.maximum(n, 1), np.nan)
    var = np.where(n > 0, (np.where(finite, values - mean[:, None], 0.0) ** 2).sum(axis=1) / np.maximum(n, 1), np.nan)
    return {"mean": mean.tolist(), "std": np.sqrt(var).tolist(), "n": n.astype(int).tolist()}


def pooled_pairs(changes: np.ndarray, strengths: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """(strength, change) of every finite entry of [S, N], flattened."""
    s = np.broadcast_to(np.asarray(strengths, np.float64)[:, None], changes.shape)
    keep = np.isfinite(changes)
    return s[keep], changes[keep]


def slope(changes: np.ndarray, strengths: Sequence[float]) -> float:
    """Least-squares change per unit strength over every finite (strength, change) pair (NaN with < 2 strengths)."""
    s, d = pooled_pairs(changes, strengths)
    if len(np.unique(s)) < 2:
        return float("nan")
    sc = s - s.mean()
    return float((sc * (d - d.mean())).sum() / (sc**2).sum())


def spearman(changes: np.ndarray, strengths: Sequence[float]) -> float:
    """Spearman's rho of the change with the strength over every finite pair (NaN when either is constant).

    The strengths repeat once per sample (ties), so even a perfect order of S equal groups gives at most
    sqrt(1 - 1/S^2): 0.990 for the default 7 strengths."""
    s, d = pooled_pairs(changes, strengths)
    if len(np.unique(s)) < 2 or len(np.unique(d)) < 2:
        return float("nan")
    return float(spearmanr(s, d).statistic)


def response_curve(changes: np.ndarray, strengths: Sequence[float]) -> dict:
    """The target's curve: per-strength mean, std and count of its change, Spearman's rho and the slope."""
    return {**per_strength(changes), "spearman": spearman(changes, strengths), "slope": slope(changes, strengths)}


def side_effects(
    scores: np.ndarray, strengths: Sequence[float], names: Sequence[str], target: str | None
) -> dict[str, dict]:
    """Per predictor: slope per unit strength, standardized slope (over its spread among the unedited samples),
    and change per unit change of the target (None without a target)."""
    changes = score_changes(scores, strengths)
    unedited = scores[zero_index(strengths)]
    slopes = {name: slope(changes[:, :, j], strengths) for j, name in enumerate(names)}
    target_slope = slopes.get(target) if target else None
    out = {}
    for j, name in enumerate(names):
        spread = float(np.nanstd(unedited[:, j])) if np.isfinite(unedited[:, j]).sum() > 1 else float("nan")
        out[name] = {
            "slope": slopes[name],
            "spread_unedited": spread,
            "standardized": slopes[name] / spread if spread > 0 else float("nan"),
            "per_target_unit": slopes[name] / target_slope if target_slope else None,
        }
    return out


def identity_drift(angles: np.ndarray) -> dict:
    """Mean and spread of the FR angle (degrees) to the unedited image, per strength."""
    return per_strength(angles)


def at_largest_strength(values: list[float], strengths: Sequence[float]) -> float:
    """Mean of a per-strength figure over the strengths of largest magnitude (both signs, e.g. -3 and +3)."""
    top = max(abs(s) for s in strengths)
    picked = [v for v, s in zip(values, strengths, strict=True) if abs(s) == top and np.isfinite(v)]
    return float(np.mean(picked)) if picked else float("nan")


def summarize(
    name: str,
    scores: np.ndarray,
    angles: np.ndarray,
    strengths: Sequence[float],
    names: Sequence[str],
    target: str | None,
) -> dict:
    """Everything evaluate_direction reports about one direction (JSON-ready: plain floats and lists)."""
    assert scores.shape[:2] == angles.shape and scores.shape[2] == len(names), f"{scores.shape} vs {angles.shape}"
    changes = score_changes(scores, strengths)
    found = np.isfinite(scores).all(axis=2).mean(axis=1)
    summary = {
        "direction": name,
        "target": target,
        "strengths": [float(s) for s in strengths],
        "n_samples": int(scores.shape[1]),
        "predictors": list(names),
        "all_scores_finite": found.tolist(),
        "response": response_curve(changes[:, :, list(names).index(target)], strengths) if target else None,
        "side_effects": side_effects(scores, strengths, names, target),
        "identity_drift_deg": identity_drift(angles),
    }
    summary["drift_at_largest_deg"] = at_largest_strength(summary["identity_drift_deg"]["mean"], strengths)
    return summary
