"""Margin heads against hand-computed logits on 2-D cases (ArcFace, CosFace, AdaFace)."""

from __future__ import annotations

import math

import pytest
import torch

from facelatent.fr.heads import AdaFaceHead, ArcFaceHead, CosFaceHead, build_head


def planar_head(cls, angles: list[float], **kwargs):
    """A head over 2-D unit class centres at the given angles (radians from the x axis)."""
    head = cls(2, len(angles), **kwargs).double()
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[math.cos(a), math.sin(a)] for a in angles], dtype=torch.float64) * 3.0)
    return head


def at(angle: float, norm: float = 1.0) -> torch.Tensor:
    return torch.tensor([[math.cos(angle) * norm, math.sin(angle) * norm]], dtype=torch.float64)


def test_arcface_target_is_s_cos_theta_plus_m_and_other_logits_unchanged():
    head = planar_head(ArcFaceHead, [0.0, 1.0, 2.0], s=64.0, m=0.5)
    logits = head(at(0.3, norm=7.0), torch.tensor([0]))
    expected = 64.0 * torch.tensor([math.cos(0.3 + 0.5), math.cos(0.7), math.cos(1.7)], dtype=torch.float64)
    torch.testing.assert_close(logits[0], expected, rtol=0, atol=1e-9)


def test_arcface_past_pi_minus_m_falls_back_to_insightface_form():
    head = planar_head(ArcFaceHead, [0.0, 1.0], s=64.0, m=0.5)
    theta = 3.0  # theta + m > pi: cos(theta + m) would rise again
    logits = head(at(theta), torch.tensor([0]))
    expected = 64.0 * (math.cos(theta) - 0.5 * math.sin(math.pi - 0.5))
    assert logits[0, 0].item() == pytest.approx(expected, abs=1e-9)
    assert logits[0, 0].item() < 64.0 * math.cos(theta)  # still a margin against the target


def test_cosface_target_is_s_times_cos_minus_m():
    head = planar_head(CosFaceHead, [0.0, 1.0], s=30.0, m=0.35)
    logits = head(at(0.4, norm=2.0), torch.tensor([1]))
    expected = 30.0 * torch.tensor([math.cos(0.4), math.cos(0.6) - 0.35], dtype=torch.float64)
    torch.testing.assert_close(logits[0], expected, rtol=0, atol=1e-9)


def test_adaface_norms_at_the_mean_give_scaler_zero_and_cosface_margin():
    head = planar_head(AdaFaceHead, [0.0, 1.0, 2.5], s=64.0, m=0.4, h=0.333, t_alpha=0.01)
    head.batch_mean.fill_(5.0)
    x = torch.cat([at(0.2, 5.0), at(1.3, 5.0)])  # both norms equal the running mean: the EMA mean stays 5
    labels = torch.tensor([0, 1])
    logits = head.train()(x, labels)
    assert head.batch_mean.item() == pytest.approx(5.0)
    torch.testing.assert_close(head.margin_scaler(x.norm(dim=1)), torch.zeros(2, dtype=torch.float64))
    angles = [[0.2, 0.8, 2.3], [1.3, 0.3, 1.2]]
    expected = torch.tensor([[math.cos(a) for a in row] for row in angles], dtype=torch.float64)
    expected[0, 0] -= 0.4
    expected[1, 1] -= 0.4
    torch.testing.assert_close(logits, 64.0 * expected, rtol=0, atol=1e-8)


def test_adaface_high_norm_gets_smaller_angular_and_larger_additive_margin():
    head = planar_head(AdaFaceHead, [0.0, 1.0], s=64.0, m=0.4, h=0.333).eval()  # eval: statistics frozen
    head.batch_mean.fill_(10.0)
    head.batch_std.fill_(5.0)
    logits = head(at(0.5, norm=15.0), torch.tensor([0]))
    scaler = min(1.0, 5.0 / (5.0 + 1e-3) * 0.333)
    expected = math.cos(0.5 - 0.4 * scaler) - (0.4 + 0.4 * scaler)
    assert logits[0, 0].item() == pytest.approx(64.0 * expected, abs=1e-8)
    assert logits[0, 1].item() == pytest.approx(64.0 * math.cos(0.5), abs=1e-8)


def test_adaface_tracks_batch_norm_statistics_by_ema():
    head = planar_head(AdaFaceHead, [0.0, 1.0], t_alpha=0.1).train()
    norms = torch.tensor([2.0, 4.0, 9.0], dtype=torch.float64)
    head(torch.stack([at(0.1 * i, n)[0] for i, n in enumerate(norms.tolist())]), torch.tensor([0, 1, 0]))
    assert head.batch_mean.item() == pytest.approx(0.9 * 20.0 + 0.1 * 5.0)
    assert head.batch_std.item() == pytest.approx(0.9 * 100.0 + 0.1 * norms.std().item())


@pytest.mark.parametrize("name", ["arcface", "cosface", "adaface"])
def test_margin_lowers_the_target_logit_and_gradients_are_finite(name):
    torch.manual_seed(0)
    head = build_head(name, 16, 5, s=64.0, m=0.4).train()
    x = torch.randn(6, 16, requires_grad=True)
    labels = torch.tensor([0, 1, 2, 3, 4, 0])
    logits = head(x, labels)
    plain = 64.0 * head.cosine(x)
    rows = torch.arange(6)
    assert logits.shape == (6, 5)
    assert (logits[rows, labels] < plain[rows, labels]).all()
    torch.nn.functional.cross_entropy(logits, labels).backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(head.weight.grad).all()
