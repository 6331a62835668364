"""Planted labels: unit directions in the DCGAN latent space and the rules tying labels to z.

The directions lie in the generator's most visible subspace (the top eigenvectors of the mean
Jacobian Gram E[J^T J]): only there does a label change the picture, so only there can projection
recover it from pixels and an edit along it visibly move the face. Half of a random direction in
the DCGAN's z lies where a unit step changes the image by less than 1% RMS.

Every fixture image has a latent z = P(identity + noise) + D_S^+ t, where P projects out the span of
all planted directions, D_S holds the unit directions planted in that dataset (rows) and D_S^+ its
pseudo-inverse. Hence `z . d_k = t_k` exactly for every planted direction k, whatever the identity:
each label is a fixed function of the score `z . d_k`, so a linear SVM without intercept recovers it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

Z_DIM = 100
NOISE_STD = 0.1  # per-image jitter (orthogonal to the planted span)
MARGIN = (0.8, 2.0)  # |score| range of a binary label: sign(label) * U(0.8, 2.0)
AU_PRESENT = (0.25, 2.25)  # score range of a present AU (intensity 1..5 via `au_intensity`)
YAW_SCALE = 45.0  # yaw score = yaw_deg / 45
ILLUMINATION_SCORE = {
    "left": -1.2,
    "right": 1.2,
    "frontal": 0.0,
    "no_flash": 0.0,
    "left_discard": -0.6,
    "right_discard": 0.6,
}

# Mutually orthogonal directions, but smile, which leans towards happy (so "smile given happy" has work to do).
BASE_DIRECTIONS = ("yaw", "illumination", "smile", "surprise", "squint", "scream", "happy")
SMILE_TILT = ("happy", 0.5)
# AU directions: (parent direction or None, cosine with the parent); the rest is a private unit vector.
AU_DIRECTIONS = {
    "au1": ("surprise", 0.5),
    "au2": ("surprise", 0.5),
    "au4": (None, 0.0),
    "au6": ("happy", 0.5),
    "au12": ("happy", 0.6),
    "au25": ("surprise", 0.4),
}
DIRECTION_NAMES = BASE_DIRECTIONS + tuple(AU_DIRECTIONS)


def similarity_fields(image: torch.Tensor) -> torch.Tensor:
    """[4, C*H*W]: how `image` [C, H, W] changes under a small shift in x, shift in y, rotation and scaling."""
    c, h, w = image.shape
    gy, gx = torch.gradient(image, dim=(1, 2))
    y, x = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    return torch.stack([gx, gy, y * gx - x * gy, x * gx + y * gy]).reshape(4, -1)


def visible_basis(G, k: int, num_samples: int = 16, seed: int = 0, step: float = 1e-2) -> np.ndarray:
    """Orthonormal [z_dim, k]: the latent directions that most change a face's appearance.

    The top-k eigenvectors of the mean Gram of the generator's Jacobian (central finite differences,
    2 z_dim renders per sample) after removing, per sample, the part a similarity warp explains:
    face alignment undoes such warps, so a label planted there would not survive into the crops.
    """
    z = torch.from_numpy(np.random.default_rng(seed).standard_normal((num_samples, G.z_dim)).astype(np.float32))
    eye = step * torch.eye(G.z_dim)
    gram = np.zeros((G.z_dim, G.z_dim))
    with torch.no_grad():
        for zi in z:
            jac = ((G(zi + eye) - G(zi - eye)) / (2 * step)).reshape(G.z_dim, -1).double()  # [z_dim, pixels]
            warp, _ = torch.linalg.qr(similarity_fields(G(zi[None])[0]).double().T)  # [pixels, 4]
            jac = jac - (jac @ warp) @ warp.T
            gram += (jac @ jac.T).numpy() / num_samples
    eigval, eigvec = np.linalg.eigh(gram)
    return eigvec[:, np.argsort(eigval)[::-1][:k]]


def make_directions(
    rng: np.random.Generator, z_dim: int = Z_DIM, basis: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Unit directions [z_dim] float64 by name, random inside `basis` [z_dim, K] (default: all of z).

    AU directions are tilted towards their parent.
    """
    basis = np.eye(z_dim) if basis is None else np.asarray(basis, dtype=np.float64)
    assert basis.shape[0] == z_dim and basis.shape[1] >= len(DIRECTION_NAMES), f"basis: got {list(basis.shape)}"
    q, _ = np.linalg.qr(basis @ rng.standard_normal((basis.shape[1], len(DIRECTION_NAMES))))
    basis = dict(zip(DIRECTION_NAMES, q.T, strict=False))
    dirs = {name: basis[name] for name in BASE_DIRECTIONS}
    for name, (parent, cos) in {"smile": SMILE_TILT, **AU_DIRECTIONS}.items():  # parents are untilted
        v = basis[name] if parent is None else cos * dirs[parent] + np.sqrt(1 - cos**2) * basis[name]
        dirs[name] = v / np.linalg.norm(v)
    return dirs


