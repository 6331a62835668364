"""The projection encoder: it learns w from the DCGAN's renders, starts projection nearer, refuses other generators."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facelatent.errors import ConfigError, InputFileError
from facelatent.generators import load_generator
from facelatent.generators.statistics import w_statistics
from facelatent.projection.encoder import (
    ConfiguredEncoder,
    EncoderConfig,
    LatentEncoder,
    augment,
    load_encoder,
    save_encoder,
    train_encoder,
)
from facelatent.projection.job import ProjectionConfig, project_aligned
from facelatent.projection.project import render
from facelatent.store import read_table, write_table

CFG = EncoderConfig(samples=2300, heldout=300, steps=250, batch_size=64, learning_rate=2e-3)


@pytest.fixture(scope="module")
def G(dcgan_path):
    torch.set_num_threads(2)
    return load_generator(dcgan_path)


@pytest.fixture(scope="module")
def stats(G):
    return w_statistics(G, 1000, torch.device("cpu"))


@pytest.fixture(scope="module")
def trained(G, stats):
    return train_encoder(G, stats, CFG, progress=False)


def test_encoder_learns_latents_from_renders(trained):
    _, metrics = trained
    # 1.0 is what w_avg scores; the full demo setting (10000 renders, 1000 steps) reaches ~0.7
    assert metrics["heldout_mse"] < 0.9, metrics
    assert metrics["heldout_cosine_median"] > 0.3, metrics


def test_augment_warps_and_greys_a_share():
    images = torch.rand(64, 3, 16, 16) * 2 - 1
    out = augment(images, EncoderConfig(warp_std=0.0, grey_share=0.5), torch.Generator().manual_seed(0))
    grey = (out[:, 0] == out[:, 1]).flatten(1).all(1) & (out[:, 1] == out[:, 2]).flatten(1).all(1)
    assert 16 < int(grey.sum()) < 48
    assert torch.equal(out[~grey], images[~grey])


def write_aligned(path, images, ids):
    write_table(
        path, "facelatent.aligned", {"ids": np.array(ids, dtype=object), "images": images.permute(0, 2, 3, 1).numpy()}
    )


def test_encoder_start_beats_w_avg_and_skips_adam(G, stats, trained, tmp_path):
    encoder = ConfiguredEncoder(trained[0], *stats)
    z = torch.from_numpy(np.random.RandomState(11).randn(8, G.z_dim)).float()
    aligned = tmp_path / "aligned.h5"
    write_aligned(aligned, render(G, G.mapping(z)), [f"i{k}" for k in range(8)])
    base = dict(
        steps=0,
        loss="mse",
        batch_size=8,
        schedule={"w_avg_samples": 1000},
        refine={"iterations": 3, "cg_iterations": 10, "fit_alignment": False},
    )
    plain, started = tmp_path / "plain.h5", tmp_path / "encoder.h5"
    project_aligned(G, aligned, plain, ProjectionConfig(**base), {"name": "dcgan"}, progress=False)
    project_aligned(
        G,
        aligned,
        started,
        ProjectionConfig(**base, init="encoder"),
        {"name": "dcgan"},
        progress=False,
        encoder=encoder,
    )
    a, b = read_table(plain, "facelatent.latents"), read_table(started, "facelatent.latents")
    assert np.median(b["psnr"]) > np.median(a["psnr"]) + 1.0, (a["psnr"], b["psnr"])
    err = lambda t: np.linalg.norm(t["w"][:, 0] - z.numpy(), axis=1).mean()  # noqa: E731
    assert err(b) < err(a), (err(a), err(b))
    assert (b["steps"] == 0).all() and np.isnan(b["loss"]).all()
    with pytest.raises(ConfigError, match="no encoder checkpoint"):
        project_aligned(G, aligned, tmp_path / "x.h5", ProjectionConfig(**base, init="encoder"), {}, progress=False)


def test_checkpoint_round_trip_and_refusals(G, stats, trained, tmp_path):
    path = tmp_path / "encoder.pt"
    save_encoder(path, trained[0], CFG, stats, {"name": "dcgan"}, trained[1])
    assert not list(tmp_path.glob("*.partial"))
    loaded = load_encoder(path, G)
    x = render(G, G.mapping(torch.randn(2, G.z_dim)))
    torch.testing.assert_close(loaded(x), ConfiguredEncoder(trained[0], *stats)(x))
    small = tmp_path / "encoder32.pt"
    save_encoder(small, LatentEncoder(32, 3, G.w_dim), CFG, stats, {}, {})
    with pytest.raises(InputFileError, match=r"encoder32\.pt: encoder for 32px.*the generator is 64px"):
        load_encoder(small, G)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(InputFileError, match=r"junk\.pt: not a readable encoder checkpoint"):
        load_encoder(junk, G)
    with pytest.raises(ValueError, match="projection.init"):
        ProjectionConfig(init="mean")
