"""Shared fixtures: fetched models, the repository root, a small thread budget per worker."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"

# pytest-xdist runs one worker per core: one torch thread each avoids oversubscription
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)


def fetched_model(name: str) -> Path:
    """Path of a model fetched by `facelatent fetch-models` (the README's test command runs it first)."""
    from facelatent.fetch import fetch_model, model_filename

    path = REPO / "resources" / "models" / model_filename(name)
    if not path.exists():
        fetch_model(name, path)
    return path


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def dcgan_path() -> Path:
    return fetched_model("dcgan_digiface64")


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory, dcgan_path) -> Path:
    """The demo fixture datasets at the demo config's sizes (generated once per test session)."""
    from facelatent.demo_data import make_demo_data

    root = tmp_path_factory.mktemp("demo")
    make_demo_data(
        root,
        generator_path=dcgan_path,
        seed=0,
        sizes={"ckplus_subjects": 24, "multipie_subjects": 8, "ffhq_images": 10},
    )
    return root


def ground_truth_latents(demo_root: Path, dataset: str, ids) -> np.ndarray:
    """The planted (true) latents of fixture images, [N, 1, z_dim], in the order of `ids`."""
    import h5py
    import numpy as np

    with h5py.File(demo_root / "ground_truth" / "latents.h5", "r") as fh:
        known = [i.decode() if isinstance(i, bytes) else i for i in fh[f"{dataset}/ids"][()]]
        z = fh[f"{dataset}/z"][()]
    lookup = dict(zip(known, z, strict=True))
    return np.stack([lookup[i] for i in ids])[:, None, :].astype(np.float32)


@pytest.fixture(scope="session")
def true_latents_file(demo_root, tmp_path_factory):
    """A merged latents file for a demo dataset built from the planted latents (no projection)."""
    import numpy as np

    from facelatent.datasets import index_and_shard
    from facelatent.latents import merge_latent_shards
    from facelatent.store import write_table

    cache: dict[str, Path] = {}

    def make(dataset: str, **options) -> Path:
        if dataset in cache:
            return cache[dataset]
        out = tmp_path_factory.mktemp(f"latents_{dataset}")
        df = index_and_shard(dataset, demo_root / dataset, out / "index.tsv", out / "shards.tsv", 100000, **options)
        ids = df["id"].astype(str).to_numpy()
        w = ground_truth_latents(demo_root, dataset, ids)
        n = len(ids)
        write_table(
            out / "shard.h5",
            "facelatent.latents",
            {
                "ids": ids,
                "w": w,
                "loss": np.zeros(n, np.float32),
                "psnr": np.zeros(n, np.float32),
                "steps": np.zeros(n, np.int32),
            },
            generator={"name": "planted"},
        )
        merge_latent_shards([out / "shard.h5"], out / "index.tsv", out / "latents.h5")
        cache[dataset] = out / "latents.h5"
        return cache[dataset]

    return make
