"""The jobs behind fit_direction, fit_pca, render_edits and visible_subspace: read inputs, call the pure functions,
write."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from facelatent.devices import pick_device
from facelatent.directions.svm import DirectionError, LabelRule, SVMConfig, conditional_direction, pca_directions
from facelatent.directions.svm import fit_direction as fit_svm_direction
from facelatent.directions.visible import (
    VisibleConfig,
    eigen_subspace,
    jacobian_gram,
    plot_spectrum,
    read_visible,
    write_visible,
)
from facelatent.generators import GeneratorSettings, generator_provenance, load_generator
from facelatent.generators.statistics import w_statistics
from facelatent.latents import read_first_latents, read_latents
from facelatent.store import atomic_path, atomic_write_text, read_attrs

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
    log.info(
        "fitting inside the visible subspace: %d of %d directions (%.0f%% of the image change)",
        basis.shape[1],
        w_dim,
        100 * energy,
    )
    return basis


def fit_direction(
    *,
    name: str,
    entry: Mapping,
    out_npy: str | Path,
    out_json: str | Path,
    latents: str | Path | None = None,
    attributes: str | Path | None = None,
    visible: str | Path | None = None,
    primal: str | Path | None = None,
    conditions: str | Path | Sequence[str | Path] = (),
    primal_metrics: str | Path | None = None,
    planted: str | Path | None = None,
    planted_of: Mapping[str, str | None] | None = None,
    svm: Mapping | None = None,
    visible_energy: float = 1.0,
    space: str = "w",
) -> dict:
    """Rule fit_direction: an SVM normal (or a conditional one) -> `out_npy` + its metrics in `out_json`.

    `entry`: the direction's config entry. A plain direction reads `latents` (and, with `visible_energy` < 1,
    the `visible` subspace) and fits with `svm` (the `direction_fitting:` section) in `space`; a generated one
    (`source: generated`) reads only the chosen rows of `attributes` (merge_attributes' file); a conditional one
    reads the `primal` and `conditions` normals and the primal's metrics. `planted`: the demo's planted
    directions, compared by cosine (`planted_of`: the planted name of each direction in a conditional entry).
    """
    if entry.get("conditional"):
        primal_normal = np.load(primal)
        given = [np.load(p) for p in ([conditions] if isinstance(conditions, (str, Path)) else list(conditions))]
        normal = conditional_direction(primal_normal, given, name)
        primal_facts = json.loads(Path(primal_metrics).read_text()) if primal_metrics else {}
        metrics = {
            "name": name,
            "conditional": entry["conditional"],
            **{k: primal_facts[k] for k in ("dataset", "generator", "space") if k in primal_facts},
            "cos_with_primal": float(normal.reshape(-1) @ primal_normal.reshape(-1) / np.linalg.norm(primal_normal)),
            "cos_with_conditions": [float(normal.reshape(-1) @ c.reshape(-1) / np.linalg.norm(c)) for c in given],
        }
    elif entry.get("source") == "generated":
        from facelatent.attributes.fit import fit_generated

        normal, metrics = fit_generated(name, attributes, LabelRule(**entry["label"]), SVMConfig(**(svm or {})), space)
    else:
        w, frame = read_latents(latents)
        svm_cfg = SVMConfig(**(svm or {}))
        energy = visible_energy
        basis = visible_basis(visible, energy, w.shape[2]) if energy < 1 else None
        normal, metrics = fit_svm_direction(
            name, w, frame, LabelRule(**entry["label"]), svm_cfg, space=space, basis=basis
        )
        attrs = read_attrs(latents, "facelatent.latents")
        metrics.update(dataset=entry["dataset"], generator=attrs["generator"], visible_energy=energy)
    if entry.get("conditional") and planted is not None:
        # the truth: the planted primal with the planted given directions projected out
        cond, names = entry["conditional"], planted_of or {}
        truth_primal, *truth_given = read_planted(planted, [names[cond["primal"]], *(names[g] for g in cond["given"])])
        metrics["planted_cosine"] = cosine_with(normal, conditional_direction(truth_primal, truth_given))
        log.info("%s: cosine with the planted conditional direction = %.4f", name, metrics["planted_cosine"])
    if entry.get("planted") and planted is not None:
        metrics["planted"] = entry["planted"]
        metrics["planted_cosine"] = planted_cosine(normal, planted, entry["planted"])
        log.info("%s: cosine with the planted direction '%s' = %.4f", name, entry["planted"], metrics["planted_cosine"])
    save_npy(out_npy, normal)
    save_json(out_json, metrics)
    log.info("%s: %s", name, json.dumps({k: v for k, v in metrics.items() if k in ("n_positive", "n_negative", "cv")}))
    return metrics


def fit_pca(
    *, latents: str | Path, components: int, space: str, normals: Sequence[str | Path], info_json: str | Path
) -> None:
    """Rule fit_pca: GANSpace-style principal directions of a latent set -> `normals` (pca_{k}.npy) + `info_json`."""
    w, _ = read_latents(latents)
    comps, info = pca_directions(w, components, space)
    if len(comps) < len(normals):  # a zero vector in pca_{k}.npy would pass for a direction that edits nothing
        raise DirectionError(
            f"{latents}: pca.components is {len(normals)} but {len(w)} latents of "
            f"dimension {comps.shape[-1]} give only {len(comps)} principal directions"
        )
    for k, path in enumerate(normals):
        save_npy(path, comps[k])
    save_json(info_json, {**info, "latents": str(latents), "space": space})


def render_edits(
    *,
    generator: str | Path,
    latents: str | Path,
    direction: str | Path,
    n_sources: int,
    distances: Sequence[float],
    mode: str,
    out_png: str | Path,
    title: str = "",
    generator_settings: Mapping | None = None,
    device: str = "cpu",
) -> None:
    """Rule render_edits: the first `n_sources` latents moved along `direction` to `distances` (`mode` absolute or
    relative), rendered as a grid; `generator_settings` (the config's `generator:` section) is checked against the
    checkpoint and gives the renders' noise_mode."""
    from facelatent.directions.edit import edit_grid, read_direction

    G = load_generator(generator, pick_device(device), expect=generator_settings)
    noise_mode = GeneratorSettings.coerce(generator_settings).noise_mode if generator_settings else "const"
    w, ids = read_first_latents(latents, n_sources)  # a generated set can hold 500,000 latents: read only the rows
    normal = read_direction(direction, w.shape[1], w.shape[2])
    edit_grid(
        G,
        w,
        normal,
        list(distances),
        out_png,
        mode=mode,
        row_labels=ids,
        title=title,
        noise_mode=noise_mode,
    )


def visible_subspace(
    *,
    generator: str | Path,
    visible: Mapping | VisibleConfig,
    w_avg_samples: int,
    out_h5: str | Path,
    out_png: str | Path,
    generator_settings: Mapping | None = None,
    device: str = "auto",
    progress: bool = True,
) -> dict:
    """Rule visible_subspace: the eigenbasis of the generator's Jacobian Gram (`out_h5`) and its spectrum
    (`out_png`); `visible`: the `visible_subspace:` config section."""
    G = load_generator(generator, pick_device(device), expect=generator_settings)
    cfg = visible if isinstance(visible, VisibleConfig) else VisibleConfig(**visible)
    _, w_std = w_statistics(G, w_avg_samples, G.w_avg.device)
    subspace = eigen_subspace(jacobian_gram(G, w_std, cfg, progress=progress))
    summary = {
        "w_dim": int(len(subspace.eigenvalues)),
        "energy": cfg.energy,
        "rank": subspace.rank(cfg.energy),
        "rank_90": subspace.rank(0.9),
        "rank_99": subspace.rank(0.99),
        "top_eigenvalues": subspace.eigenvalues[:5].round(6).tolist(),
    }
    write_visible(out_h5, subspace, cfg, generator_provenance(G))
    plot_spectrum(subspace, cfg.energy, out_png)
    log.info("visible subspace: %s", json.dumps(summary))
    return summary
