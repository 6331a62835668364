"""The figures of the generated route: score histograms with the faces at each end, one direction's measured edit,
and the entanglement matrix over all directions."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from facelatent.figures import new_figure, save_figure
from facelatent.grids import tile


def end_rows(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the `k` lowest and `k` highest finite scores (lowest first, highest last)."""
    finite = np.flatnonzero(np.isfinite(scores))
    order = finite[np.argsort(scores[finite], kind="stable")]
    k = min(k, len(order) // 2)
    return order[:k], order[len(order) - k :]


def attributes_figure(
    scores: pd.DataFrame, ends: dict[str, tuple[np.ndarray, np.ndarray]], out_png: str | Path, bins: int = 40
) -> Path:
    """One row per predictor: the histogram of its finite scores (with the share of NaN), then the renders of its
    lowest and highest samples (`ends[name]` = (low faces, high faces), uint8 [k, R, R, 3] each)."""
    names = list(scores.columns)
    fig = new_figure(11, 1.9 * max(1, len(names)))
    axes = fig.subplots(max(1, len(names)), 2, squeeze=False, width_ratios=[1, 2.2])
    for row, name in enumerate(names):
        values = scores[name].to_numpy(np.float64)
        finite = values[np.isfinite(values)]
        ax = axes[row, 0]
        ax.hist(finite, bins=bins, color="tab:blue")
        ax.set_title(f"{name}  (no face: {np.mean(~np.isfinite(values)):.1%} of {len(values)})", fontsize=9)
        ax.tick_params(labelsize=7)
        low, high = ends[name]
        ax = axes[row, 1]
        ax.axis("off")
        if len(low):
            strip = tile(np.concatenate([low, high]), 1, len(low) + len(high))
            ax.imshow(strip)
            ax.set_title(f"lowest {len(low)}  |  highest {len(high)}", fontsize=8)
    return save_figure(fig, out_png)


def evaluation_figure(summary: dict, strip: np.ndarray | None, out_png: str | Path) -> Path:
    """Response curve of the target (mean +- std of its change), standardized side effects, identity drift, and a
    strip of held-out samples (rows) at each strength (columns)."""
    strengths = summary["strengths"]
    fig = new_figure(12, 7.5 if strip is not None else 3.6)
    grid = fig.add_gridspec(2 if strip is not None else 1, 3, height_ratios=[1, 1.3] if strip is not None else [1])
    ax = fig.add_subplot(grid[0, 0])
    response = summary["response"]
    if response is not None:
        mean, std = np.array(response["mean"]), np.array(response["std"])
        ax.errorbar(strengths, mean, yerr=std, marker="o", capsize=3)
        ax.set_title(
            f"{summary['target']}: rho {response['spearman']:+.2f}, slope {response['slope']:+.3g}/unit", fontsize=9
        )
        ax.set_ylabel(f"change of {summary['target']}")
    else:
        ax.text(0.5, 0.5, "no target attribute\n(directions.<name>.target)", ha="center", va="center")
        ax.set_axis_off()
    ax.set_xlabel("strength")
    ax = fig.add_subplot(grid[0, 1])
    effects = summary["side_effects"]
    names = list(effects)
    values = [effects[n]["standardized"] for n in names]
    colors = ["tab:red" if n == summary["target"] else "tab:gray" for n in names]
    ax.barh(names, np.nan_to_num(values), color=colors)
    ax.axvline(0, color="black", lw=0.6)
    ax.set_title("change per unit strength (in unedited spreads)", fontsize=9)
    ax.tick_params(labelsize=7)
    ax = fig.add_subplot(grid[0, 2])
    drift = summary["identity_drift_deg"]
    ax.errorbar(strengths, drift["mean"], yerr=drift["std"], marker="o", capsize=3, color="tab:green")
    top = max(abs(t) for t in strengths)
    ax.set_title(f"identity drift: {summary['drift_at_largest_deg']:.1f} deg at |strength| {top:g}", fontsize=9)
    ax.set_xlabel("strength")
    ax.set_ylabel("degrees")
    if strip is not None:
        ax = fig.add_subplot(grid[1, :])
        ax.imshow(strip)
        ax.set_axis_off()
        ax.set_title("held-out samples (rows) at strengths " + ", ".join(f"{s:+g}" for s in strengths), fontsize=9)
    fig.suptitle(f"direction {summary['direction']} ({summary['n_samples']} held-out samples)")
    return save_figure(fig, out_png)


def edit_strip(images: np.ndarray) -> np.ndarray:
    """[rows, S, R, R, 3] renders -> one tiled image, a row per sample, a column per strength."""
    rows, cols = images.shape[:2]
    return tile(images.reshape(-1, *images.shape[2:]), rows, cols)


def entanglement_figure(matrix: pd.DataFrame, out_png: str | Path, targets: Sequence[str | None]) -> Path:
    """Heatmap of directions (rows) x predictors (columns): standardized change per unit strength; each
    direction's target cell is outlined."""
    values = matrix.to_numpy(np.float64)
    limit = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 1.0
    fig = new_figure(1.2 + 0.75 * matrix.shape[1], 1.2 + 0.45 * matrix.shape[0])
    ax = fig.add_subplot()
    image = ax.imshow(values, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(range(matrix.shape[1]), matrix.columns, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(matrix.shape[0]), matrix.index, fontsize=8)
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            if np.isfinite(values[i, j]):
                ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=6)
        if targets[i] in matrix.columns:
            j = list(matrix.columns).index(targets[i])
            ax.add_patch(_outline(j, i))
    fig.colorbar(image, ax=ax, label="standardized change per unit strength")
    ax.set_title("entanglement: what each direction moves")
    return save_figure(fig, out_png)


def _outline(x: int, y: int):
    from matplotlib.patches import Rectangle

    return Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, edgecolor="black", lw=1.5)
