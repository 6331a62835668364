"""The jobs behind sample_latents, predict_attributes, merge_attributes, plot_attributes, evaluate_direction and
compare_directions: read inputs, call the stage's functions, write."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from facelatent.attributes.config import GeneratedConfig, shard_rows
from facelatent.attributes.edits import measure_edits
from facelatent.attributes.evaluate import summarize
from facelatent.attributes.plots import attributes_figure, edit_strip, end_rows, entanglement_figure, evaluation_figure
from facelatent.attributes.predictors import load_attribute_models, score_images
from facelatent.attributes.sampling import heldout_z, map_latents, sample_ids, shard_z, write_sample_shard
from facelatent.attributes.scoring import merge_shards, predict_shard
from facelatent.devices import pick_device
from facelatent.directions.edit import read_direction
from facelatent.embeddings import load_embedder
from facelatent.embeddings.job import embed_batch
from facelatent.generators import GeneratorSettings, load_generator
from facelatent.grids import render_uint8
from facelatent.store import atomic_write_text, open_checked

log = logging.getLogger(__name__)


def _scorer(names: Sequence[str], mtcnn: str | Path | None, dlib68: str | Path | None, device: str):
    """score_images bound to the predictors and their loaded models: uint8 [B, R, R, 3] -> DataFrame."""
    models = load_attribute_models(list(names), mtcnn_path=mtcnn, dlib68_path=dlib68, device=device)
    return partial(score_images, names=list(names), models=models)


def sample_latents(
    *,
    generator: str | Path,
    generator_settings: Mapping,
    generated: Mapping | GeneratedConfig,
    shard: str,
    output: str | Path,
    device: str = "auto",
) -> dict:
    """Rule sample_latents: shard `shard`'s seeded z mapped to w (the section's truncation), written as latents."""
    cfg = GeneratedConfig.coerce(generated)
    G = load_generator(generator, pick_device(device), expect=generator_settings)
    rows = shard_rows(shard, cfg.samples, cfg.samples_per_shard)
    z = shard_z(cfg.seed, int(shard), len(rows), G.z_dim)
    ws = map_latents(G, z, cfg.truncation_psi, cfg.truncation_cutoff, cfg.batch_size)
    config = {
        "seed": cfg.seed,
        "shard": shard,
        "truncation_psi": cfg.truncation_psi,
        "truncation_cutoff": cfg.truncation_cutoff,
    }
    write_sample_shard(output, sample_ids(rows), z, ws, G, config)
    log.info("shard %s: %d latents (samples %d..%d)", shard, len(rows), rows.start, rows.stop - 1)
    return {"n": len(rows)}


def predict_attributes(
    *,
    generator: str | Path,
    generator_settings: Mapping,
    generated: Mapping | GeneratedConfig,
    latents: str | Path,
    output: str | Path,
    mtcnn: str | Path | None = None,
    dlib68: str | Path | None = None,
    device: str = "auto",
    progress: bool = True,
) -> dict:
    """Rule predict_attributes: render a latent shard batch by batch and score every render (resumable)."""
    cfg = GeneratedConfig.coerce(generated)
    dev = str(pick_device(device))
    G = load_generator(generator, dev, expect=generator_settings)
    scorer = _scorer(cfg.predictors, mtcnn, dlib68, dev)
    noise = GeneratorSettings.coerce(generator_settings).noise_mode
    return predict_shard(G, latents, output, cfg.predictors, scorer, cfg.batch_size, noise, progress)


def merge_attributes(
    *, latents: Sequence[str | Path], scores: Sequence[str | Path], predictors: Sequence[str], output: str | Path
) -> int:
    """Rule merge_attributes: the shards' latents and scores in one file (streamed block by block)."""
    return merge_shards(list(latents), list(scores), predictors, output)


def read_scores(path: str | Path, names: Sequence[str]) -> pd.DataFrame:
    """The merged file's score columns (no latents)."""
    with open_checked(path, "facelatent.latents") as fh:
        return pd.DataFrame({name: fh["labels"][name][()].astype(np.float64) for name in names})


def plot_attributes(
    *,
    generator: str | Path,
    generator_settings: Mapping,
    attributes: str | Path,
    predictors: Sequence[str],
    ends: int,
    out_png: str | Path,
    device: str = "cpu",
) -> None:
    """Rule plot_attributes: each score's histogram with the renders of its `ends` lowest and highest samples."""
    G = load_generator(generator, pick_device(device), expect=generator_settings)
    noise = GeneratorSettings.coerce(generator_settings).noise_mode
    scores = read_scores(attributes, predictors)
    faces = {}
    with open_checked(attributes, "facelatent.latents") as fh:
        for name in predictors:
            low, high = end_rows(scores[name].to_numpy(), ends)
            # h5py reads increasing rows; the renders go back in score order
            faces[name] = tuple(_render_rows(G, fh["w"], rows, noise) for rows in (low, high))
    attributes_figure(scores, faces, out_png)


def _render_rows(G, w, rows: np.ndarray, noise_mode: str) -> np.ndarray:
    if len(rows) == 0:
        return np.zeros((0, G.img_resolution, G.img_resolution, 3), np.uint8)
    order = np.argsort(rows)
    images = render_uint8(G, w[np.sort(rows)], noise_mode)
    return images[np.argsort(order)]


