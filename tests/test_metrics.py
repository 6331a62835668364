"""EER / TAR@FAR on score sets whose answers are known analytically; the blockwise pair histograms against the
old exact N x N computation (kept here only, as the reference) and under a memory limit; histogram PNGs."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from statistics import NormalDist

import numpy as np
import pytest
import torch

from facelatent.embeddings.base import pairwise_angles
from facelatent.embeddings.verification import (
    MetricsConfig,
    equal_error_rate,
    histogram_summary,
    nearest_neighbours,
    pair_histograms,
    plot_pair_histograms,
    plot_score_histograms,
    tar_at_far,
    verification_report,
    verification_summary,
)
from facelatent.errors import ConfigError
from facelatent.synthetic.files import REFERENCE_LABEL, FaceTable
from facelatent.synthetic.plots import angle_histograms, plot_histograms, rank1_own_reference, verification

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
    genuine, impostor = reference_pair_scores(emb.numpy(), np.array([0, 0, 1, 1, 2]))
    np.testing.assert_allclose(sorted(genuine), [1.0, 1.0])
    assert impostor.size == 8
    np.testing.assert_allclose(sorted(impostor), sorted([0, 0, 0, 0, *[np.sqrt(0.5)] * 4]), atol=1e-12)
    hists = pair_histograms(emb, [0, 0, 1, 1, 2])
    assert (hists.n_genuine, hists.genuine.n, hists.n_impostor, hists.impostor.n) == (2, 2, 8, 8)
    assert hists.genuine.counts[-1] == 2 and hists.impostor.max == pytest.approx(np.sqrt(0.5), abs=1e-12)
    report = verification_report(emb, [0, 0, 1, 1, 2])
    assert report["n_genuine"] == 2 and report["eer"] == 0.0
    assert set(report["tar_at_far"]) == {"0.01", "0.001", "0.0001"}
    with pytest.raises(ValueError, match="at least one genuine"):
        verification_report(emb, [0, 1, 2, 3, 4])


def test_nan_scores_are_rejected():
    with pytest.raises(ValueError, match="NaN"):
        verification_summary([0.1, float("nan")], [0.0])


def test_plot_score_histograms_writes_png(tmp_path):
    rng = np.random.default_rng(1)
    genuine, impostor = rng.normal(0.6, 0.1, 300), rng.normal(0.1, 0.1, 3000)
    summary = verification_summary(genuine, impostor)
    out = plot_score_histograms(
        genuine,
        impostor,
        tmp_path / "plots" / "scores.png",
        title="demo",
        thresholds={"EER": summary["eer_threshold"], "FAR=1e-3": summary["tar_at_far"]["0.001"]["threshold"]},
    )
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert list(out.parent.iterdir()) == [out]  # no .partial left behind


# ---- blockwise pair metrics against the old exact N x N code ------------------------------------------------


def reference_pair_scores(embeddings, labels) -> tuple[np.ndarray, np.ndarray]:
    """The old `pair_scores` (full N x N float64 matrix): cosines of all pairs i < j, split by label equality."""
    emb = np.asarray(embeddings).astype(np.float64)
    lab = np.asarray(labels).ravel()
    unit = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    sim = unit @ unit.T
    rows, cols = np.triu_indices(emb.shape[0], k=1)
    same = lab[rows] == lab[cols]
    values = sim[rows, cols]
    return values[same], values[~same]


def reference_angle_sets(table: FaceTable) -> dict[str, np.ndarray]:
    """The old synthetic `angle_sets` (full N x N float32 angle matrix)."""
    e = torch.from_numpy(np.asarray(table.embedding, np.float32))
    theta = pairwise_angles(e).double().numpy()
    ids, is_ref = np.asarray(table.identity), np.asarray(table.label) == REFERENCE_LABEL
    rows, cols = np.triu_indices(len(ids), k=1)
    same = ids[rows] == ids[cols]
    both_ref = is_ref[rows] & is_ref[cols]
    one_ref = is_ref[rows] ^ is_ref[cols]
    return {
        "inter": theta[rows, cols][both_ref & ~same],
        "intra": theta[rows, cols][same],
        "to_reference": theta[rows, cols][same & one_ref],
    }


def reference_rank1(table: FaceTable) -> float:
    """The old `rank1_own_reference` (full variations x references angle matrix)."""
    is_ref = np.asarray(table.label) == REFERENCE_LABEL
    e = torch.from_numpy(np.asarray(table.embedding, np.float32))
    theta = pairwise_angles(e[~is_ref], e[is_ref]).numpy()
    nearest = np.asarray(table.identity)[is_ref][theta.argmin(axis=1)]
    return float(np.mean(nearest == np.asarray(table.identity)[~is_ref]))


def clustered(n: int = 700, dim: int = 16, identities: int = 40, spread: float = 1.5, seed: int = 0):
    """float32 embeddings around one centre per identity; uneven identity sizes, labels in shuffled order."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, identities, n)
    centres = spread * rng.normal(size=(identities, dim))
    return (centres[labels] + rng.normal(size=(n, dim))).astype(np.float32), labels


