"""Dispersion keeps identity while spreading latents; DisCo's covariate initialisation; part independence."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from facelatent.embeddings import load_embedder
from facelatent.embeddings.base import angle
from facelatent.errors import InputFileError
from facelatent.generators import load_generator
from facelatent.synthetic.disco import covariate_directions, covariate_vector
from facelatent.synthetic.dispersion import (
    DispersionConfig,
    identity_generators,
    initial_variations,
    run_dispersion,
)
from facelatent.synthetic.references import random_references
from facelatent.synthetic.render import FacePipeline
from facelatent.synthetic.tiny import write_tiny_embedder


def test_dispersion_on_the_demo_stays_within_the_reference_angle(dcgan_path):
    """DCGAN + FaceNet with the demo's Dispersion parameters, 2 identities x 3 variations, 3 iterations."""
    from conftest import fetched_model

    pipe = FacePipeline(load_generator(dcgan_path), load_embedder(fetched_model("facenet_casia")), batch_size=6)
    refs = random_references(pipe, 2, 0.7, seed=0)
    cfg = DispersionConfig(
        iterations=3, num_augmentations=3, latent_radius=4.0, initial_noise=0.1, latent_global_coefficient=0.0
    )  # reference_angle: the default 0.7 rad
    out = run_dispersion(pipe, torch.from_numpy(refs.w), torch.from_numpy(refs.embedding), [0, 1], cfg, seed=0)
    s = out.stats
    theta = angle(out.embeddings, torch.from_numpy(refs.embedding)[:, None, :])
    print(
        f"max angle to reference {float(theta.max()):.3f} rad (configured {cfg.reference_angle}); "
        f"intra-class W distance {s['w2wd_avg'][0]:.2f} -> {s['w2wd_avg'][-1]:.2f}"
    )
    assert float(theta.max()) < cfg.reference_angle
    assert s["prop_ref"][-1] == 1.0 and np.isclose(s["ref_dist_max"][-1], float(theta.max()), rtol=1e-5)
    assert s["w2wd_avg"][-1] > 1.5 * s["w2wd_avg"][0]
    assert s["w2wd_min"][-1] > s["w2wd_min"][0]
    assert np.all(s["timestep"][:-1] == np.float32(0.05))


def test_disco_initialisation_adds_uniform_covariate_combinations():
    torch.manual_seed(0)
    directions = torch.randn(3, 10, dtype=torch.float64).float()
    w_ref = torch.randn(2, 10)
    gens = identity_generators(7, [4, 9])
    w = initial_variations(w_ref, 50, 0.0, gens, directions)  # no Gaussian part: offsets are pure combinations
    offsets = (w - w_ref[:, None]).reshape(-1, 10).double()
    u = torch.linalg.lstsq(directions.double().T, offsets.T).solution.T
    assert torch.allclose(u @ directions.double(), offsets, atol=1e-4)
    assert u.min() >= -0.5 - 1e-4 and u.max() <= 0.5 + 1e-4 and u.std() > 0.2
    again = initial_variations(w_ref, 50, 0.0, identity_generators(7, [4, 9]), directions)
    assert torch.equal(w, again)


def _direction_files(tmp_path, name, normal, neg_mean, pos_mean):
    np.save(tmp_path / f"{name}.npy", np.asarray(normal, np.float32))
    metrics = {"stats_by_side": {"negative": {"mean": neg_mean}, "positive": {"mean": pos_mean}}}
    (tmp_path / f"{name}.json").write_text(json.dumps(metrics))
    return tmp_path / f"{name}.npy"


def test_covariate_vectors_use_the_larger_side_mean(tmp_path):
    smile = _direction_files(tmp_path, "smile", [0.6, 0.8, 0.0], -2.0, 1.5)
    pose = _direction_files(tmp_path, "pose", [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]], -0.5, 3.0)  # W+ normal
    np.testing.assert_allclose(covariate_vector(smile, 3, scaling=0.5), [0.6, 0.8, 0.0], rtol=1e-6)
    v = covariate_directions({"smile": smile, "pose": pose}, 3, {"pose": 2.0})
    # the W+ normal's unit distance moves each layer by [1, 0, 0] / sqrt(2): 3 * 2 / sqrt(2) per layer
    np.testing.assert_allclose(v.numpy(), [[1.2, 1.6, 0.0], [6.0 / np.sqrt(2), 0.0, 0.0]], rtol=1e-6)
    (tmp_path / "cond.json").write_text(json.dumps({"conditional": {}}))
    np.save(tmp_path / "cond.npy", np.array([0.0, 1.0, 0.0], np.float32))
    with pytest.raises(InputFileError, match="cond.json"):
        covariate_vector(tmp_path / "cond.npy", 3)
    np.testing.assert_allclose(covariate_vector(tmp_path / "cond.npy", 3, magnitude=2.0), [0, 2, 0])
    with pytest.raises(InputFileError, match=r"expected \[4\]"):
        covariate_vector(smile, 4)


