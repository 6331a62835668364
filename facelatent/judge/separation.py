"""Identity separation of a labelled embedding set: the verification machinery's cosine figures (EER, TAR@FAR,
means) plus, for dlib's descriptors, the share of pairs on the right side of a Euclidean distance threshold.

Both walk the same label-sorted tiles (`PairBlocks`), so no N x N matrix is made. Rows with NaN (faces the
embedder could not read, e.g. blank images) are dropped first and counted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from facelatent.embeddings.verification import (
    MetricsConfig,
    PairBlocks,
    PairHistograms,
    histogram_summary,
    pair_histograms,
)


@dataclass
class ThresholdShares:
    """Pairs on each side of a Euclidean distance threshold: genuine pairs closer than it, impostors not."""

    threshold: float
    genuine_below: int
    n_genuine: int
    impostor_at_or_above: int
    n_impostor: int

    def as_dict(self) -> dict:
        return dict(
            threshold=self.threshold,
            genuine_below=self.genuine_below / self.n_genuine if self.n_genuine else float("nan"),
            impostor_at_or_above=self.impostor_at_or_above / self.n_impostor if self.n_impostor else float("nan"),
            n_genuine=self.n_genuine,
            n_impostor=self.n_impostor,
        )


def finite_rows(embeddings: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(embeddings, labels, dropped): the rows without NaN or inf, and how many were dropped."""
    keep = np.isfinite(embeddings).all(axis=1)
    return embeddings[keep], np.asarray(labels)[keep], int((~keep).sum())


def _distances(sim: torch.Tensor, row_norms: torch.Tensor, col_norms: torch.Tensor) -> torch.Tensor:
    """Euclidean distances of a tile from its cosines and the rows' norms: |a - b|^2 = |a|^2 + |b|^2 - 2 |a||b| cos."""
    squared = row_norms[:, None] ** 2 + col_norms[None, :] ** 2 - 2 * row_norms[:, None] * col_norms[None, :] * sim
    return squared.clamp_min(0).sqrt()


def euclidean_threshold_shares(
    embeddings: np.ndarray, labels: np.ndarray, threshold: float, block_size: int = MetricsConfig.block_size
) -> ThresholdShares:
    """Every genuine pair (same label) with distance < threshold and every impostor pair with distance >= threshold,
    counted tile by tile (exact, all pairs i < j)."""
    blocks = PairBlocks(embeddings, labels, block_size)
    norms = blocks.sorted(np.linalg.norm(np.asarray(embeddings, np.float64), axis=1))
    genuine = impostor = 0
    for rows, cols, sim, mask in blocks.genuine_tiles():
        close = _distances(sim, norms[rows], norms[cols]) < threshold
        genuine += int((close if mask is None else close & mask).sum())
    for rows, cols, sim, mask in blocks.impostor_tiles():
        far = _distances(sim, norms[rows], norms[cols]) >= threshold
        impostor += int((far if mask is None else far & mask).sum())
    return ThresholdShares(float(threshold), genuine, blocks.n_genuine, impostor, blocks.n_impostor)


def separation(
    embeddings: np.ndarray,
    labels: np.ndarray,
    metrics_config: MetricsConfig | Mapping | None = None,
    distance_threshold: float | None = None,
) -> tuple[dict, PairHistograms]:
    """(summary, histograms) of genuine = same label vs impostor = different label: `histogram_summary`'s cosine
    figures, the rows dropped for NaN, and with `distance_threshold` the shares on its right side."""
    config = MetricsConfig.from_dict(metrics_config)
    emb, lab, dropped = finite_rows(np.asarray(embeddings, np.float32), labels)
    hists = pair_histograms(emb, lab, config)
    if hists.n_genuine == 0 or hists.n_impostor == 0:
        raise ValueError("the set needs at least one genuine and one impostor pair after dropping NaN rows")
    summary = {"num_faces": len(lab), "num_identities": len(np.unique(lab)), "dropped_nan_rows": dropped}
    summary.update(histogram_summary(hists))
    if distance_threshold is not None:
        shares = euclidean_threshold_shares(emb, lab, distance_threshold, config.block_size)
        summary["euclidean_threshold"] = shares.as_dict()
    return summary, hists
