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

Labelled embedding sets (`pair_histograms`, `verification_report`) are never turned into an N x N matrix.
`PairBlocks` sorts the faces by label once and walks tiles of at most `block_size` x `block_size` cosine
similarities (float64, as computed before): genuine pairs identity by identity, impostor pairs either all of
them tile by tile (`metrics.impostor: exact`) or a seeded uniform sample of `metrics.impostor_sample` pairs
(`sample`). Every score is counted into a `ScoreHistogram` of `metrics.bins` equal bins over [-1, 1] (cosine) or
[0, pi] (angle) with its exact count, sum, min and max. FAR and FRR are exact at every bin edge; EER and TAR@FAR
follow the rules above evaluated at the edges, and each comes with the bound on its distance to the value the
unbinned scores give (`eer_bound`, `tar_bound`). Memory: the N x D embeddings, O(N) indices, one tile and the
histograms; the work is N^2 / 2 dot products in `exact` mode.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from facelatent.embeddings.base import ANGLE_COS_FACTOR
from facelatent.errors import ConfigError
from facelatent.figures import save_figure

DEFAULT_FARS = (1e-2, 1e-3, 1e-4)
IMPOSTOR_METHODS = ("exact", "sample")
SPACES = {"cosine": (-1.0, 1.0), "angle": (0.0, math.pi)}  # histogram ranges


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
        n_genuine=int(gen.size),
        n_impostor=int(imp.size),
        genuine_mean=float(gen.mean()),
        impostor_mean=float(imp.mean()),
        eer=eer,
        eer_threshold=eer_threshold,
        tar_at_far={f"{far:g}": asdict(tar_at_far(gen, imp, far)) for far in fars},
    )


def verification_report(
    embeddings,
    labels,
    fars: Sequence[float] = DEFAULT_FARS,
    config: MetricsConfig | Mapping | None = None,
    device: str | torch.device = "cpu",
) -> dict:
    """`histogram_summary` of all pairs of a labelled embedding set (cosine similarity scores), computed blockwise."""
    hists = pair_histograms(embeddings, labels, config, device=device)
    if hists.n_genuine == 0 or hists.n_impostor == 0:
        raise ValueError("the labelled set needs at least one genuine and one impostor pair")
    return histogram_summary(hists, fars)