def test_w_plus_covariate_steps_each_layer_as_the_w_normal_does(tmp_path):
    """A W+ normal [num_ws, w_dim] that repeats a W normal: the same side statistics (measured as fit_direction
    measures them, along each normal) give the same W covariate, and it moves the W+ signed distance by m."""
    from facelatent.directions.edit import signed_distance

    num_ws, rng = 6, np.random.RandomState(0)
    n = rng.randn(5)
    n /= np.linalg.norm(n)
    n_plus = np.repeat(n[None], num_ws, axis=0) / np.sqrt(num_ws)  # unit over all layers, as the SVM returns it
    w = rng.randn(40, 5)
    ws = np.repeat(w[:, None], num_ws, axis=1)  # latents fitted in W+ that hold one w per face
    paths = {}
    for name, normal, d in (("w", n, w @ n), ("wplus", n_plus, ws.reshape(40, -1) @ n_plus.reshape(-1))):
        paths[name] = _direction_files(tmp_path, name, normal, float(d[d <= 0].mean()), float(d[d > 0].mean()))
    v = covariate_directions(paths, 5).double().numpy()
    np.testing.assert_allclose(v[1], v[0], rtol=1e-5)  # was sqrt(6) times larger
    metrics = json.loads((tmp_path / "wplus.json").read_text())["stats_by_side"]
    m = max(-metrics["negative"]["mean"], metrics["positive"]["mean"])
    moved = np.repeat((w + v[1])[:, None], num_ws, axis=1)
    np.testing.assert_allclose(signed_distance(moved, n_plus) - signed_distance(ws, n_plus), m, rtol=1e-5)


def test_variations_do_not_depend_on_the_split_into_parts(dcgan_path, tmp_path):
    """Each identity draws from its own generator: one part of 3 == parts of 2 + 1 (up to batch rounding)."""
    pipe = FacePipeline(
        load_generator(dcgan_path), load_embedder(write_tiny_embedder(tmp_path / "t.safetensors")), batch_size=4
    )
    refs = random_references(pipe, 3, 0.7, seed=2)
    w_ref, e_ref = torch.from_numpy(refs.w), torch.from_numpy(refs.embedding)
    cfg = DispersionConfig(iterations=2, num_augmentations=3)
    whole = run_dispersion(pipe, w_ref, e_ref, [0, 1, 2], cfg, seed=5)
    first = run_dispersion(pipe, w_ref[:2], e_ref[:2], [0, 1], cfg, seed=5)
    last = run_dispersion(pipe, w_ref[2:], e_ref[2:], [2], cfg, seed=5)
    assert torch.allclose(whole.w, torch.cat([first.w, last.w]), atol=1e-4)
    assert not torch.allclose(whole.w[0], whole.w[1])


def test_intra_class_stats_reduce_per_identity_stats():
    """Vectorised over identities == per identity, then min of mins / mean of means / max of maxes."""
    from facelatent.synthetic.stats import embedding_stats, latent_stats, within_identity_stats

    torch.manual_seed(0)
    e, w, w_avg = torch.randn(3, 5, 8), torch.randn(3, 5, 4), torch.randn(4)
    got = within_identity_stats(e, w, w_avg, ict=1.4)
    per = [{**embedding_stats(e[i], 1.4), **latent_stats(w[i], w_avg)} for i in range(3)]
    for name, value in got.items():
        values = [p[name] for p in per]
        want = min(values) if name.endswith("_min") else max(values) if name.endswith("_max") else np.mean(values)
        assert np.isclose(value, want, rtol=1e-6), name
