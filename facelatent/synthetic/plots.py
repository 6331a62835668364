"""Figures and verification metrics of a synthetic run: angle histograms, stats over iterations, EER."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from facelatent.embeddings.verification import (
    MetricsConfig,
    PairBlocks,
    ScoreHistogram,
    coarse_bins,
    nearest_neighbours,
    verification_report,
)
from facelatent.figures import new_figure, save_figure
from facelatent.synthetic.files import REFERENCE_LABEL, FaceTable

log = logging.getLogger(__name__)


def angle_histograms(table: FaceTable, config: MetricsConfig | Mapping | None = None) -> dict[str, ScoreHistogram]:
    """inter: reference pairs of different identities; intra: pairs within an identity (reference and
    variations); to_reference: each variation to its own reference. Radians, in `config.bins` bins over [0, pi],
    computed in tiles of `config.block_size` (inter follows `config.impostor`, like every impostor set)."""
    config = MetricsConfig.from_dict(config)
    ids, is_ref = np.asarray(table.identity), np.asarray(table.label) == REFERENCE_LABEL
    faces = PairBlocks(table.embedding, ids, config.block_size)
    ref = faces.sorted(is_ref)
    references = PairBlocks(np.asarray(table.embedding)[is_ref], ids[is_ref], config.block_size)
    return {
        "inter": references.impostor_histogram("angle", config)[0],
        "intra": faces.genuine_histogram("angle", config.bins),
        "to_reference": faces.genuine_histogram(
            "angle", config.bins, where=lambda rows, cols: ref[rows, None] ^ ref[None, cols]
        ),
    }


def rank1_own_reference(table: FaceTable, block_size: int = MetricsConfig.block_size) -> float:
    """Share of variations whose nearest reference (by angle) is their own identity's."""
    is_ref = np.asarray(table.label) == REFERENCE_LABEL
    if is_ref.all() or not is_ref.any():
        return float("nan")
    e = np.asarray(table.embedding)
    nearest = np.asarray(table.identity)[is_ref][nearest_neighbours(e[~is_ref], e[is_ref], block_size)]
    return float(np.mean(nearest == np.asarray(table.identity)[~is_ref]))


def plot_histograms(sets: Mapping[str, ScoreHistogram], path: str | Path, lines: Mapping[str, float]) -> Path:
    fig = new_figure(7.0, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    edges, counts = coarse_bins(list(sets.values()), 40)
    style = {
        "inter": ("tab:red", "inter-class (references)"),
        "intra": ("tab:blue", "intra-class (all pairs)"),
        "to_reference": ("tab:green", "variation to its reference"),
    }
    for (name, h), c in zip(sets.items(), counts, strict=False):
        if h.n:
            color, label = style[name]
            ax.stairs(c / (h.n * np.diff(edges)), edges, fill=True, alpha=0.5, color=color, label=f"{label} (n={h.n})")
    merged: dict[float, list[str]] = {}
    for label, value in lines.items():  # one line and one label per distinct value (ICT = r0 by default)
        merged.setdefault(float(value), []).append(label)
    for value, labels in merged.items():
        ax.axvline(value, color="black", linestyle="--", linewidth=1)
        ax.text(value, ax.get_ylim()[1] * 0.95, " " + " = ".join(labels), rotation=90, va="top", fontsize=8)
    ax.set_xlabel("FR embedding angle (rad)")
    ax.set_ylabel("density")
    ax.set_title("Identity angles of the synthetic set")
    ax.legend(loc="upper left", fontsize=8)
    return save_figure(fig, path)


STAT_PANELS = (
    ("embedding angle (rad)", ("dist_min", "dist_avg", "dist_max", "ref_dist_max")),
    ("share of pairs", ("prop_ict", "prop_ref")),
    ("latent distance", ("w2wd_min", "w2wd_avg", "w2wd_max", "wavg_avg")),
    ("force norm", ("intf_max", "latf_max", "rndf_max", "totf_max")),
    ("timestep", ("timestep",)),
)


def plot_stats(groups: Mapping[str, Mapping[str, np.ndarray]], path: str | Path) -> Path:
    """One row of panels per stage (references, variations) with every statistic over iterations."""
    stages = [(name, arrays) for name, arrays in groups.items() if any(k in arrays for k in ("dist_min", "time_iter"))]
    stages = stages or [("references", {})]
    fig = new_figure(4.0 * len(STAT_PANELS), 3.2 * len(stages))
    for r, (stage, arrays) in enumerate(stages):
        for c, (title, names) in enumerate(STAT_PANELS):
            ax = fig.add_subplot(len(stages), len(STAT_PANELS), r * len(STAT_PANELS) + c + 1)
            for name in names:
                if name in arrays and np.isfinite(arrays[name]).any():
                    ax.plot(np.arange(len(arrays[name])), arrays[name], marker=".", label=name)
            if c == 0 and "time_iter" in arrays:
                ax.plot(arrays["num_candidates"], marker=".", label="candidates per identity")
            ax.set_title(f"{stage}: {title}", fontsize=9)
            ax.set_xlabel("iteration (last = final state)" if "dist_min" in arrays else "identity")
            if ax.lines:
                ax.legend(fontsize=7)
    return save_figure(fig, path)


def verification(
    table: FaceTable, sets: Mapping[str, ScoreHistogram] | None = None, config: MetricsConfig | Mapping | None = None
) -> dict:
    """EER and TAR@FAR over all faces (genuine = same identity), with the angle summaries (of `sets`, the
    `angle_histograms` of the table, computed when not given). Blockwise, as `config` says."""
    config = MetricsConfig.from_dict(config)
    try:
        report = verification_report(table.embedding, table.identity, config=config)
    except ValueError as exc:  # references only: no genuine pairs
        report = {"eer": float("nan"), "n_genuine": 0, "n_impostor": 0, "note": str(exc)}
    sets = angle_histograms(table, config) if sets is None else sets
    report["rank1_own_reference"] = rank1_own_reference(table, config.block_size)
    for name, h in sets.items():
        if h.n:
            report[f"{name}_angle"] = {"min": h.min, "mean": h.mean, "max": h.max, "n": h.n, "bin_width": h.width}
    report["num_identities"] = int(len(np.unique(table.identity)))
    report["num_faces"] = int(len(table))
    return report