def evaluate_direction(
    *,
    name: str,
    direction: str | Path,
    target: str | None,
    generator: str | Path,
    generator_settings: Mapping,
    generated: Mapping | GeneratedConfig,
    embedder_spec: str | Mapping,
    embedder_weights: str | Path,
    crop: str,
    out_tsv: str | Path,
    out_json: str | Path,
    out_png: str | Path,
    mtcnn: str | Path | None = None,
    dlib68: str | Path | None = None,
    device: str = "auto",
    progress: bool = True,
) -> dict:
    """Rule evaluate_direction: the held-out samples moved along `direction` at each strength, re-rendered,
    re-scored by every predictor and re-embedded by the FR model; long table, summary and figure."""
    cfg = GeneratedConfig.coerce(generated)
    dev = str(pick_device(device))
    G = load_generator(generator, dev, expect=generator_settings)
    noise = GeneratorSettings.coerce(generator_settings).noise_mode
    normal = read_direction(direction, G.num_ws, G.w_dim)
    embedder = load_embedder(embedder_spec, device=dev, weights=embedder_weights)
    scorer = _scorer(cfg.predictors, mtcnn, dlib68, dev)
    strengths = [float(s) for s in cfg.evaluation.strengths]
    z = heldout_z(cfg.seed, cfg.evaluation.samples, G.z_dim)
    ws = map_latents(G, z, cfg.truncation_psi, cfg.truncation_cutoff, cfg.batch_size)
    embed = partial(embed_batch, embedder, crop=crop, device=dev)
    scores, angles, strip = measure_edits(
        G, ws, normal, strengths, scorer, cfg.predictors, embed, cfg.batch_size, noise, progress=progress
    )
    summary = summarize(name, scores, angles, strengths, cfg.predictors, target)
    atomic_write_text(out_tsv, long_table(scores, angles, strengths, cfg.predictors).to_csv(sep="\t", index=False))
    atomic_write_text(out_json, json.dumps(summary, indent=2, default=float) + "\n")
    evaluation_figure(summary, edit_strip(strip) if len(strip) else None, out_png)
    if summary["response"]:
        r = summary["response"]
        log.info("%s: %s rho %.3f, slope %.4g per unit", name, target, r["spearman"], r["slope"])
    log.info("%s: identity drift %.2f deg at the largest strength", name, summary["drift_at_largest_deg"])
    return summary


def long_table(
    scores: np.ndarray, angles: np.ndarray, strengths: Sequence[float], names: Sequence[str]
) -> pd.DataFrame:
    """One row per (strength, held-out sample): every score and the FR angle to the unedited render."""
    s, n = angles.shape
    frame = pd.DataFrame(
        {"strength": np.repeat(np.asarray(strengths, np.float64), n), "sample": np.tile(np.arange(n), s)}
    )
    for j, name in enumerate(names):
        frame[name] = scores[:, :, j].reshape(-1)
    frame["fr_angle_deg"] = angles.reshape(-1)
    return frame


def compare_directions(
    *, summaries: Sequence[str | Path], sources: Mapping[str, str], out_tsv: str | Path, out_png: str | Path
) -> pd.DataFrame:
    """Rule compare_directions: the entanglement matrix (directions x predictors, standardized change per unit
    strength) as a figure, and a table of every direction's target response and identity drift."""
    loaded = [json.loads(Path(p).read_text()) for p in summaries]
    table = pd.DataFrame([comparison_row(s, sources.get(s["direction"], "")) for s in loaded])
    atomic_write_text(out_tsv, table.to_csv(sep="\t", index=False, float_format="%.4g"))
    matrix = entanglement_matrix(loaded)
    entanglement_figure(matrix, out_png, [s["target"] for s in loaded])
    return table


def entanglement_matrix(summaries: Sequence[dict]) -> pd.DataFrame:
    """Directions (rows) x predictors (columns): each predictor's standardized change per unit strength."""
    return pd.DataFrame(
        [{n: e["standardized"] for n, e in s["side_effects"].items()} for s in summaries],
        index=[s["direction"] for s in summaries],
    )


def comparison_row(summary: dict, source: str) -> dict:
    """One direction's line of the comparison table."""
    response = summary["response"] or {}
    others = {n: e["standardized"] for n, e in summary["side_effects"].items() if n != summary["target"]}
    finite = {n: v for n, v in others.items() if v is not None and np.isfinite(v)}
    worst = max(finite, key=lambda n: abs(finite[n])) if finite else ""
    top = max(abs(s) for s in summary["strengths"])
    return {
        "direction": summary["direction"],
        "source": source,
        "target": summary["target"] or "",
        "spearman": response.get("spearman", np.nan),
        "slope": response.get("slope", np.nan),
        "target_standardized": summary["side_effects"].get(summary["target"] or "", {}).get("standardized", np.nan),
        "largest_side_effect": worst,
        "largest_side_effect_standardized": finite.get(worst, np.nan),
        f"drift_deg_at_{top:g}": summary["drift_at_largest_deg"],
    }