def synthetic_table(identities: int = 8, variations: int = 4, dim: int = 512, seed: int = 0) -> FaceTable:
    """A synthetic run's table at the demo's size: per identity a reference, then its variations."""
    rng = np.random.default_rng(seed)
    ids = np.repeat(np.arange(identities), variations + 1)
    labels = np.array(
        ["reference" if k == 0 else f"augmentation_{k - 1}" for _ in range(identities) for k in range(variations + 1)],
        dtype=object,
    )
    centres = rng.normal(size=(identities, dim))
    emb = (centres[ids] + 0.9 * rng.normal(size=(len(ids), dim))).astype(np.float32)
    return FaceTable(ids, labels, np.zeros((len(ids), 4), np.float32), emb)


@pytest.mark.parametrize("block_size", [7, 64, 4096])
def test_pair_histograms_count_every_pair_exactly(block_size):
    emb, labels = clustered()
    genuine, impostor = reference_pair_scores(emb, labels)
    hists = pair_histograms(emb, labels, {"block_size": block_size, "bins": 4096})
    assert (hists.n_genuine, hists.n_impostor, hists.impostor_sample) == (genuine.size, impostor.size, None)
    for hist, scores in ((hists.genuine, genuine), (hists.impostor, impostor)):
        # the number of scores >= every bin edge (so FAR and FRR there) is the unbinned count
        exact = scores.size - np.searchsorted(np.sort(scores), hist.thresholds(), side="left")
        np.testing.assert_array_equal(hist.at_least(), exact)
        assert hist.mean == pytest.approx(scores.mean(), abs=1e-12)
        assert (hist.min, hist.max) == pytest.approx((scores.min(), scores.max()), abs=1e-12)


@pytest.mark.parametrize("bins", [256, 65536])
def test_eer_and_tar_match_the_unbinned_scores_within_their_bounds(bins):
    emb, labels = clustered()
    genuine, impostor = reference_pair_scores(emb, labels)
    old = verification_summary(genuine, impostor)
    new = histogram_summary(pair_histograms(emb, labels, {"bins": bins, "block_size": 100}))
    width = 2.0 / bins
    assert new["bin_width"] == width and new["impostor_method"] == "exact"
    assert (new["n_genuine"], new["n_impostor"]) == (old["n_genuine"], old["n_impostor"])
    assert new["genuine_mean"] == pytest.approx(old["genuine_mean"], abs=1e-12)
    assert new["impostor_mean"] == pytest.approx(old["impostor_mean"], abs=1e-12)
    # EER: both values lie in an interval of width eer_bound, at most one bin's share of the scores
    biggest_bin = max(
        np.histogram(genuine, bins, (-1, 1))[0].max() / genuine.size,
        np.histogram(impostor, bins, (-1, 1))[0].max() / impostor.size,
    )
    assert abs(new["eer"] - old["eer"]) <= new["eer_bound"] + 1e-12 and new["eer_bound"] <= biggest_bin
    assert abs(new["eer_threshold"] - old["eer_threshold"]) <= width
    aligned = 0
    for far, point in new["tar_at_far"].items():
        exact = old["tar_at_far"][far]
        # a bin edge at most one bin above the unbinned threshold: conservative, TAR within tar_bound below
        assert 0 <= point["threshold"] - exact["threshold"] < width
        assert point["far"] <= exact["far"] <= float(far) and point["resolved"] == exact["resolved"]
        assert point["tar"] <= exact["tar"] <= point["tar"] + point["tar_bound"] + 1e-12
        # at its own threshold the binned TAR and FAR are the unbinned ones, exactly
        assert (point["far"], point["tar"]) == (
            np.mean(impostor >= point["threshold"]),
            np.mean(genuine >= point["threshold"]),
        )
        if point["tar_bound"] == 0:  # no genuine score between the two thresholds: the same TAR
            assert point["tar"] == exact["tar"]
            aligned += 1
    assert bins == 256 or aligned >= 1


def test_impostor_sample_is_seeded_and_reports_its_error():
    emb, labels = clustered(n=1500, dim=16, identities=30, spread=1.2)
    exact = pair_histograms(emb, labels)
    config = {"impostor": "sample", "impostor_sample": 200_000, "seed": 1}
    sampled = pair_histograms(emb, labels, config)
    assert sampled.impostor_sample == 200_000 == sampled.impostor.n and sampled.n_impostor == exact.n_impostor
    np.testing.assert_array_equal(sampled.genuine.counts, exact.genuine.counts)  # genuine pairs stay exact
    np.testing.assert_array_equal(pair_histograms(emb, labels, config).impostor.counts, sampled.impostor.counts)
    other = pair_histograms(emb, labels, {**config, "seed": 2}).impostor.counts
    assert not np.array_equal(other, sampled.impostor.counts)
    s, e = histogram_summary(sampled), histogram_summary(exact)
    assert s["impostor_method"] == "sample" and s["impostor_sample"] == 200_000
    assert abs(s["eer"] - e["eer"]) <= 4 * s["eer_standard_error"] + s["eer_bound"] + e["eer_bound"]
    point = s["tar_at_far"]["0.01"]
    assert point["far_standard_error"] == pytest.approx(np.sqrt(0.01 * 0.99 / 200_000))
    low, high = point["tar_range_1se"]
    assert low <= point["tar"] <= high
    # a sample at least as large as the impostor set is the exact set
    whole = pair_histograms(emb, labels, {**config, "impostor_sample": exact.n_impostor})
    assert whole.impostor_sample is None and np.array_equal(whole.impostor.counts, exact.impostor.counts)


