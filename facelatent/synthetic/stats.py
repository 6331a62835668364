"""Per-iteration statistics with the original `stats.h5` dataset names (ALGORITHMS.md 2.5).

Pairwise statistics are accumulated block by block (500 x 500 by default) over *all* blocks: the
original used floor(N / 500) blocks and silently dropped the remaining N mod 500 identities.
Force norms are per vector (last axis) for 2-D and 3-D force tensors alike.
Merging per-part files weights each part's averages by its number of identities (the original
took a plain mean of the parts, exact only for equal part sizes) and also merges `prop_*` and
`timestep`, which the original left unfilled.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import h5py
import numpy as np
import torch

from facelatent.embeddings.base import ANGLE_COS_FACTOR, angle, pairwise_angles
from facelatent.synthetic.forces import vector_norms

EMBEDDING_STATS = ("dist_min", "dist_avg", "dist_max", "prop_ict")
LATENT_STATS = ("w2wd_min", "w2wd_avg", "w2wd_max", "wavg_avg")
FORCE_KINDS = ("intf", "rndf", "latf", "totf")
FORCE_STATS = tuple(f"{k}_{s}" for k in FORCE_KINDS for s in ("min", "avg", "max"))
REFERENCE_STATS = ("ref_dist_min", "ref_dist_avg", "ref_dist_max", "prop_ref")  # Dispersion only (ours)
DEFAULT_BLOCK = 500


@dataclass
class PairSummary:
    """Running min / sum / max / count (and count above a threshold) of pairwise distances."""

    min: float = math.inf
    max: float = -math.inf
    total: float = 0.0
    count: int = 0
    above: int = 0

    def add(self, d: torch.Tensor, threshold: float | None) -> None:
        if d.numel() == 0:
            return
        d = d.double()
        self.min = min(self.min, float(d.min()))
        self.max = max(self.max, float(d.max()))
        self.total += float(d.sum())
        self.count += int(d.numel())
        if threshold is not None:
            self.above += int((d > threshold).sum())

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else math.nan

    @property
    def low(self) -> float:
        return self.min if self.count else math.nan

    @property
    def high(self) -> float:
        return self.max if self.count else math.nan

    @property
    def share_above(self) -> float:
        return self.above / self.count if self.count else math.nan


def pair_summary(
    x: torch.Tensor,
    distance: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    block_size: int = DEFAULT_BLOCK,
    threshold: float | None = None,
) -> PairSummary:
    """Summary over the unordered pairs i < j of the rows of x, in block_size x block_size blocks."""
    summary = PairSummary()
    n = len(x)
    starts = range(0, n, block_size)  # ceil(n / block_size) blocks: the remainder counts
    for bi in starts:
        xi = x[bi : bi + block_size]
        for bj in starts:
            if bj < bi:
                continue
            d = distance(xi, x[bj : bj + block_size])
            if bi == bj:
                rows, cols = torch.triu_indices(len(xi), len(xi), offset=1, device=d.device)
                d = d[rows, cols]
            summary.add(d.reshape(-1), threshold)
    return summary


def euclidean(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.cdist(a.double(), b.double())


def embedding_stats(e: torch.Tensor, ict: float, block_size: int = DEFAULT_BLOCK) -> dict[str, float]:
    """dist_min / avg / max over identity pairs, and prop_ict = share of pairs with angle > ict."""
    s = pair_summary(e.detach(), pairwise_angles, block_size, threshold=ict)
    return {"dist_min": s.low, "dist_avg": s.mean, "dist_max": s.high, "prop_ict": s.share_above}


def latent_stats(w: torch.Tensor, w_avg: torch.Tensor, block_size: int = DEFAULT_BLOCK) -> dict[str, float]:
    """w2wd_* over latent pairs (Euclidean), and wavg_avg = mean |w - w_avg|."""
    s = pair_summary(w.detach(), euclidean, block_size)
    wavg = (w.detach().double() - w_avg.to(w.device).double()).norm(dim=-1).mean()
    return {"w2wd_min": s.low, "w2wd_avg": s.mean, "w2wd_max": s.high, "wavg_avg": float(wavg)}


def force_stats(intf: torch.Tensor, rndf: torch.Tensor, latf: torch.Tensor, totf: torch.Tensor) -> dict[str, float]:
    """min / avg / max of per-vector norms of the interaction, random, latent and total forces."""
    out = {}
    for name, force in (("intf", intf), ("rndf", rndf), ("latf", latf), ("totf", totf)):
        norms = vector_norms(force.detach()).double()
        out.update(
            {f"{name}_min": float(norms.min()), f"{name}_avg": float(norms.mean()), f"{name}_max": float(norms.max())}
        )
    return out


def _per_group_pairs(d: torch.Tensor) -> torch.Tensor:
    """[N, A, A] distance matrices -> [N, A(A-1)/2] upper-triangle values."""
    rows, cols = torch.triu_indices(d.shape[1], d.shape[2], offset=1, device=d.device)
    return d[:, rows, cols]


def within_identity_stats(e: torch.Tensor, w: torch.Tensor, w_avg: torch.Tensor, ict: float) -> dict[str, float]:
    """Dispersion's intra-class stats: per identity over its augmentations, then min of mins, mean of means,
    max of maxes across identities (vectorised over identities). e [N, A, D], w [N, A, w_dim]."""
    out = {name: math.nan for name in EMBEDDING_STATS + LATENT_STATS}
    wavg = (w.detach().double() - w_avg.to(w.device).double()).norm(dim=-1).mean(dim=1)
    out["wavg_avg"] = float(wavg.mean())
    if e.shape[1] < 2:
        return out
    unit = e.detach().double() / e.detach().double().norm(dim=-1, keepdim=True).clamp_min(1e-12)
    theta = _per_group_pairs(torch.arccos(ANGLE_COS_FACTOR * (unit @ unit.transpose(1, 2)).clamp(-1, 1)))
    dist = _per_group_pairs(torch.cdist(w.detach().double(), w.detach().double()))
    for prefix, d in (("dist", theta), ("w2wd", dist)):
        out[f"{prefix}_min"] = float(d.min(dim=1).values.min())
        out[f"{prefix}_avg"] = float(d.mean(dim=1).mean())
        out[f"{prefix}_max"] = float(d.max(dim=1).values.max())
    out["prop_ict"] = float((theta > ict).double().mean(dim=1).mean())
    return out


def reference_stats(e: torch.Tensor, e_ref: torch.Tensor, max_angle: float) -> dict[str, float]:
    """Angles of every variation to its own reference: e [N, A, D], e_ref [N, D]."""
    theta = angle(e.detach(), e_ref.detach()[:, None, :]).double()
    return {
        "ref_dist_min": float(theta.min()),
        "ref_dist_avg": float(theta.mean()),
        "ref_dist_max": float(theta.max()),
        "prop_ref": float((theta <= max_angle).double().mean()),
    }


class StatsLog:
    """Rows of named per-iteration values; arrays come out in the original's float32 layout."""

    def __init__(self, rows: Mapping[str, Sequence[float]] | None = None):
        self.columns: dict[str, list[float]] = {k: [float(v) for v in vals] for k, vals in (rows or {}).items()}

    def __len__(self) -> int:
        return max((len(v) for v in self.columns.values()), default=0)

    def append(self, values: Mapping[str, float]) -> None:
        n = len(self)
        for key, value in values.items():
            column = self.columns.setdefault(key, [math.nan] * n)
            column.append(float(value))
        for column in self.columns.values():
            if len(column) < n + 1:
                column.append(math.nan)

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: np.asarray(v, dtype=np.float32) for k, v in self.columns.items()}


