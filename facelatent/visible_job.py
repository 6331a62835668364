"""The job behind rule visible_subspace: the Jacobian Gram's eigenbasis and a spectrum figure."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from facelatent.figures import new_figure, save_figure
from facelatent.generators.base import GeneratorBase
from facelatent.project import w_statistics
from facelatent.visible import VisibleConfig, VisibleSubspace, eigen_subspace, jacobian_gram, write_visible

log = logging.getLogger(__name__)


def plot_spectrum(subspace: VisibleSubspace, energy: float, path: str | Path) -> Path:
    """Eigenvalues (log scale) and their cumulative share, with the kept rank marked."""
    k = subspace.rank(energy)
    share = np.cumsum(subspace.eigenvalues) / subspace.eigenvalues.sum()
    index = np.arange(1, len(share) + 1)
    fig = new_figure(9.0, 3.4)
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    left.semilogy(index, np.clip(subspace.eigenvalues, 1e-12, None), marker=".", markersize=3)
    left.set_xlabel("eigen-direction")
    left.set_ylabel("mean squared pixel change per unit step")
    left.set_title("Spectrum of E[J^T J]", fontsize=10)
    right.plot(index, share, marker=".", markersize=3)
    right.set_xlabel("directions kept")
    right.set_ylabel("share of the image change")
    right.set_title(f"Kept: {k} of {len(share)} directions carry {share[k - 1]:.1%}", fontsize=10)
    for ax in (left, right):
        ax.axvline(k, color="black", linestyle="--", linewidth=1)
    right.axhline(energy, color="grey", linestyle=":", linewidth=1)
    return save_figure(fig, path)


def visible_subspace_job(G: GeneratorBase, cfg: VisibleConfig, w_avg_samples: int, out_h5: str | Path,
                         out_png: str | Path, generator_info: dict, progress: bool = True) -> dict:
    _, w_std = w_statistics(G, w_avg_samples, G.w_avg.device)
    subspace = eigen_subspace(jacobian_gram(G, w_std, cfg, progress=progress))
    summary = {"w_dim": int(len(subspace.eigenvalues)), "energy": cfg.energy, "rank": subspace.rank(cfg.energy),
               "rank_90": subspace.rank(0.9), "rank_99": subspace.rank(0.99),
               "top_eigenvalues": subspace.eigenvalues[:5].round(6).tolist()}
    write_visible(out_h5, subspace, cfg, generator_info)
    plot_spectrum(subspace, cfg.energy, out_png)
    log.info("visible subspace: %s", json.dumps(summary))
    return summary
