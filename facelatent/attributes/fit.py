"""fit_direction on generated samples: rank them by one predicted score, read only the chosen latents, fit.

Memory stays bounded at any sample count: the scores column (8 bytes a sample) is read whole, the latents only at
the top and bottom `ratio` of the rows with a finite score, `READ_BLOCK` rows at a time. At 500,000 samples and
ratio 0.02 that is 20,000 latents: 80 MB in W (512 floats, float64) and 1.1 GB in W+ flattened (14 x 512), where
the full set would be 1 GB and 14 GB in float32 (README, Generated directions).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from facelatent.directions.svm import DirectionError, LabelRule, SVMConfig, fit_selected, flatten_latents, select_labels
from facelatent.store import open_checked, read_attrs

log = logging.getLogger(__name__)

FORMAT = "facelatent.latents"
READ_BLOCK = 8192


def read_score(path: str | Path, name: str, score: str) -> np.ndarray:
    """One predictor's scores (float64, NaN where no face was found) from the merged attributes file."""
    with open_checked(path, FORMAT) as fh:
        labels = fh.get("labels", {})
        if score not in labels:
            have = ", ".join(sorted(labels)) or "none"
            raise DirectionError(f"direction '{name}': {path} has no '{score}' scores (have: {have})")
        return labels[score][()].astype(np.float64)


def read_latent_rows(path: str | Path, rows: np.ndarray, space: str, block: int = READ_BLOCK) -> np.ndarray:
    """Flattened latents (`flatten_latents`) of increasing `rows`, as float64, read `block` file rows at a time."""
    rows = np.asarray(rows, np.int64)
    assert np.all(np.diff(rows) > 0), "rows must be strictly increasing"
    with open_checked(path, FORMAT) as fh:
        w = fh["w"]
        width = w.shape[2] if space == "w" else w.shape[1] * w.shape[2]
        out = np.zeros((len(rows), width), np.float64)
        for first in range(0, len(w), block):
            lo, hi = np.searchsorted(rows, [first, first + block])
            if hi > lo:  # read only the blocks that hold a chosen row
                out[lo:hi] = flatten_latents(w[first : first + block], space)[rows[lo:hi] - first]
    return out


def generated_rule(rule: LabelRule) -> LabelRule:
    """The continuous rule `select_labels` applies to the score column (ranked, ties broken at random)."""
    return LabelRule(column=rule.score, continuous=True, ratio=rule.ratio)


def fit_generated(name: str, path: str | Path, rule: LabelRule, cfg: SVMConfig, space: str) -> tuple[np.ndarray, dict]:
    """The unit normal of a generated direction and its metrics: SVM on the top and bottom `rule.ratio` of the
    samples with a finite `rule.score` (rows without a face left out), in `space` (W+: the flattened latent)."""
    if rule.score is None:
        raise DirectionError(f"direction '{name}': a generated direction needs label.score")
    scores = read_score(path, name, rule.score)
    finite = int(np.isfinite(scores).sum())
    idx, y = select_labels(name, pd.DataFrame({rule.score: scores}), generated_rule(rule), seed=cfg.seed)
    order = np.argsort(idx)
    idx, y = idx[order], y[order]
    X = read_latent_rows(path, idx, space)
    with open_checked(path, FORMAT) as fh:
        latent_shape = tuple(fh["w"].shape[1:])
    normal, metrics = fit_selected(name, X, y, np.arange(len(idx)), cfg, space, latent_shape)
    chosen = scores[idx]
    metrics.update(
        source="generated",
        score=rule.score,
        ratio=rule.ratio,
        n_samples=int(len(scores)),
        n_scored=finite,
        score_cut={"positive_above": float(chosen[y == 1].min()), "negative_below": float(chosen[y == 0].max())},
        generator=read_attrs(path, FORMAT)["generator"],
    )
    log.info(
        "%s: %d of %d samples have a finite %s; fitted on %d + %d",
        name,
        finite,
        len(scores),
        rule.score,
        y.sum(),
        (1 - y).sum(),
    )
    return normal, metrics