@dataclass
class PlantedSpace:
    """The planted directions and the map from (base latent, scores) to z."""

    directions: dict[str, np.ndarray]
    _span: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        q, _ = np.linalg.qr(np.stack(list(self.directions.values()), axis=1))
        self._span = q  # [z_dim, K] orthonormal basis of the planted span

    @property
    def z_dim(self) -> int:
        return self._span.shape[0]

    def orthogonal(self, x: np.ndarray) -> np.ndarray:
        """x with its component in the planted span removed ([..., z_dim])."""
        return x - (x @ self._span) @ self._span.T

    def latents(self, base: np.ndarray, names: list[str], scores: np.ndarray) -> np.ndarray:
        """z [N, z_dim] with `z . d_k = scores[:, k]` for each named direction, base elsewhere."""
        base = np.atleast_2d(base)
        scores = np.asarray(scores, dtype=np.float64).reshape(len(base), len(names))
        d = np.stack([self.directions[n] for n in names])  # [S, z_dim]
        coef = np.linalg.solve(d @ d.T, scores.T).T  # [N, S]
        return self.orthogonal(base) + coef @ d

    def scores(self, z: np.ndarray, names: list[str]) -> np.ndarray:
        """`z . d_k` [N, len(names)]."""
        return np.atleast_2d(z) @ np.stack([self.directions[n] for n in names]).T


def binary_scores(rng: np.random.Generator, positive: np.ndarray) -> np.ndarray:
    """sign(label) * U(0.8, 2.0): positive labels score > 0.8, negative < -0.8."""
    positive = np.asarray(positive, dtype=bool)
    return np.where(positive, 1.0, -1.0) * rng.uniform(*MARGIN, size=positive.shape)


def au_scores(rng: np.random.Generator, present: np.ndarray) -> np.ndarray:
    """Present AUs score U(0.25, 2.25) (intensity 1..5), absent ones -U(0.8, 2.0)."""
    present = np.asarray(present, dtype=bool)
    return np.where(present, rng.uniform(*AU_PRESENT, size=present.shape), -rng.uniform(*MARGIN, size=present.shape))


def au_intensity(score: float) -> int:
    """-1 (absent) for score <= 0, else min(5, 1 + floor(2 * score)): monotone in z . d_au."""
    return -1 if score <= 0 else int(min(5, 1 + np.floor(2 * score)))


def yaw_score(yaw_deg: float) -> float:
    return yaw_deg / YAW_SCALE


def identity_bases(rng: np.random.Generator, n: int, z_dim: int = Z_DIM) -> np.ndarray:
    """One N(0, I) identity vector per subject [n, z_dim] (projected out of the span by `latents`)."""
    return rng.standard_normal((n, z_dim))


def jitter(rng: np.random.Generator, n: int, z_dim: int = Z_DIM) -> np.ndarray:
    """Per-image noise [n, z_dim] with std NOISE_STD."""
    return NOISE_STD * rng.standard_normal((n, z_dim))