def write_stats(group: h5py.Group, arrays: Mapping[str, np.ndarray], num_identities: int) -> None:
    """Flat float32 datasets with the original names, plus the identity count used for merging."""
    for name, values in arrays.items():
        group.create_dataset(name, data=np.asarray(values, dtype=np.float32))
    group.attrs["num_identities"] = int(num_identities)


def read_stats(group: h5py.Group) -> tuple[dict[str, np.ndarray], int]:
    arrays = {k: v[()] for k, v in group.items() if isinstance(v, h5py.Dataset)}
    return arrays, int(group.attrs.get("num_identities", 1))


def merge_stats(parts: Sequence[tuple[Mapping[str, np.ndarray], int]]) -> dict[str, np.ndarray]:
    """Merge per-part stats: `_min` by minimum, `_max` by maximum, everything else by the mean weighted
    by each part's number of identities. All parts must have the same names and lengths."""
    if not parts:
        raise ValueError("merge_stats: no parts")
    names = sorted(parts[0][0])
    for arrays, _ in parts[1:]:
        if sorted(arrays) != names:
            raise ValueError(f"merge_stats: parts differ in their statistics ({sorted(arrays)} vs {names})")
    lengths = {len(np.asarray(arrays[name])) for arrays, _ in parts for name in names}
    if len(lengths) > 1:
        raise ValueError(f"merge_stats: parts differ in their number of iterations ({sorted(lengths)})")
    weights = np.array([n for _, n in parts], dtype=np.float64)
    merged = {}
    for name in names:
        stack = np.stack([np.asarray(arrays[name], np.float64) for arrays, _ in parts])
        if name.endswith("_min"):
            merged[name] = stack.min(axis=0)
        elif name.endswith("_max"):
            merged[name] = stack.max(axis=0)
        else:
            merged[name] = (stack * weights[:, None]).sum(axis=0) / weights.sum()
        merged[name] = merged[name].astype(np.float32)
    return merged
