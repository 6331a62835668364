"""The jobs behind fit_direction, fit_pca, render_edits and visible_subspace: read inputs, call the pure functions, write."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from facelatent.directions.svm import (
    DirectionError,
    LabelRule,
    SVMConfig,
    conditional_direction,
    fit_direction,
    pca_directions,
)
from facelatent.latents import read_latents
from facelatent.store import atomic_path, atomic_write_text, read_attrs
from facelatent.directions.visible import VisibleConfig, eigen_subspace, jacobian_gram, plot_spectrum, read_visible, write_visible
from facelatent.generators.base import GeneratorBase
from facelatent.generators.statistics import w_statistics

log = logging.getLogger(__name__)


def save_npy(path: str | Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array)


def save_json(path: str | Path, data: dict) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=float))


def read_planted(planted_npz: str | Path, names: list[str]) -> list[np.ndarray]:
    """Planted demo directions [z_dim] float64, in the order of `names`."""
    with np.load(planted_npz) as truth:
        for planted in names:
            if planted not in truth:
                raise KeyError(f"{planted_npz}: no planted direction '{planted}' (have {sorted(truth.files)})")
        return [truth[planted].astype(np.float64) for planted in names]


def cosine_with(normal: np.ndarray, d: np.ndarray) -> float:
    """Cosine between a fitted W-space normal (W+ rows averaged) and a direction d [z_dim] (DCGAN: W is Z)."""
    n = normal.reshape(-1, d.shape[0]).mean(0).astype(np.float64)
    return float(n @ d / (np.linalg.norm(n) * np.linalg.norm(d)))


def planted_cosine(normal: np.ndarray, planted_npz: str | Path, planted: str) -> float:
    """Cosine between a fitted normal and a planted demo direction."""
    return cosine_with(normal, read_planted(planted_npz, [planted])[0])


def visible_basis(path: str | Path, energy: float, w_dim: int) -> np.ndarray:
    """[w_dim, k] top eigenvectors of the generator's Jacobian Gram carrying `energy` of its trace."""
    basis = read_visible(path, w_dim).top(energy)
    log.info("fitting inside the visible subspace: %d of %d directions (%.0f%% of the image change)",
             basis.shape[1], w_dim, 100 * energy)
    return basis


def fit_direction_job(name: str, inputs: dict, params: dict, out_npy: str | Path, out_json: str | Path) -> dict:
    entry = params["entry"]
    if entry.get("conditional"):
        primal = np.load(inputs["primal"])
        conditions = [np.load(p) for p in (inputs["conditions"] if isinstance(inputs["conditions"], list)
                                           else [inputs["conditions"]])]
        normal = conditional_direction(primal, conditions, name)
        primal_metrics = json.loads(Path(inputs["primal_metrics"]).read_text()) if "primal_metrics" in inputs else {}
        metrics = {"name": name, "conditional": entry["conditional"],
                   **{k: primal_metrics[k] for k in ("dataset", "generator", "space") if k in primal_metrics},
                   "cos_with_primal": float(normal.reshape(-1) @ primal.reshape(-1) / np.linalg.norm(primal)),
                   "cos_with_conditions": [float(normal.reshape(-1) @ c.reshape(-1) / np.linalg.norm(c))
                                           for c in conditions]}
    else:
        w, frame = read_latents(inputs["latents"])
        svm = SVMConfig(**params["svm"])
        energy = params.get("visible_energy", VisibleConfig.energy)
        basis = visible_basis(inputs["visible"], energy, w.shape[2]) if energy < 1 else None
        normal, metrics = fit_direction(name, w, frame, LabelRule(**entry["label"]), svm, space=params["space"],
                                        basis=basis)
        attrs = read_attrs(inputs["latents"], "facelatent.latents")
        metrics.update(dataset=entry["dataset"], generator=attrs["generator"], visible_energy=energy)
    if entry.get("conditional") and "planted" in inputs:
        # the truth: the planted primal with the planted given directions projected out
        cond, names = entry["conditional"], params["planted_of"]
        primal, *given = read_planted(inputs["planted"], [names[cond["primal"]], *(names[g] for g in cond["given"])])
        metrics["planted_cosine"] = cosine_with(normal, conditional_direction(primal, given))
        log.info("%s: cosine with the planted conditional direction = %.4f", name, metrics["planted_cosine"])
    if entry.get("planted") and "planted" in inputs:
        metrics["planted"] = entry["planted"]
        metrics["planted_cosine"] = planted_cosine(normal, inputs["planted"], entry["planted"])
        log.info("%s: cosine with the planted direction '%s' = %.4f", name, entry["planted"], metrics["planted_cosine"])
    save_npy(out_npy, normal)
    save_json(out_json, metrics)
    log.info("%s: %s", name, json.dumps({k: v for k, v in metrics.items() if k in ("n_positive", "n_negative", "cv")}))
    return metrics


def fit_pca_job(latents: str | Path, components: int, space: str, outputs: list[str], info_json: str | Path) -> None:
    w, _ = read_latents(latents)
    comps, info = pca_directions(w, components, space)
    if len(comps) < len(outputs):  # a zero vector in pca_{k}.npy would pass for a direction that edits nothing
        raise DirectionError(f"{latents}: pca.components is {len(outputs)} but {len(w)} latents of "
                             f"dimension {comps.shape[-1]} give only {len(comps)} principal directions")
    for k, path in enumerate(outputs):
        save_npy(path, comps[k])
    save_json(info_json, {**info, "latents": str(latents), "space": space})


def render_edits_job(generator: str | Path, latents: str | Path, direction: str | Path, cfg: dict,
                     out_png: str | Path, title: str = "", expect_generator: Mapping | None = None) -> None:
    """An edit grid; `expect_generator` (the config's `generator:` section) is checked against the checkpoint
    and gives the renders' noise_mode."""
    from facelatent.directions.edit import edit_grid, read_direction
    from facelatent.generators import GeneratorSettings, load_generator

    G = load_generator(generator, expect=expect_generator)
    noise_mode = GeneratorSettings.coerce(expect_generator).noise_mode if expect_generator else "const"
    w, frame = read_latents(latents)
    n = min(cfg["n_sources"], len(w))
    normal = read_direction(direction, w.shape[1], w.shape[2])
    edit_grid(G, w[:n], normal, list(cfg["distances"]), out_png, mode=cfg["mode"],
              row_labels=[str(i) for i in frame["ids"][:n]], title=title, noise_mode=noise_mode)


def visible_subspace_job(G: GeneratorBase, cfg: VisibleConfig, w_avg_samples: int, out_h5: str | Path,
                         out_png: str | Path, generator_info: dict, progress: bool = True) -> dict:
    _, w_std = w_statistics(G, w_avg_samples, G.w_avg.device)
    subspace = eigen_subspace(jacobian_gram(G, w_std, cfg, progress=progress))
    summary = {"w_dim": int(len(subspace.eigenvalues)), "energy": cfg.energy, "rank": subspace.rank(cfg.energy),
               "rank_90": subspace.rank(0.9), "rank_99": subspace.rank(0.99),
               "top_eigenvalues": subspace.eigenvalues[:5].round(6).tolist()}
    write_visible(out_h5, subspace, cfg, generator_info)
    plot_spectrum(subspace, cfg.energy, out_png)
    log.info("visible subspace: %s", json.dumps(summary))
    return summary