def test_metrics_config_is_checked():
    assert MetricsConfig.from_dict(None) == MetricsConfig()
    with pytest.raises(ConfigError, match="metrics.impostor"):
        MetricsConfig.from_dict({"impostor": "some"})
    with pytest.raises(ConfigError, match="unknown config key 'metrics.bin'"):
        MetricsConfig.from_dict({"bin": 10})
    with pytest.raises(ValueError, match="NaN"):
        pair_histograms(np.array([[0.0, 1.0], [np.nan, 1.0]]), [0, 1])


def test_nearest_neighbours_in_tiles():
    rng = np.random.default_rng(3)
    queries, gallery = rng.normal(size=(300, 8)), rng.normal(size=(70, 8))
    queries[:3] = gallery[60] * 2
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    expected = np.argmax(unit(queries) @ unit(gallery).T, axis=1)
    for block_size in (3, 16, 1000):
        np.testing.assert_array_equal(nearest_neighbours(queries, gallery, block_size), expected)
    assert (expected[:3] == 60).all()


@pytest.mark.parametrize("identities, variations", [(8, 4), (120, 12)])
def test_synthetic_metrics_match_the_old_matrices(identities, variations, tmp_path):
    table = synthetic_table(identities, variations)
    old_sets = reference_angle_sets(table)
    config = {"block_size": 50}
    sets = angle_histograms(table, config)
    assert list(sets) == list(old_sets)
    for name, old in old_sets.items():
        new = sets[name]
        assert new.n == old.size, name
        # the old sets were float32 angles; ours are float64 (1e-5 rad covers float32 arccos)
        assert (new.min, new.mean, new.max) == pytest.approx((old.min(), old.mean(), old.max()), abs=1e-5), name
    assert rank1_own_reference(table, block_size=7) == reference_rank1(table)
    report = verification(table, sets, config)
    genuine, impostor = reference_pair_scores(table.embedding, table.identity)
    old = verification_summary(genuine, impostor)
    assert (report["n_genuine"], report["n_impostor"]) == (old["n_genuine"], old["n_impostor"])
    assert abs(report["eer"] - old["eer"]) <= report["eer_bound"] + 1e-12
    assert report["to_reference_angle"]["n"] == identities * variations
    assert report == verification(table, config=config)  # the sets computed inside are the same
    out = plot_histograms(sets, tmp_path / "angles.png", {"ICT": 1.4})
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_pair_histograms_writes_png(tmp_path):
    emb, labels = clustered()
    hists = pair_histograms(emb, labels)
    summary = histogram_summary(hists)
    out = plot_pair_histograms(
        hists, tmp_path / "plots" / "scores.png", title="demo", thresholds={"EER": summary["eer_threshold"]}
    )
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    empty = pair_histograms(emb[:3], [0, 1, 2])  # no genuine pairs: the figure is still written
    assert plot_pair_histograms(empty, tmp_path / "empty.png").exists()


MEMORY_SCRIPT = """
import json, resource, sys
import numpy as np
from facelatent.embeddings.verification import histogram_summary, pair_histograms

mode, n, headroom = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
emb = rng.standard_normal((n, 64), dtype=np.float32)
labels = np.repeat(np.arange(n // 40 + 1), 40)[:n]
pair_histograms(emb[:500], labels[:500])  # load every lazy kernel before measuring
vm = [int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmSize:")][0]
resource.setrlimit(resource.RLIMIT_AS, (vm + headroom, vm + headroom))
try:
    if mode == "old":
        genuine, impostor = reference_pair_scores(emb, labels)
        summary = {"n_impostor": int(impostor.size)}
    else:
        summary = histogram_summary(pair_histograms(emb, labels))
except MemoryError:
    print(json.dumps({"memory_error": True, "baseline": vm}))
    sys.exit(0)
print(json.dumps({"memory_error": False, "baseline": vm, "n_impostor": summary["n_impostor"],
                  "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def run_under_limit(mode: str, n: int, headroom: int) -> dict:
    code = "import numpy as np\n" + inspect.getsource(reference_pair_scores) + MEMORY_SCRIPT
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", code, mode, str(n), str(headroom)], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_metrics_run_in_memory_where_the_n_by_n_matrix_cannot():
    """24,000 faces of dim 64: one float64 N x N matrix is 4.6 GB (its i < j indices as much again). With the
    address space capped at 1 GiB above the interpreter's (torch and numpy loaded), the old code fails and the
    blockwise code completes."""
    n, headroom = 24_000, 1 << 30
    old = run_under_limit("old", n, headroom)
    assert old["memory_error"]
    new = run_under_limit("new", n, headroom)
    assert not new["memory_error"] and new["n_impostor"] == n * (n - 1) // 2 - (n // 40) * 40 * 39 // 2
