"""A small results folder for the editor's tests, in the pipeline's own formats, rendered by the real demo DCGAN:
projected latents with their aligned photos, a synthetic run, fitted / conditional / PCA directions (and one of
another generator's shape, which the editor must skip), plus the demo config pointing at the fetched generator."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import yaml

from facelatent.editor.serve import read_config
from facelatent.generators import load_generator
from facelatent.grids import to_uint8
from facelatent.store import write_table

REPO = Path(__file__).resolve().parents[1]
N_FACES = 4


def unit(rng: np.random.RandomState, dim: int) -> np.ndarray:
    d = rng.randn(dim)
    return d / np.linalg.norm(d)


def make_results(root: Path, generator: Path) -> dict:
    """Write the folder under `root`/results and its config; {results, config, config_path, w, directions}."""
    G = load_generator(generator, "cpu")
    rng = np.random.RandomState(7)
    results = root / "results"
    # projected latents and the aligned photos they reproduce (here: their own renders)
    w = rng.randn(N_FACES, 1, G.w_dim).astype(np.float32)
    ids = np.array([f"face{i:02d}" for i in range(N_FACES)], dtype=object)
    zeros = np.zeros(N_FACES, np.float32)
    write_table(
        results / "latents" / "demo.h5",
        "facelatent.latents",
        {"ids": ids, "w": w, "loss": zeros, "psnr": zeros + 30, "steps": np.zeros(N_FACES, np.int32)},
    )
    with torch.no_grad():
        images = to_uint8(G.synthesis(torch.from_numpy(w)))
    write_table(results / "aligned" / "demo" / "000.h5", "facelatent.aligned", {"ids": ids, "images": images})
    # a synthetic run's references: W vectors, one per identity
    write_table(
        results / "synthetic" / "run1" / "references.h5",
        "facelatent.references",
        {"identity": np.arange(3), "w": rng.randn(3, G.w_dim).astype(np.float32)},
    )
    # directions as fit_direction / fit_pca write them
    folder = results / "directions"
    folder.mkdir(parents=True)
    directions = {name: unit(rng, G.w_dim) for name in ("smile", "happy", "smile_given_happy", "pca_0")}
    metrics = {
        "smile": {"dataset": "demo", "cv": {"accuracy_mean": 0.97}},
        "happy": {"dataset": "demo", "cv": {"accuracy_mean": 0.91}},
        "smile_given_happy": {"conditional": {"primal": "smile", "given": ["happy"]}},
    }
    for name, d in directions.items():
        np.save(folder / f"{name}.npy", d)
        if name in metrics:
            (folder / f"{name}.json").write_text(json.dumps(metrics[name]))
    (folder / "pca.json").write_text(json.dumps({"explained_variance_ratio": [0.25]}))
    np.save(folder / "stale.npy", unit(rng, 7))  # another generator's w_dim
    config = read_config(REPO / "config" / "config.yaml")
    config["generator"]["checkpoint"] = str(generator)
    config_path = root / "config.yaml"
    config_path.write_text(yaml.safe_dump(json.loads(json.dumps(config))))
    return {"results": results, "config": config, "config_path": config_path, "w": w, "directions": directions}
