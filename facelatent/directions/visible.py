"""The generator's visible subspace: the latent directions that change its images most.

The mean Gram of the generator's Jacobian, E[J^T J] over latents w = mapping(z), has eigenvectors
ordered by how much a unit step along them changes the picture (mean squared pixel change). A latent
direction outside the top few barely shows in any image, so a projection cannot recover a latent's
component there: it is whatever Adam's noise and the prior left. Fitting an SVM normal inside the
top-k eigenvectors (k carrying a share `energy` of the trace) keeps that noise out of the direction.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from facelatent.errors import InputFileError
from facelatent.figures import new_figure, save_figure
from facelatent.generators.base import GeneratorBase, assert_shape
from facelatent.store import atomic_h5, open_checked

FORMAT = "facelatent.visible_subspace"


@dataclass
class VisibleConfig:
    """The `visible_subspace` config section (see config/README.md)."""

    energy: float = 1.0  # share of E[J^T J]'s trace the kept directions carry; 1.0 = the whole latent space
    samples: int = 16  # latents the Jacobian Gram is averaged over (2 * w_dim renders each)
    step: float = 0.01  # central-difference step, in units of the per-coordinate spread of w
    seed: int = 0
    batch: int = 64  # renders per generator call
    render_size: int = 256  # renders are area-averaged to at most this size before differencing (bounds memory)

    def __post_init__(self) -> None:
        if not 0 < self.energy <= 1:
            raise ValueError(f"visible_subspace.energy must be in (0, 1], got {self.energy}")
        if self.samples < 1 or self.batch < 1 or self.step <= 0 or self.render_size < 1:
            raise ValueError("visible_subspace: samples, batch and render_size must be >= 1, step > 0")


@dataclass
class VisibleSubspace:
    eigenvalues: np.ndarray  # [w_dim] descending: mean squared pixel change ([-1, 1] scale) per unit step
    basis: np.ndarray  # [w_dim, w_dim] orthonormal columns in the same order

    def rank(self, energy: float) -> int:
        """Smallest k whose top-k eigenvalues carry `energy` of the trace."""
        if not 0 < energy <= 1:
            raise ValueError(f"energy must be in (0, 1], got {energy}")
        share = np.cumsum(self.eigenvalues) / self.eigenvalues.sum()
        return int(min(len(share), np.searchsorted(share, energy - 1e-12) + 1))

    def top(self, energy: float) -> np.ndarray:
        """[w_dim, k] basis of the directions carrying `energy` of the trace."""
        return self.basis[:, : self.rank(energy)]


def reduced_render(G: GeneratorBase, w: torch.Tensor, size: int) -> torch.Tensor:
    """Renders [B, C, size, size] of w [B, 1, w_dim] (all ws set to w), area-averaged when size < resolution.

    At 1024 px the full-size renders of one centre (2 w_dim of them) and their float64 Jacobian would take
    about 13 GB each; averaged to 256 px they take 1/16 of that, and an eigenvalue still reads as a mean
    squared pixel change (of the coarser image).
    """
    images = G.synthesis(w.repeat(1, G.num_ws, 1), noise_mode="const").float()
    if size < G.img_resolution:
        images = torch.nn.functional.interpolate(images, size=(size, size), mode="area")
    return images


@torch.no_grad()
def jacobian_gram(G: GeneratorBase, w_std: float, cfg: VisibleConfig, progress: bool = True) -> np.ndarray:
    """E[J^T J] [w_dim, w_dim] (float64) of the render (all ws set to w) per unit step of w / (w_std / sqrt(w_dim)).

    J is taken by central differences, one coordinate at a time, and scaled by the pixel count, so an
    eigenvalue is the mean squared change of a [-1, 1] pixel per unit step along its eigenvector. Renders
    larger than `cfg.render_size` are area-averaged to it first, so memory is bounded by
    2 w_dim x 3 x render_size^2 values whatever the generator's resolution.
    """
    device = G.w_avg.device
    sigma = float(w_std) / G.w_dim**0.5
    z = torch.from_numpy(np.random.RandomState(cfg.seed).randn(cfg.samples, G.z_dim).astype(np.float32)).to(device)
    centres = G.mapping(z, None)[:, :1, :].float()  # [S, 1, w_dim]
    offsets = cfg.step * sigma * torch.eye(G.w_dim, device=device)[:, None, :]  # [w_dim, 1, w_dim]
    size = min(cfg.render_size, G.img_resolution)
    gram = np.zeros((G.w_dim, G.w_dim))
    for centre in tqdm(centres, desc="visible subspace", disable=not progress, dynamic_ncols=True, mininterval=2.0):
        ws = torch.cat([centre + offsets, centre - offsets])  # [2 w_dim, 1, w_dim]
        images = torch.cat([reduced_render(G, chunk, size) for chunk in ws.split(cfg.batch)]).flatten(1)
        assert_shape(images, [2 * G.w_dim, G.img_channels * size**2], "renders")
        jac = ((images[: G.w_dim] - images[G.w_dim :]) / (2 * cfg.step)).double().cpu()  # [w_dim, pixels]
        gram += (jac @ jac.T).numpy() / (cfg.samples * jac.shape[1])
    return gram


def eigen_subspace(gram: np.ndarray) -> VisibleSubspace:
    """Eigenvalues (descending, clipped at 0) and eigenvectors of a symmetric Gram matrix."""
    eigenvalues, eigenvectors = np.linalg.eigh((gram + gram.T) / 2)
    order = np.argsort(eigenvalues)[::-1]
    return VisibleSubspace(np.clip(eigenvalues[order], 0, None), eigenvectors[:, order])


def write_visible(path: str | Path, subspace: VisibleSubspace, cfg: VisibleConfig, generator_info: dict) -> None:
    with atomic_h5(path, FORMAT, generator_info, {k: v for k, v in asdict(cfg).items() if k != "energy"}) as fh:
        fh.create_dataset("eigenvalues", data=subspace.eigenvalues)
        fh.create_dataset("basis", data=subspace.basis)


def read_visible(path: str | Path, w_dim: int | None = None) -> VisibleSubspace:
    """Read a visible-subspace file; with `w_dim`, check it belongs to latents of that width."""
    with open_checked(path, FORMAT) as fh:
        subspace = VisibleSubspace(fh["eigenvalues"][()], fh["basis"][()])
    if w_dim is not None and subspace.basis.shape[0] != w_dim:
        raise InputFileError(
            path,
            f"visible subspace of a {subspace.basis.shape[0]}-D latent space, latents are "
            f"{w_dim}-D (another generator?)",
        )
    return subspace


def to_subspace(X: np.ndarray, basis: np.ndarray, w_dim: int) -> np.ndarray:
    """Flat latents [N, L * w_dim] (L = 1 for W, num_ws for W+) -> coordinates [N, L * k], layer by layer."""
    return (X.reshape(len(X), -1, w_dim) @ basis).reshape(len(X), -1)


def from_subspace(v: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Flat coordinates [L * k] -> the flat latent-space vector [L * w_dim] they stand for."""
    return (v.reshape(-1, basis.shape[1]) @ basis.T).reshape(-1)


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
