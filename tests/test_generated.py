"""The generated route: seeded shards, resumable scoring, the streamed merge, fitting on predicted scores (the
plumbing test: a planted direction comes back), and the measures of an edit."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pandas as pd
import pytest

from facelatent.attributes.config import EvaluationConfig, GeneratedConfig, shard_names, shard_rows
from facelatent.attributes.evaluate import summarize
from facelatent.attributes.fit import fit_generated, read_latent_rows
from facelatent.attributes.sampling import heldout_z, map_latents, sample_ids, shard_z, write_sample_shard
from facelatent.attributes.scoring import merge_shards, predict_shard
from facelatent.directions.svm import DirectionError, LabelRule, SVMConfig
from facelatent.errors import ConfigError, InputFileError
from facelatent.latents import read_latents
from facelatent.store import atomic_h5, partial_path, write_column


def test_shards_cover_the_samples_once():
    assert shard_names(500_000, 10_000) == [f"{k:03d}" for k in range(50)]
    assert len(shard_names(500_000, 100)) == 5000 and shard_names(500_000, 100)[-1] == "4999"
    assert shard_names(0, 10) == []
    blocks = [shard_rows(s, 2500, 1000) for s in shard_names(2500, 1000)]
    assert [(r.start, r.stop) for r in blocks] == [(0, 1000), (1000, 2000), (2000, 2500)]
    with pytest.raises(ConfigError, match="out of range"):
        shard_rows("003", 2500, 1000)


def test_draws_are_seeded_and_held_out_samples_are_disjoint():
    a = shard_z(7, 0, 50, 16)
    assert np.array_equal(a, shard_z(7, 0, 50, 16))
    assert not np.array_equal(a, shard_z(7, 1, 50, 16))
    assert not np.array_equal(a, shard_z(8, 0, 50, 16))
    held = heldout_z(7, 50, 16)
    shards = np.concatenate([shard_z(7, k, 50, 16) for k in range(20)])
    # no held-out row is any training row
    assert np.abs(held[:, None, :] - shards[None]).max(axis=2).min() > 0


def test_evaluation_config_needs_the_unedited_strength():
    with pytest.raises(ConfigError, match="strengths"):
        EvaluationConfig(strengths=[-1, 1])
    cfg = GeneratedConfig.coerce({"samples": 10, "evaluation": {"samples": 4}})
    assert cfg.evaluation.samples == 4 and 0 in cfg.evaluation.strengths


@pytest.fixture(scope="module")
def dcgan(dcgan_path):
    from facelatent.generators import load_generator

    return load_generator(dcgan_path, "cpu")


def _sample_shard(G, tmp_path, shard: int, n: int, seed: int = 0):
    rows = range(shard * n, (shard + 1) * n)
    z = shard_z(seed, shard, n, G.z_dim)
    ws = map_latents(G, z, 1.0, None, 16)
    return write_sample_shard(tmp_path / f"lat{shard}.h5", sample_ids(rows), z, ws, G, {"seed": seed})


def test_a_sample_shard_is_a_latents_file(dcgan, tmp_path):
    path = _sample_shard(dcgan, tmp_path, 1, 10)
    w, frame = read_latents(path)
    assert w.shape == (10, dcgan.num_ws, dcgan.w_dim)
    assert list(frame["ids"])[:2] == ["g00000010", "g00000011"]
    assert frame["psnr"].isna().all()  # drawn, not projected
    with h5py.File(path) as fh:  # DCGAN: the mapping is the identity
        assert np.allclose(fh["z"][()], w[:, 0])


def _brightness(images: np.ndarray) -> pd.DataFrame:
    """A stand-in scorer (the real predictors live in predictors.py): mean level, NaN for the darkest renders."""
    level = images.reshape(len(images), -1).mean(1).astype(np.float64)
    return pd.DataFrame(
        {"level": np.where(level < np.quantile(level, 0.2), np.nan, level), "red": images[..., 0].mean((1, 2))}
    )


def test_predict_shard_resumes_after_a_kill(dcgan, tmp_path):
    shard = _sample_shard(dcgan, tmp_path, 0, 12)
    out = tmp_path / "scores.h5"
    calls = []

    def dies_on_the_third_batch(images):
        calls.append(len(images))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return _brightness(images)

    with pytest.raises(KeyboardInterrupt):
        predict_shard(dcgan, shard, out, ["level", "red"], dies_on_the_third_batch, batch_size=4, progress=False)
    assert partial_path(out).exists() and not out.exists()
    calls.clear()
    predict_shard(dcgan, shard, out, ["level", "red"], _brightness_counted(calls), batch_size=4, progress=False)
    assert calls == [4]  # only the unfinished batch ran again
    fresh = tmp_path / "fresh.h5"
    predict_shard(dcgan, shard, fresh, ["level", "red"], _brightness, batch_size=4, progress=False)
    with h5py.File(out) as a, h5py.File(fresh) as b:
        assert np.array_equal(a["level"][()], b["level"][()], equal_nan=True)
        assert np.isnan(a["level"][()]).any() and np.isfinite(a["red"][()]).all()


def _brightness_counted(calls):
    def scorer(images):
        calls.append(len(images))
        return _brightness(images)

    return scorer


def test_merge_streams_the_shards_and_refuses_a_stale_pair(dcgan, tmp_path):
    lat = [_sample_shard(dcgan, tmp_path, k, 6) for k in range(3)]
    sco = []
    for k, path in enumerate(lat):
        sco.append(tmp_path / f"sco{k}.h5")
        predict_shard(dcgan, path, sco[-1], ["level", "red"], _brightness, batch_size=4, progress=False)
    merged = tmp_path / "attributes.h5"
    assert merge_shards(lat, sco, ["level", "red"], merged) == 18
    w, frame = read_latents(merged)
    assert w.shape[0] == 18 and list(frame["ids"]) == [f"g{i:08d}" for i in range(18)]
    with h5py.File(sco[1]) as fh:
        assert np.array_equal(frame["red"].to_numpy()[6:12], fh["red"][()])
    with pytest.raises(InputFileError, match=r"sco0.h5: its ids are not those of .*lat2.h5"):
        merge_shards(lat, [sco[0], sco[1], sco[0]], ["level", "red"], tmp_path / "bad.h5")


def _planted_file(path, w: np.ndarray, scores: dict[str, np.ndarray]):
    with atomic_h5(path, "facelatent.latents", {"sha256": "x"}, {}) as fh:
        write_column(fh, "ids", np.array([f"g{i:08d}" for i in range(len(w))], dtype=object))
        write_column(fh, "w", w.astype(np.float32))
        group = fh.create_group("labels")
        for name, values in scores.items():
            write_column(group, name, values)
    return path


def _cosine(a, b):
    a, b = a.reshape(-1), b.reshape(-1)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.mark.parametrize("space, num_ws", [("w", 1), ("w+", 3)])
def test_fitting_on_predicted_scores_recovers_a_planted_direction(tmp_path, space, num_ws):
    """The plumbing test: the 'predictor' is a known linear function of the latent plus noise, and a tenth of the
    samples have no score; the fitted normal is the planted direction."""
    rng = np.random.default_rng(0)
    n, w_dim = 4000, 64
    w = rng.standard_normal((n, num_ws, w_dim))
    planted = rng.standard_normal((num_ws, w_dim))
    planted /= np.linalg.norm(planted)
    score = np.einsum("nlc,lc->n", w, planted) + 0.1 * rng.standard_normal(n)
    score[rng.random(n) < 0.1] = np.nan
    path = _planted_file(tmp_path / "a.h5", w, {"yaw": score})
    normal, metrics = fit_generated("yaw_gen", path, LabelRule(score="yaw", ratio=0.1), SVMConfig(C=0.01), space)
    assert normal.shape == ((w_dim,) if space == "w" else (num_ws, w_dim))
    assert _cosine(normal, planted) > 0.95, _cosine(normal, planted)
    assert metrics["n_scored"] == int(np.isfinite(score).sum()) and metrics["n_positive"] == int(
        0.1 * metrics["n_scored"]
    )
    assert metrics["cv"]["accuracy_mean"] > 0.95


def test_the_selection_leaves_out_rows_without_a_score(tmp_path):
    """The samples with the most extreme latents have no face (NaN): none of them is chosen, and the classes are
    the top and bottom of the finite scores."""
    rng = np.random.default_rng(1)
    n = 1000
    w = rng.standard_normal((n, 1, 8))
    score = w[:, 0, 0].copy()
    hidden = np.argsort(score)[np.r_[:30, -30:0]]  # the 30 lowest and 30 highest
    score[hidden] = np.nan
    path = _planted_file(tmp_path / "a.h5", w, {"s": score})
    _, metrics = fit_generated("s", path, LabelRule(score="s", ratio=0.05), SVMConfig(), "w")
    finite = np.sort(score[np.isfinite(score)])
    k = int(len(finite) * 0.05)
    assert metrics["n_scored"] == n - 60 and metrics["n_positive"] == metrics["n_negative"] == k
    assert (
        metrics["score_cut"]["positive_above"] == finite[-k] and metrics["score_cut"]["negative_below"] == finite[k - 1]
    )
    with pytest.raises(DirectionError, match="no 'mouth' scores"):
        fit_generated("m", path, LabelRule(score="mouth", ratio=0.05), SVMConfig(), "w")


def test_reading_chosen_rows_matches_the_full_read(tmp_path):
    w = np.random.default_rng(2).standard_normal((50, 2, 3))
    path = _planted_file(tmp_path / "a.h5", w, {})
    rows = np.array([0, 7, 8, 31, 49])
    assert np.allclose(read_latent_rows(path, rows, "w+", block=8), w[rows].reshape(5, -1))
    assert np.allclose(read_latent_rows(path, rows, "w", block=8), w[rows, 0])


def test_summary_measures_response_side_effects_and_drift():
    """Scores built from known slopes: the target moves 2 per unit, a side effect 0.5 per unit, a third stays."""
    rng = np.random.default_rng(3)
    strengths = [-2.0, -1.0, 0.0, 1.0, 2.0]
    n = 40
    base = rng.standard_normal((n, 3))
    s = np.asarray(strengths)[:, None]
    scores = np.stack([base[:, 0] + 2.0 * s, base[:, 1] + 0.5 * s, base[:, 2] + 0 * s], axis=-1)
    scores = scores + 0.01 * rng.standard_normal(scores.shape)
    scores[4, 0, :] = np.nan  # no face at +2 for one sample
    angles = np.abs(s) * 10 + np.zeros((1, n))
    summary = summarize("d", scores, angles, strengths, ["t", "side", "still"], "t")
    response = summary["response"]
    # a perfect order of S tied strength groups caps rho at sqrt(1 - 1/S^2): 0.980 for 5 strengths
    assert response["spearman"] > 0.975 and abs(response["slope"] - 2.0) < 0.01
    assert response["n"] == [n, n, n, n, n - 1]
    assert abs(response["mean"][0] + 4.0) < 0.01 and response["std"][2] == 0
    effects = summary["side_effects"]
    assert abs(effects["side"]["per_target_unit"] - 0.25) < 0.01
    assert abs(effects["still"]["slope"]) < 0.01
    assert abs(effects["t"]["standardized"] - 2.0 / np.std(base[:, 0])) < 0.1
    assert summary["identity_drift_deg"]["mean"] == [20.0, 10.0, 0.0, 10.0, 20.0]
    assert summary["drift_at_largest_deg"] == 20.0
    assert summarize("d", scores, angles, strengths, ["t", "side", "still"], None)["response"] is None
    json.dumps(summary)  # plain JSON


def test_measured_edits_start_from_the_unedited_render(dcgan, tmp_path):
    """A real edit (DCGAN, FaceNet): strength 0 is the unedited image (FR angle 0), a larger step drifts further,
    and the stand-in score follows the direction it was built from (the mean level)."""
    from conftest import fetched_model

    from facelatent.attributes.edits import measure_edits
    from facelatent.embeddings import load_embedder
    from facelatent.embeddings.job import embed_batch

    embedder = load_embedder("facenet_casia", weights=fetched_model("facenet_casia"))
    ws = map_latents(dcgan, heldout_z(0, 4, dcgan.z_dim), 1.0, None, 4)
    # the direction that brightens these renders most: the gradient of their mean level
    import torch

    latents = torch.from_numpy(ws).requires_grad_(True)
    dcgan.synthesis(latents).mean().backward()
    probe = latents.grad.sum(dim=(0, 1)).numpy()
    strengths = [-3.0, 0.0, 1.0, 3.0]
    scores, angles, strip = measure_edits(
        dcgan,
        ws,
        probe,
        strengths,
        lambda images: pd.DataFrame({"level": images.reshape(len(images), -1).mean(1).astype(float)}),
        ["level"],
        lambda images: embed_batch(embedder, images, "resize"),
        batch_size=3,
        progress=False,
    )
    assert scores.shape == (4, 4, 1) and angles.shape == (4, 4) and strip.shape == (4, 4, 64, 64, 3)
    assert np.allclose(angles[1], 0, atol=0.5)
    assert (angles[3] > angles[2]).all() and (angles[0] > 5).all()
    summary = summarize("bright", scores, angles, strengths, ["level"], "level")
    assert summary["response"]["slope"] > 0 and summary["response"]["spearman"] > 0.8


@pytest.fixture()
def generated_config(repo_root):
    import copy

    import yaml

    config = yaml.safe_load((repo_root / "config" / "config.yaml").read_text())
    # the demo's own generated route taken out: its directions and targets name predictors this base lacks
    config["directions"] = {name: entry for name, entry in config["directions"].items() if "source" not in entry}
    for entry in config["directions"].values():
        entry.pop("target", None)
    config["generated"] = {"samples": 100, "samples_per_shard": 50, "predictors": ["yaw", "brightness"]}
    config["directions"]["gen_yaw"] = {"source": "generated", "label": {"score": "yaw", "ratio": 0.1}}
    return lambda: copy.deepcopy(config)


@pytest.mark.parametrize(
    "change, key",
    [
        (lambda c: c["generated"].update(samples=0), "directions.gen_yaw.source"),
        (lambda c: c["directions"]["gen_yaw"]["label"].update(score="mouth_opening"), "directions.gen_yaw.label.score"),
        (lambda c: c["generated"]["predictors"].append("smile"), "generated.predictors.2"),
        (lambda c: c["directions"]["smile"].update(target="skin"), "directions.smile.target"),
        (lambda c: c["directions"]["smile"]["label"].update(score="yaw"), "directions.smile.label.score"),
        (lambda c: c["directions"]["gen_yaw"].update(dataset="multipie"), "directions.gen_yaw.dataset"),
        (lambda c: c["generated"].update(evaluation={"strengths": [-1, 1]}), "generated.evaluation.strengths"),
        (lambda c: c["generated"].update(predictors=[]), "generated.predictors"),
    ],
)
def test_config_check_names_the_key(repo_root, generated_config, change, key):
    from facelatent.config import check_config

    config = generated_config()
    check_config(config, repo_root / "config" / "schema.yaml")  # the base passes
    config = generated_config()
    change(config)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        check_config(config, repo_root / "config" / "schema.yaml")


def test_comparison_table_and_matrix(tmp_path):
    """Two directions' summaries -> one row each (rho, slope, drift at |3|, the largest side effect) and the matrix."""
    from facelatent.attributes.job import compare_directions

    strengths = [-3.0, 0.0, 3.0]
    s = np.asarray(strengths)[:, None]
    base = np.random.default_rng(4).standard_normal((20, 2))
    paths = []
    for name, (a, b), target in [("clean", (1.0, 0.0), "t"), ("tangled", (0.2, -1.0), None)]:
        scores = np.stack([base[:, 0] + a * s, base[:, 1] + b * s], axis=-1)
        summary = summarize(name, scores, np.abs(s) * 5 + np.zeros((1, 20)), strengths, ["t", "u"], target)
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(summary))
    table = compare_directions(
        summaries=paths, sources={"clean": "generated"}, out_tsv=tmp_path / "d.tsv", out_png=tmp_path / "e.png"
    )
    assert list(table["direction"]) == ["clean", "tangled"] and list(table["source"]) == ["generated", ""]
    clean, tangled = table.iloc[0], table.iloc[1]
    assert abs(clean["slope"] - 1.0) < 1e-9 and clean["largest_side_effect"] == "u" and clean["drift_deg_at_3"] == 15
    assert np.isnan(tangled["spearman"]) and tangled["largest_side_effect"] == "u"
    assert tangled["largest_side_effect_standardized"] < 0
    assert (tmp_path / "e.png").stat().st_size > 0 and pd.read_csv(tmp_path / "d.tsv", sep="\t").shape[0] == 2
