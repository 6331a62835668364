"""The generator's visible subspace: an exact Gram on a linear generator, and SVMs fitted inside it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from facelatent.directions.svm import LabelRule, SVMConfig, fit_direction
from facelatent.directions.visible import (
    VisibleConfig,
    VisibleSubspace,
    eigen_subspace,
    jacobian_gram,
    read_visible,
    write_visible,
)
from facelatent.errors import InputFileError
from facelatent.generators.base import GeneratorBase


class LinearGenerator(GeneratorBase):
    """image = a linear map of w, so the Jacobian is the matrix itself."""

    kind = "linear"

    def __init__(self, matrix: torch.Tensor, resolution: int = 4, num_ws: int = 2):
        super().__init__()
        self.z_dim = self.w_dim = matrix.shape[0]
        self.num_ws, self.img_resolution, self.img_channels = num_ws, resolution, matrix.shape[1] // resolution**2
        self.register_buffer("matrix", matrix)

    @property
    def w_avg(self) -> torch.Tensor:
        return torch.zeros(self.w_dim)

    def mapping(self, z, c=None, truncation_psi: float = 1.0, truncation_cutoff: int | None = None):
        return z[:, None, :].repeat(1, self.num_ws, 1)

    def synthesis(self, ws, noise_mode: str = "const", force_fp32: bool = False, **kwargs):
        R = self.img_resolution
        return (ws.mean(1) @ self.matrix).reshape(-1, self.img_channels, R, R)


def test_gram_of_a_linear_generator_is_exact():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((6, 3 * 16)) * np.array([3.0, 2.0, 1.0, 0.3, 0.1, 0.01])[:, None]
    G = LinearGenerator(torch.from_numpy(A).float())
    w_std = 2.0
    gram = jacobian_gram(G, w_std, VisibleConfig(samples=2, batch=5), progress=False)
    sigma = w_std / np.sqrt(6)
    np.testing.assert_allclose(gram, sigma**2 * A @ A.T / A.shape[1], rtol=1e-3, atol=1e-4)  # float32 differences
    subspace = eigen_subspace(gram)
    assert np.all(np.diff(subspace.eigenvalues) <= 0)
    np.testing.assert_allclose(subspace.basis.T @ subspace.basis, np.eye(6), atol=1e-10)


def test_gram_at_a_reduced_render_size_is_the_gram_of_the_averaged_images():
    # A linear generator at 8 px averaged to 4 px is the linear map followed by 2x2 box averaging.
    rng = np.random.default_rng(1)
    A = rng.standard_normal((5, 3 * 64))
    G = LinearGenerator(torch.from_numpy(A).float(), resolution=8)
    pooled = A.reshape(5, 3, 4, 2, 4, 2).mean(axis=(3, 5)).reshape(5, -1)
    w_std = 1.5
    gram = jacobian_gram(G, w_std, VisibleConfig(samples=2, batch=3, render_size=4), progress=False)
    np.testing.assert_allclose(gram, w_std**2 / 5 * pooled @ pooled.T / pooled.shape[1], rtol=1e-3, atol=1e-4)
    full = jacobian_gram(G, w_std, VisibleConfig(samples=2, batch=3, render_size=8), progress=False)
    np.testing.assert_allclose(full, w_std**2 / 5 * A @ A.T / A.shape[1], rtol=1e-3, atol=1e-4)


def test_rank_by_energy():
    sub = VisibleSubspace(np.array([5.0, 3.0, 1.0, 0.5, 0.5]), np.eye(5))
    assert [sub.rank(e) for e in (0.5, 0.8, 0.9, 0.95, 1.0)] == [1, 2, 3, 4, 5]
    assert sub.top(0.8).shape == (5, 2)
    with pytest.raises(ValueError, match="energy"):
        sub.rank(0.0)
    with pytest.raises(ValueError, match="visible_subspace.energy"):
        VisibleConfig(energy=1.5)


def test_file_round_trip_and_wrong_width(tmp_path):
    sub = eigen_subspace(np.diag([3.0, 2.0, 1.0]))
    path = tmp_path / "visible.h5"
    write_visible(path, sub, VisibleConfig(), {"kind": "test"})
    back = read_visible(path, w_dim=3)
    np.testing.assert_array_equal(back.eigenvalues, [3.0, 2.0, 1.0])
    with pytest.raises(InputFileError, match=r"visible\.h5.*3-D latent space, latents are 512-D"):
        read_visible(path, w_dim=512)
    assert not list(tmp_path.glob("*.partial"))


def noisy_planted(noise: float, seed: int = 0):
    """Labels planted along `a` inside a 10-D visible subspace of a 100-D latent; projection noise outside it."""
    rng = np.random.default_rng(seed)
    dim, visible, n = 100, 10, 160
    basis, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    a = basis[:, :visible] @ rng.standard_normal(visible)
    a /= np.linalg.norm(a)
    score = rng.choice([-1, 1], n) * rng.uniform(0.8, 2.0, n)
    w = rng.standard_normal((n, dim))
    w += (score - w @ a)[:, None] * a  # w . a = score exactly
    w += noise * rng.standard_normal((n, dim - visible)) @ basis[:, visible:].T
    frame = pd.DataFrame({"subject": [f"S{i % 16:02d}" for i in range(n)], "label": np.where(score > 0, "pos", "neg")})
    return w[:, None, :], frame, a, basis[:, :visible]


def test_fitting_inside_the_visible_subspace_keeps_projection_noise_out():
    w, frame, a, visible = noisy_planted(noise=3.0)
    rule, svm = LabelRule(column="label", positive=["pos"], negative=["neg"]), SVMConfig(C=0.01)
    full, _ = fit_direction("a", w, frame, rule, svm)
    inside, metrics = fit_direction("a", w, frame, rule, svm, basis=visible)
    assert float(inside @ a) > 0.95 > float(full @ a) + 0.05, (float(full @ a), float(inside @ a))
    assert abs(np.linalg.norm(inside) - 1) < 1e-6 and inside.dtype == np.float32
    assert np.linalg.norm(inside - visible @ (visible.T @ inside)) < 1e-5  # the normal lies in the subspace
    assert metrics["subspace_dims"] == 10 and metrics["cv"]["accuracy_mean"] > 0.9
    # W+: the same subspace layer by layer
    normal_plus, _ = fit_direction("a", np.repeat(w, 3, axis=1), frame, rule, svm, space="w+", basis=visible)
    assert normal_plus.shape == (3, 100)
    assert float(normal_plus.mean(0) @ a / np.linalg.norm(normal_plus.mean(0))) > 0.95
