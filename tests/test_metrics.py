"""EER / TAR@FAR on score sets whose answers are known analytically, pair scores, histogram PNGs."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pytest
import torch

from facelatent.embeddings.verification import (equal_error_rate, pair_scores, plot_score_histograms, tar_at_far,
                                verification_report, verification_summary)

STD = NormalDist()


def gaussian_quantiles(mean: float, n: int) -> np.ndarray:
    """A deterministic N(mean, 1) 'sample': the (i + 0.5) / n quantiles."""
    return np.array([mean + STD.inv_cdf((i + 0.5) / n) for i in range(n)])


@pytest.mark.parametrize("d", [1.0, 2.0, 3.0])
def test_two_gaussians_eer_and_tar(d):
    genuine, impostor = gaussian_quantiles(d, 100_000), gaussian_quantiles(0.0, 200_000)
    eer, threshold = equal_error_rate(genuine, impostor)
    assert eer == pytest.approx(STD.cdf(-d / 2), abs=2e-4)  # equal variances: FAR = FRR at d / 2
    assert threshold == pytest.approx(d / 2, abs=2e-3)
    for far in (1e-2, 1e-3, 1e-4):
        point = tar_at_far(genuine, impostor, far)
        expected = STD.cdf(d - STD.inv_cdf(1 - far))
        assert point.resolved and point.far <= far
        assert point.tar == pytest.approx(expected, abs=3e-3), far
        assert point.threshold == pytest.approx(STD.inv_cdf(1 - far), abs=0.05)


def test_perfectly_separated_scores():
    genuine, impostor = np.linspace(0.6, 1.0, 500), np.linspace(-1.0, 0.4, 5000)
    eer, threshold = equal_error_rate(genuine, impostor)
    assert eer == 0.0 and 0.4 < threshold <= 0.6
    for far in (1e-2, 1e-3):
        assert tar_at_far(genuine, impostor, far).tar == 1.0
    point = tar_at_far(genuine, impostor, 1e-4)  # 5000 impostors cannot resolve 1e-4
    assert not point.resolved and point.far == 0.0 and point.tar == 1.0


def test_identical_distributions():
    scores = np.random.default_rng(0).normal(size=20_000)
    eer, _ = equal_error_rate(scores, scores)
    assert eer == pytest.approx(0.5, abs=1e-4)
    for far in (1e-2, 1e-3):  # same scores: accepting a share f of impostors accepts a share f of genuines
        point = tar_at_far(scores, scores, far)
        assert point.tar == pytest.approx(far, abs=1e-4) and point.far <= far


def test_eer_interpolates_between_thresholds():
    eer, threshold = equal_error_rate([2.0, 3.0], [0.0, 1.0])  # FAR = FRR = 0 at threshold 2 exactly
    assert (eer, threshold) == (0.0, 2.0)
    # At t = 2: FAR 0.5, FRR 0; at t = 3: FAR 0, FRR 0.5. The ROC segment between them crosses
    # FAR = FRR half-way: EER 0.25, nominal threshold 2.5.
    eer, threshold = equal_error_rate([2.0, 3.0], [0.0, 2.0])
    assert eer == pytest.approx(0.25) and threshold == pytest.approx(2.5)


def test_tar_threshold_rule_is_conservative():
    impostor = np.arange(100, dtype=float)  # 0..99
    genuine = np.array([97.5, 98.0, 98.5, 99.0, 99.5])
    point = tar_at_far(genuine, impostor, 0.02)  # may accept 2 impostors: 98 and 99
    assert point.far == 0.02 and point.threshold == pytest.approx(97.0, abs=1e-9) and point.threshold > 97.0
    assert point.tar == 1.0
    assert tar_at_far(genuine, impostor, 0.015).far == 0.01  # floor(1.5) = 1 accepted impostor


def test_pair_scores_from_labels():
    emb = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, 3.0], [1.0, 1.0]])
    genuine, impostor = pair_scores(emb, [0, 0, 1, 1, 2])
    np.testing.assert_allclose(sorted(genuine), [1.0, 1.0])
    assert impostor.size == 8
    np.testing.assert_allclose(sorted(impostor), sorted([0, 0, 0, 0, *[np.sqrt(0.5)] * 4]), atol=1e-12)
    report = verification_report(emb, [0, 0, 1, 1, 2])
    assert report["n_genuine"] == 2 and report["eer"] == 0.0
    assert set(report["tar_at_far"]) == {"0.01", "0.001", "0.0001"}


def test_nan_scores_are_rejected():
    with pytest.raises(ValueError, match="NaN"):
        verification_summary([0.1, float("nan")], [0.0])


def test_plot_score_histograms_writes_png(tmp_path):
    rng = np.random.default_rng(1)
    genuine, impostor = rng.normal(0.6, 0.1, 300), rng.normal(0.1, 0.1, 3000)
    summary = verification_summary(genuine, impostor)
    out = plot_score_histograms(genuine, impostor, tmp_path / "plots" / "scores.png", title="demo",
                                thresholds={"EER": summary["eer_threshold"],
                                            "FAR=1e-3": summary["tar_at_far"]["0.001"]["threshold"]})
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert list(out.parent.iterdir()) == [out]  # no .partial left behind
