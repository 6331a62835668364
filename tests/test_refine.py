"""Levenberg-Marquardt refinement: the warp, the batched CG solver, known latents and warps recovered, resumable."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facelatent.generators import load_generator
from facelatent.generators.statistics import w_statistics
from facelatent.projection.project import project, psnr, render
from facelatent.projection.refine import RefineConfig, RefineState, conjugate_gradient, refine, similarity_warp


@pytest.fixture(scope="module")
def G(dcgan_path):
    G = load_generator(dcgan_path)
    for p in G.parameters():
        p.requires_grad_(False)
    return G


@pytest.fixture(scope="module")
def w_stats(G):
    return w_statistics(G, 1000, torch.device("cpu"))


def test_zero_warp_is_the_identity_and_a_shift_moves_pixels():
    img = torch.rand(2, 3, 16, 16)
    torch.testing.assert_close(similarity_warp(img, torch.zeros(2, 4)), img, atol=1e-5, rtol=0)
    one_pixel = torch.tensor([[2 / 16, 0.0, 0.0, 0.0]]).repeat(2, 1)  # shifts are in half-widths
    moved = similarity_warp(img, one_pixel)
    # output pixel x samples input x + 1: the content moves one pixel to the left
    torch.testing.assert_close(moved[..., :-1], img[..., 1:], atol=1e-5, rtol=0)


def test_conjugate_gradient_solves_a_batch_of_spd_systems():
    gen = torch.Generator().manual_seed(0)
    m = torch.randn(5, 12, 12, generator=gen, dtype=torch.float64)
    a = m @ m.transpose(1, 2) + 0.5 * torch.eye(12, dtype=torch.float64)
    b = torch.randn(5, 12, generator=gen, dtype=torch.float64)
    x = conjugate_gradient(lambda v: (a @ v[..., None])[..., 0], b, iterations=60)
    torch.testing.assert_close(x, torch.linalg.solve(a, b), atol=1e-6, rtol=1e-6)


def _known(G, n, seed):
    z = torch.from_numpy(np.random.RandomState(seed).randn(n, G.z_dim)).float()
    return z[:, None, :], render(G, G.mapping(z))


def test_refine_converges_where_adam_stops_short(G, w_stats):
    """A known latent, started 0.3 per coordinate away: LM lands on the render, Adam's 100 steps do not."""
    w_true, target = _known(G, 4, 11)
    start = w_true + 0.3 * torch.from_numpy(np.random.RandomState(12).randn(*w_true.shape)).float()
    cfg = RefineConfig(iterations=12, prior_weight=0.01, fit_alignment=False)
    result = refine(G, target, start, w_stats, cfg, progress=False)
    quality = psnr(render(G, result.w), target)
    assert quality.min().item() > 38, quality  # the uint8 rounding of the target limits it near 45 dB
    # along the directions the picture pins down, the latent itself is recovered
    before = (start - w_true).norm(dim=2).squeeze(1)
    after = (result.w - w_true).norm(dim=2).squeeze(1)
    assert (after < 0.5 * before).all(), (before, after)
    adam = project(G, target, num_steps=100, loss="mse", progress=False, w_stats=w_stats)
    assert psnr(render(G, adam.w), target).median() < quality.median() - 8


def test_refine_recovers_a_planted_warp(G, w_stats):
    """The render shifted, turned and scaled by a known similarity: the fitted warp finds it."""
    w_true, _ = _known(G, 3, 21)
    planted = torch.tensor([[0.06, -0.04, 0.05, 0.03], [-0.05, 0.03, -0.04, -0.02], [0.02, 0.05, 0.0, 0.04]])
    with torch.no_grad():
        warped = similarity_warp(G.synthesis(w_true), planted)
    target = ((warped + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    result = refine(G, target, w_true, w_stats, RefineConfig(iterations=10, prior_weight=0.01), progress=False)
    torch.testing.assert_close(result.warp, planted, atol=0.006, rtol=0)
    assert result.psnr.min().item() > 35, result.psnr
    unfitted = refine(
        G, target, w_true, w_stats, RefineConfig(iterations=10, prior_weight=0.01, fit_alignment=False), progress=False
    )
    assert (unfitted.warp == 0).all() and unfitted.psnr.max() < result.psnr.min() - 5


def test_prior_weight_trades_the_pixels_against_the_average(G, w_stats):
    """The target is the start's own render: without a prior the latent stays, a strong prior pulls it to w_avg."""
    start = torch.from_numpy(np.random.RandomState(3).randn(2, 1, G.z_dim)).float()
    target = render(G, G.mapping(start[:, 0]))
    weak = refine(
        G, target, start, w_stats, RefineConfig(iterations=4, prior_weight=0.0, fit_alignment=False), progress=False
    )
    strong = refine(
        G, target, start, w_stats, RefineConfig(iterations=4, prior_weight=1e4, fit_alignment=False), progress=False
    )
    torch.testing.assert_close(weak.w, start, atol=0.02, rtol=0)  # the uint8 target leaves a little slack
    assert strong.w.norm(dim=2).max() < 0.5 * start.norm(dim=2).min()


def test_interrupted_refinement_resumes_to_the_same_result(G, w_stats):
    w_true, target = _known(G, 2, 31)
    start = w_true + 0.2
    cfg = RefineConfig(iterations=6)
    whole = refine(G, target, start, w_stats, cfg, progress=False)
    saved: list[RefineState] = []
    refine(
        G,
        target,
        start,
        w_stats,
        RefineConfig(iterations=3),
        checkpoint_every=1,
        on_checkpoint=saved.append,
        progress=False,
    )
    assert [s.iteration for s in saved] == [1, 2]
    resumed = refine(G, target, start, w_stats, cfg, resume=saved[-1], progress=False)
    # the third iteration of a 3-iteration run is the third of a 6-iteration run: continue from iteration 2
    torch.testing.assert_close(resumed.w, whole.w, atol=1e-5, rtol=0)
    torch.testing.assert_close(resumed.warp, whole.warp, atol=1e-6, rtol=0)


def test_bad_settings_name_the_key():
    with pytest.raises(ValueError, match="projection.refine.iterations"):
        RefineConfig(iterations=-1)
    with pytest.raises(ValueError, match="projection.refine"):
        RefineConfig(damping=0)


def test_grey_photos_are_matched_by_the_renders_luma(G, w_stats):
    """A grey photo of a known face: its true latent fits it exactly once the render is compared in luma."""
    from facelatent.projection.losses import LUMA, grey_targets, pixel_residual

    w_true, colour = _known(G, 2, 41)
    luma = (colour.float() * torch.tensor(LUMA).reshape(1, 3, 1, 1)).sum(1, keepdim=True)
    grey = luma.round().clamp(0, 255).to(torch.uint8).expand(-1, 3, -1, -1).contiguous()
    assert grey_targets(grey).all() and not grey_targets(colour).any()
    with torch.no_grad():
        synth = (G.synthesis(w_true) + 1) * 127.5
    assert pixel_residual(synth, grey, grey_targets(grey)).abs().mean() < 2 / 255  # the uint8 rounding of both images
    stay = refine(
        G, grey, w_true, w_stats, RefineConfig(iterations=2, prior_weight=0.01, fit_alignment=False), progress=False
    )
    assert stay.psnr.min() > 38 and (stay.w - w_true).norm(dim=2).max() < 0.5
