"""Face-verification metrics: genuine/impostor score sets, EER, TAR at fixed FAR, score histograms.

Conventions (used everywhere here):
- A score is a similarity: higher means "same identity" (cosine similarity of embeddings by default).
- A pair is accepted when `score >= threshold`. FAR(t) = share of impostor scores >= t;
  FRR(t) = share of genuine scores < t; TAR(t) = 1 - FRR(t).
- EER: FAR and FRR are evaluated at every distinct score (plus +inf); between the two neighbouring
  thresholds where FAR - FRR changes sign, the ROC is interpolated linearly, and the EER is the
  value where FAR = FRR on that segment (the threshold is interpolated the same way).
- TAR at FAR f: no interpolation. The threshold is the lowest one whose empirical FAR does not
  exceed f: with impostor scores sorted high to low and k = floor(f * N_impostor), the threshold sits
  just above the (k+1)-th highest impostor score. The achieved FAR (<= f) is reported with it. When
  f * N_impostor < 1 the target cannot be resolved from the data; the point is then FAR = 0 and
  `resolved` is False.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from facelatent.figures import save_figure

DEFAULT_FARS = (1e-2, 1e-3, 1e-4)


def _as_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _scores(x, name: str) -> np.ndarray:
    arr = _as_numpy(x).astype(np.float64).ravel()
    if arr.size == 0:
        raise ValueError(f"{name} scores are empty")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} scores contain NaN or inf")
    return arr


def pair_scores(embeddings, labels) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarities of all unordered pairs i < j, split into (genuine, impostor) by label equality."""
    emb = _as_numpy(embeddings).astype(np.float64)
    lab = _as_numpy(labels).ravel()
    assert emb.ndim == 2 and emb.shape[0] == lab.shape[0], f"embeddings {emb.shape} vs labels {lab.shape}"
    unit = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    sim = unit @ unit.T
    rows, cols = np.triu_indices(emb.shape[0], k=1)
    same = lab[rows] == lab[cols]
    values = sim[rows, cols]
    return values[same], values[~same]


def error_rates(genuine, impostor, thresholds) -> tuple[np.ndarray, np.ndarray]:
    """(FAR, FRR) at each threshold, accepting score >= threshold."""
    gen = np.sort(_scores(genuine, "genuine"))
    imp = np.sort(_scores(impostor, "impostor"))
    t = np.asarray(thresholds, dtype=np.float64)
    far = (imp.size - np.searchsorted(imp, t, side="left")) / imp.size
    frr = np.searchsorted(gen, t, side="left") / gen.size
    return far, frr


def equal_error_rate(genuine, impostor) -> tuple[float, float]:
    """(EER, threshold) with linear interpolation between the two thresholds that bracket FAR = FRR."""
    gen, imp = _scores(genuine, "genuine"), _scores(impostor, "impostor")
    thresholds = np.append(np.unique(np.concatenate([gen, imp])), np.inf)
    far, frr = error_rates(gen, imp, thresholds)
    diff = far - frr  # non-increasing from +1 (lowest threshold) to -1 (+inf)
    i = int(np.argmax(diff <= 0))
    if diff[i] == 0 or i == 0:
        return float(far[i]), float(thresholds[i])
    alpha = diff[i - 1] / (diff[i - 1] - diff[i])
    eer = far[i - 1] + alpha * (far[i] - far[i - 1])
    upper = thresholds[i] if np.isfinite(thresholds[i]) else thresholds[i - 1]
    threshold = thresholds[i - 1] + alpha * (upper - thresholds[i - 1])
    return float(eer), float(threshold)


@dataclass
class OperatingPoint:
    far_target: float
    threshold: float  # accept when score >= threshold
    tar: float
    far: float  # the empirical FAR actually achieved (<= far_target)
    resolved: bool  # False when far_target * n_impostor < 1


def tar_at_far(genuine, impostor, far_target: float) -> OperatingPoint:
    """TAR at the lowest threshold whose empirical FAR is <= far_target (no interpolation)."""
    gen, imp = _scores(genuine, "genuine"), _scores(impostor, "impostor")
    desc = np.sort(imp)[::-1]
    k = int(np.floor(far_target * imp.size + 1e-9))  # impostors we may accept
    if k >= imp.size:
        return OperatingPoint(far_target, float("-inf"), 1.0, 1.0, True)
    cut = desc[k]  # the highest impostor score that must be rejected
    threshold = float(np.nextafter(cut, np.inf))
    return OperatingPoint(far_target, threshold, float(np.mean(gen > cut)), float(np.mean(imp > cut)), k >= 1)


def verification_summary(genuine, impostor, fars: Sequence[float] = DEFAULT_FARS) -> dict:
    """Counts, score means, EER and TAR at each FAR, as plain numbers for JSON/HDF5 attributes."""
    gen, imp = _scores(genuine, "genuine"), _scores(impostor, "impostor")
    eer, eer_threshold = equal_error_rate(gen, imp)
    return dict(
        n_genuine=int(gen.size), n_impostor=int(imp.size),
        genuine_mean=float(gen.mean()), impostor_mean=float(imp.mean()),
        eer=eer, eer_threshold=eer_threshold,
        tar_at_far={f"{far:g}": asdict(tar_at_far(gen, imp, far)) for far in fars},
    )


def verification_report(embeddings, labels, fars: Sequence[float] = DEFAULT_FARS) -> dict:
    """`verification_summary` of all pairs of a labelled embedding set (cosine similarity scores)."""
    genuine, impostor = pair_scores(embeddings, labels)
    if genuine.size == 0 or impostor.size == 0:
        raise ValueError("the labelled set needs at least one genuine and one impostor pair")
    return verification_summary(genuine, impostor, fars)


def plot_score_histograms(genuine, impostor, path: str | Path, title: str = "",
                          thresholds: dict[str, float] | None = None, bins: int = 60,
                          xlabel: str = "cosine similarity") -> Path:
    """Save overlaid genuine/impostor score densities (with optional threshold lines) as a PNG, atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    gen, imp = _scores(genuine, "genuine"), _scores(impostor, "impostor")
    path = Path(path)
    fig = Figure(figsize=(6.4, 4.0), dpi=100)
    FigureCanvasAgg(fig)  # Agg canvas without pyplot's global state
    ax = fig.add_subplot(1, 1, 1)
    edges = np.histogram_bin_edges(np.concatenate([gen, imp]), bins=bins)
    ax.hist(imp, bins=edges, density=True, alpha=0.55, color="tab:red", label=f"impostor (n={imp.size})")
    ax.hist(gen, bins=edges, density=True, alpha=0.55, color="tab:blue", label=f"genuine (n={gen.size})")
    for label, value in (thresholds or {}).items():
        if np.isfinite(value):
            ax.axvline(value, color="black", linestyle="--", linewidth=1)
            ax.text(value, ax.get_ylim()[1] * 0.95, f" {label}", rotation=90, va="top", fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend(loc="upper left")
    fig.tight_layout()
    return save_figure(fig, path)