def _label_score_axes(ax, thresholds: dict[str, float] | None, xlabel: str, title: str) -> None:
    """Threshold lines (finite ones only), axis labels and title of a score-density plot."""
    for label, value in (thresholds or {}).items():
        if np.isfinite(value):
            ax.axvline(value, color="black", linestyle="--", linewidth=1)
            ax.text(value, ax.get_ylim()[1] * 0.95, f" {label}", rotation=90, va="top", fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    ax.set_title(title)


def plot_score_histograms(
    genuine,
    impostor,
    path: str | Path,
    title: str = "",
    thresholds: dict[str, float] | None = None,
    bins: int = 60,
    xlabel: str = "cosine similarity",
) -> Path:
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
    _label_score_axes(ax, thresholds, xlabel, title)
    ax.legend(loc="upper left")
    fig.tight_layout()
    return save_figure(fig, path)


# ---------------------------------------------------------------------------------------------
# Blockwise pair metrics of labelled embedding sets (no N x N matrix)
# ---------------------------------------------------------------------------------------------


@dataclass
class MetricsConfig:
    """The `metrics:` config section (its defaults are the schema's)."""

    impostor: str = "exact"  # exact: every impostor pair, tile by tile; sample: `impostor_sample` random pairs
    impostor_sample: int = 10000000
    block_size: int = 2048  # rows and columns of one score tile
    bins: int = 65536  # histogram bins over [-1, 1] (cosine) or [0, pi] (angle)
    seed: int = 0  # of the impostor sample

    @classmethod
    def from_dict(cls, values: Mapping | MetricsConfig | None) -> MetricsConfig:
        if isinstance(values, MetricsConfig):
            return values
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown config key 'metrics.{unknown[0]}' (allowed here: {', '.join(sorted(known))})")
        config = cls(**values)
        if config.impostor not in IMPOSTOR_METHODS:
            raise ConfigError(
                f"config key 'metrics.impostor': '{config.impostor}' is not one of {', '.join(IMPOSTOR_METHODS)}"
            )
        for key, least in (("impostor_sample", 1), ("block_size", 1), ("bins", 2)):
            if getattr(config, key) < least:
                raise ConfigError(f"config key 'metrics.{key}': must be >= {least}")
        return config


@dataclass
class ScoreHistogram:
    """Counts of scores in equal bins over [low, high]: bin k holds low + k w <= s < low + (k + 1) w (w = `width`);
    a score below `low` counts in the first bin, one at or above `high` in the last. n, total, min, max are exact."""

    low: float
    high: float
    counts: np.ndarray  # int64 [bins]
    total: float = 0.0
    min: float = math.inf
    max: float = -math.inf

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    @property
    def width(self) -> float:
        return (self.high - self.low) / len(self.counts)

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else math.nan

    def edges(self) -> np.ndarray:
        return self.low + self.width * np.arange(len(self.counts) + 1)

    def thresholds(self) -> np.ndarray:
        """The bins + 1 thresholds at which `at_least` is exact: -inf, the inner bin edges, +inf."""
        t = self.edges()
        t[0], t[-1] = -math.inf, math.inf
        return t

    def at_least(self) -> np.ndarray:
        """[bins + 1]: how many scores are >= each of `thresholds()`."""
        return np.append(np.cumsum(self.counts[::-1])[::-1], 0)


class _Accumulator:
    """A ScoreHistogram being filled on the device (no host round trip per tile)."""

    def __init__(self, space: str, bins: int, device: str | torch.device):
        self.low, self.high = SPACES[space]
        self.space, self.bins = space, int(bins)
        self.counts = torch.zeros(self.bins, dtype=torch.int64, device=device)
        self.total = torch.zeros((), dtype=torch.float64, device=device)
        self.min = torch.full((), math.inf, dtype=torch.float64, device=device)
        self.max = torch.full((), -math.inf, dtype=torch.float64, device=device)

    def add(self, cosines: torch.Tensor) -> None:
        """Count these cosine similarities (1-D) in the accumulator's space; the tensor is overwritten."""
        if cosines.numel() == 0:
            return
        values = cosines.clamp_(-1.0, 1.0).mul_(ANGLE_COS_FACTOR).arccos_() if self.space == "angle" else cosines
        low, high = torch.aminmax(values)
        self.min = torch.minimum(self.min, low.double())
        self.max = torch.maximum(self.max, high.double())
        self.total += values.sum(dtype=torch.float64)
        # (s - low) * bins / (high - low) truncated toward zero = the floor, once clamped to [0, bins - 1]
        index = values.sub_(self.low).mul_(self.bins / (self.high - self.low)).clamp_(0, self.bins - 1)
        self.counts += torch.bincount(index.to(torch.int32), minlength=self.bins)

    def result(self) -> ScoreHistogram:
        return ScoreHistogram(
            self.low, self.high, self.counts.cpu().numpy(), float(self.total), float(self.min), float(self.max)
        )


def _unit_rows(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    x = x.to(dtype)
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)


class PairBlocks:
    """A labelled embedding set walked in tiles of at most block_size x block_size cosine similarities.

    The faces are sorted by label once (stably), so each identity is one contiguous range: its genuine pairs
    are the upper triangles of the tiles inside that range, and a tile whose column labels all sort after its
    row labels holds impostor pairs only. Memory: the embeddings as given (N x D), O(N) indices, one tile.
    Per-face arrays that a `where` filter reads must be put in this order with `sorted`.
    """

    def __init__(
        self,
        embeddings,
        labels,
        block_size: int = MetricsConfig.block_size,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float64,
    ):
        emb = torch.as_tensor(_as_numpy(embeddings))
        lab = _as_numpy(labels).ravel()
        assert emb.ndim == 2 and emb.shape[0] == lab.shape[0], f"embeddings {list(emb.shape)} vs labels {lab.shape}"
        if not math.isfinite(float(emb.sum(dtype=torch.float64))):  # NaN and inf reach the sum; no N x D copy
            raise ValueError("embeddings contain NaN or inf")
        codes = np.unique(lab, return_inverse=True)[1].ravel() if lab.size else np.zeros(0, np.int64)
        order = np.argsort(codes, kind="stable")
        self.order = None if np.array_equal(order, np.arange(len(order))) else order
        self.embeddings = (emb if self.order is None else emb[torch.from_numpy(order)]).to(device)
        self.codes_np = codes[order]
        self.codes = torch.from_numpy(self.codes_np).to(device)
        self.bounds = np.concatenate([[0], np.flatnonzero(np.diff(self.codes_np)) + 1, [len(codes)]]).astype(int)
        self.block_size, self.device, self.dtype = int(block_size), device, dtype
        sizes = np.diff(self.bounds).astype(np.int64)
        self.n_genuine = int((sizes * (sizes - 1) // 2).sum())
        self.n_impostor = len(codes) * (len(codes) - 1) // 2 - self.n_genuine

    def __len__(self) -> int:
        return len(self.codes_np)

    def sorted(self, values) -> torch.Tensor:
        """A per-face array in this object's (label-sorted) order, on its device."""
        values = np.asarray(values)
        return torch.from_numpy(values if self.order is None else values[self.order]).to(self.device)

    def rows(self, start: int, stop: int) -> torch.Tensor:
        """Unit-length rows start..stop (sorted order) in the compute dtype."""
        return _unit_rows(self.embeddings[start:stop], self.dtype)

    def _upper(self, n: int) -> torch.Tensor:
        return torch.ones(n, n, dtype=torch.bool, device=self.device).triu_(1)

    def genuine_tiles(self) -> Iterator[tuple[slice, slice, torch.Tensor, torch.Tensor | None]]:
        """(rows, cols, cosines, mask or None = all) for every same-label pair i < j, identity by identity."""
        B = self.block_size
        for g0, g1 in zip(self.bounds[:-1], self.bounds[1:], strict=True):
            for r0 in range(g0, g1 - 1, B):
                r1 = min(r0 + B, g1)
                rows = self.rows(r0, r1)
                for c0 in range(r0, g1, B):
                    c1 = min(c0 + B, g1)
                    sim = rows @ (rows if c0 == r0 else self.rows(c0, c1)).T
                    yield slice(r0, r1), slice(c0, c1), sim, self._upper(r1 - r0) if c0 == r0 else None

    def impostor_tiles(self) -> Iterator[tuple[slice, slice, torch.Tensor, torch.Tensor | None]]:
        """(rows, cols, cosines, mask or None = all) covering every different-label pair i < j once."""
        B, n = self.block_size, len(self)
        for r0 in range(0, n - 1, B):
            r1 = min(r0 + B, n)
            rows = self.rows(r0, r1)
            for c0 in range(r0, n, B):
                c1 = min(c0 + B, n)
                sim = rows @ (rows if c0 == r0 else self.rows(c0, c1)).T
                if c0 != r0 and self.codes_np[c0] > self.codes_np[r1 - 1]:
                    yield slice(r0, r1), slice(c0, c1), sim, None  # labels sorted: no shared label in this tile
                    continue
                mask = self.codes[r0:r1, None] != self.codes[None, c0:c1]
                yield slice(r0, r1), slice(c0, c1), sim, mask & self._upper(r1 - r0) if c0 == r0 else mask

    def sampled_impostor_scores(self, size: int, seed: int) -> Iterator[torch.Tensor]:
        """Cosines of `size` impostor pairs drawn uniformly with replacement (ordered pairs (i, j) uniform
        over the N^2 grid, kept when the labels differ), in chunks; the same seed gives the same pairs."""
        if self.n_impostor == 0:
            return
        rng = np.random.default_rng(seed)
        chunk = max(1024, self.block_size**2 // max(self.embeddings.shape[1], 1))
        inverse_norm = torch.cat(
            [
                1.0 / self.embeddings[r0 : r0 + chunk].to(self.dtype).norm(dim=1).clamp_min(1e-12)
                for r0 in range(0, len(self), chunk)
            ]
        )
        left = int(size)
        while left > 0:
            i, j = rng.integers(0, len(self), chunk), rng.integers(0, len(self), chunk)
            keep = np.flatnonzero(self.codes_np[i] != self.codes_np[j])[:left]
            left -= len(keep)
            if len(keep):
                i, j = (torch.from_numpy(x[keep]).to(self.device) for x in (i, j))
                a, b = (torch.index_select(self.embeddings, 0, x).to(self.dtype)[:, None, :] for x in (i, j))
                yield torch.bmm(a, b.transpose(1, 2)).view(-1) * inverse_norm[i] * inverse_norm[j]

    def genuine_histogram(
        self,
        space: str = "cosine",
        bins: int = MetricsConfig.bins,
        where: Callable[[slice, slice], torch.Tensor] | None = None,
    ) -> ScoreHistogram:
        """All genuine pairs (exact); `where(rows, cols)` may narrow them with a [rows, cols] bool mask."""
        acc = _Accumulator(space, bins, self.device)
        for rows, cols, sim, mask in self.genuine_tiles():
            if where is not None:
                mask = where(rows, cols) if mask is None else mask & where(rows, cols)
            acc.add(sim.reshape(-1) if mask is None else sim[mask])
        return acc.result()

    def impostor_histogram(
        self, space: str = "cosine", config: MetricsConfig | Mapping | None = None
    ) -> tuple[ScoreHistogram, int | None]:
        """(histogram, sample size): every impostor pair (sample size None), or `config.impostor_sample` drawn
        ones when `config.impostor` is `sample` and the set has more impostor pairs than that."""
        config = MetricsConfig.from_dict(config)
        acc = _Accumulator(space, config.bins, self.device)
        if config.impostor == "sample" and config.impostor_sample < self.n_impostor:
            for scores in self.sampled_impostor_scores(config.impostor_sample, config.seed):
                acc.add(scores)
            return acc.result(), config.impostor_sample
        for _, _, sim, mask in self.impostor_tiles():
            acc.add(sim.reshape(-1) if mask is None else sim[mask])
        return acc.result(), None


@dataclass
class PairHistograms:
    genuine: ScoreHistogram  # every genuine pair
    impostor: ScoreHistogram  # every impostor pair, or `impostor_sample` of them drawn uniformly
    n_genuine: int  # pairs in the set
    n_impostor: int
    impostor_sample: int | None  # None: exact


def pair_histograms(
    embeddings,
    labels,
    config: MetricsConfig | Mapping | None = None,
    *,
    space: str = "cosine",
    device: str | torch.device = "cpu",
) -> PairHistograms:
    """Genuine (same label) and impostor score histograms of all unordered pairs i < j, computed blockwise."""
    config = MetricsConfig.from_dict(config)
    blocks = PairBlocks(embeddings, labels, config.block_size, device)
    impostor, sample = blocks.impostor_histogram(space, config)
    return PairHistograms(
        blocks.genuine_histogram(space, config.bins), impostor, blocks.n_genuine, blocks.n_impostor, sample
    )


def _rates(genuine: ScoreHistogram, impostor: ScoreHistogram) -> tuple[np.ndarray, np.ndarray]:
    """(FAR, FRR) at every one of `thresholds()` of the two (same-binned) histograms, exact."""
    assert len(genuine.counts) == len(impostor.counts) and genuine.low == impostor.low, "histograms differ in bins"
    return impostor.at_least() / impostor.n, 1.0 - genuine.at_least() / genuine.n


def histogram_eer(genuine: ScoreHistogram, impostor: ScoreHistogram) -> tuple[float, float, float]:
    """(EER, threshold, bound): `equal_error_rate`'s rule applied at the bin edges. Between the two edges where
    FAR - FRR changes sign, this EER and the one of the unbinned scores both lie in
    [max(FAR(right), FRR(left)), min(FAR(left), FRR(right))], whose width is `bound` (at most the share of
    impostor or of genuine scores in that one bin); the threshold lies in that bin."""
    far, frr = _rates(genuine, impostor)
    t = genuine.thresholds()
    diff = far - frr  # non-increasing from +1 (-inf) to -1 (+inf)
    i = int(np.argmax(diff <= 0))
    if diff[i] == 0 or i == 0:
        return float(far[i]), float(t[i]), 0.0
    alpha = diff[i - 1] / (diff[i - 1] - diff[i])
    eer = far[i - 1] + alpha * (far[i] - far[i - 1])
    lower = t[i - 1] if np.isfinite(t[i - 1]) else genuine.low
    upper = t[i] if np.isfinite(t[i]) else genuine.high
    bound = min(far[i - 1], frr[i]) - max(far[i], frr[i - 1])
    return float(eer), float(lower + alpha * (upper - lower)), float(max(bound, 0.0))


def histogram_tar_at_far(
    genuine: ScoreHistogram, impostor: ScoreHistogram, far_target: float
) -> tuple[OperatingPoint, float]:
    """(point, bound): `tar_at_far`'s rule at the bin edges, the lowest edge whose FAR <= far_target (TAR and FAR
    there are exact). The unbinned rule's threshold lies in the bin below that edge, so its TAR is in
    [tar, tar + bound], bound = the share of genuine scores in that bin (0: both rules give the same TAR)."""
    far, _ = _rates(genuine, impostor)
    k = int(np.floor(far_target * impostor.n + 1e-9))  # impostors we may accept
    if k >= impostor.n:
        return OperatingPoint(far_target, float("-inf"), 1.0, 1.0, True), 0.0
    j = int(np.argmax(impostor.at_least() <= k))  # >= 1: every score is >= -inf
    tar = genuine.at_least()[j] / genuine.n
    point = OperatingPoint(far_target, float(genuine.thresholds()[j]), float(tar), float(far[j]), k >= 1)
    return point, float(genuine.counts[j - 1] / genuine.n)


def histogram_summary(hists: PairHistograms, fars: Sequence[float] = DEFAULT_FARS) -> dict:
    """`verification_summary`'s numbers from histograms, each with its bound against the unbinned scores; with a
    sampled impostor set also the sample size and the binomial standard error of the FAR (`*_standard_error`,
    sqrt(p (1 - p) / sample), which also bounds the EER's) and the TAR at the FARs one standard error away."""
    gen, imp = hists.genuine, hists.impostor
    eer, threshold, bound = histogram_eer(gen, imp)
    out = dict(
        n_genuine=hists.n_genuine,
        n_impostor=hists.n_impostor,
        genuine_mean=gen.mean,
        impostor_mean=imp.mean,
        eer=eer,
        eer_threshold=threshold,
        eer_bound=bound,
        bin_width=gen.width,
        impostor_method="exact" if hists.impostor_sample is None else "sample",
        tar_at_far={},
    )
    m = hists.impostor_sample
    if m is not None:
        out.update(impostor_sample=m, eer_standard_error=math.sqrt(eer * (1 - eer) / m))
    for far in fars:
        point, tar_bound = histogram_tar_at_far(gen, imp, far)
        entry = {**asdict(point), "tar_bound": tar_bound}
        if m is not None:
            se = math.sqrt(far * (1 - far) / m)
            low, high = (histogram_tar_at_far(gen, imp, f)[0].tar for f in (max(far - se, 0.0), far + se))
            entry.update(far_standard_error=se, tar_range_1se=[low, high])
        out["tar_at_far"][f"{far:g}"] = entry
    return out


def nearest_neighbours(
    queries,
    gallery,
    block_size: int = MetricsConfig.block_size,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float64,
) -> np.ndarray:
    """Index of each query row's most cosine-similar gallery row (the first on ties), in query x gallery tiles."""
    q, g = torch.as_tensor(_as_numpy(queries)).to(device), torch.as_tensor(_as_numpy(gallery)).to(device)
    assert q.ndim == g.ndim == 2 and q.shape[1] == g.shape[1] and len(g), f"{list(q.shape)} vs {list(g.shape)}"
    out = np.empty(len(q), np.int64)
    for r0 in range(0, len(q), block_size):
        rows = _unit_rows(q[r0 : r0 + block_size], dtype)
        best = torch.full((len(rows),), -math.inf, dtype=dtype, device=device)
        arg = torch.zeros(len(rows), dtype=torch.int64, device=device)
        for c0 in range(0, len(g), block_size):
            sim = rows @ _unit_rows(g[c0 : c0 + block_size], dtype).T
            top = sim.argmax(dim=1)
            value = sim.gather(1, top[:, None])[:, 0]
            better = value > best  # strict: an earlier tile wins ties
            best, arg = torch.where(better, value, best), torch.where(better, top + c0, arg)
        out[r0 : r0 + len(rows)] = arg.cpu().numpy()
    return out


def coarse_bins(hists: Sequence[ScoreHistogram], bins: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """(edges, counts per histogram) of at most `bins` wider bins over the filled range of same-binned histograms;
    each wide bin is a union of fine bins, so its counts are exact."""
    first = hists[0]
    filled = [np.flatnonzero(h.counts) for h in hists if h.n]
    if not filled:
        return np.array([first.low, first.high]), [np.zeros(1, np.int64) for _ in hists]
    lo, hi = min(f[0] for f in filled), max(f[-1] for f in filled) + 1
    step = max(1, -(-(hi - lo) // bins))
    starts = np.arange(lo, hi, step)
    edges = first.low + first.width * np.append(starts, min(starts[-1] + step, len(first.counts)))
    return edges, [np.add.reduceat(h.counts[:hi], starts) for h in hists]


def plot_pair_histograms(
    hists: PairHistograms,
    path: str | Path,
    title: str = "",
    thresholds: dict[str, float] | None = None,
    bins: int = 60,
    xlabel: str = "cosine similarity",
) -> Path:
    """`plot_score_histograms` from score histograms (the fine bins merged into about `bins`), atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0), dpi=100)
    FigureCanvasAgg(fig)  # Agg canvas without pyplot's global state
    ax = fig.add_subplot(1, 1, 1)
    edges, (imp, gen) = coarse_bins([hists.impostor, hists.genuine], bins)
    sample = "" if hists.impostor_sample is None else f" of {hists.n_impostor}"
    for counts, color, label in (
        (imp, "tab:red", f"impostor (n={hists.impostor.n}{sample})"),
        (gen, "tab:blue", f"genuine (n={hists.genuine.n})"),
    ):
        if counts.sum():
            ax.stairs(counts / (counts.sum() * np.diff(edges)), edges, fill=True, alpha=0.55, color=color, label=label)
    _label_score_axes(ax, thresholds, xlabel, title)
    if ax.patches:
        ax.legend(loc="upper left")
    fig.tight_layout()
    return save_figure(fig, path)
