"""The jobs behind the synthetic rules: read inputs, call the algorithms, write the run's files.

Each takes plain paths and the `synthetic.runs.{run}` config dict (`run_cfg`), so it runs the same from
Snakemake, the tests and the benchmark.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from facelatent.devices import pick_device
from facelatent.embeddings import load_embedder
from facelatent.embeddings.verification import MetricsConfig
from facelatent.errors import ConfigError, FaceLatentError, InputFileError
from facelatent.generators import generator_provenance, load_generator
from facelatent.store import atomic_write_text, content_digest
from facelatent.synthetic.config import RunConfig, part_identities
from facelatent.synthetic.disco import covariate_directions
from facelatent.synthetic.dispersion import run_dispersion
from facelatent.synthetic.face_gate import FaceGate, check_faces
from facelatent.synthetic.files import (
    FaceTable,
    augmentation_label,
    iter_samples,
    merge_stats_files,
    read_part_faces,
    read_reference_embeddings,
    read_references,
    read_sample_attrs,
    read_sample_embeddings,
    read_stats_file,
    write_references,
    write_variations,
)
from facelatent.synthetic.files import merge_samples as merge_sample_files
from facelatent.synthetic.imagery import crop_grid, merge_manifests, read_grid_manifest, under, write_manifest
from facelatent.synthetic.imagery import render_crops as render_crop_files
from facelatent.synthetic.langevin import run_langevin
from facelatent.synthetic.plots import angle_histograms, plot_histograms, plot_stats, verification
from facelatent.synthetic.progress import CheckpointFile
from facelatent.synthetic.references import random_references, reject_references, sample_latents
from facelatent.synthetic.render import FacePipeline, cpu_generator

# rules measure_variation and plot_variation: their jobs live beside the variation tables they write
from facelatent.synthetic.variation_report import measure_variation, plot_variation  # noqa: F401

log = logging.getLogger(__name__)


def load_pipeline(
    generator_path: str | Path,
    run: RunConfig,
    device: str | torch.device | None = None,
    embedder_weights: str | Path | None = None,
    generator_settings: Mapping | None = None,
) -> tuple[FacePipeline, dict, dict]:
    """The frozen W -> embedding chain of a run, with the generator and embedder facts files record.

    `embedder_weights`: the FR weights file the rule declares (`run.embedder` then gives the kind);
    `generator_settings` (the config's `generator:` section) is checked against the checkpoint.
    """
    device = pick_device(run.device) if device is None else torch.device(device)
    G = load_generator(generator_path, device=device, expect=generator_settings)
    embedder = load_embedder(run.embedder, device=device, weights=embedder_weights)
    pipe = FacePipeline(G, embedder, crop=run.crop, noise_mode=run.noise_mode, batch_size=run.batch_size)
    return pipe, generator_provenance(G), embedder.describe()


def load_obstacles(path: str | Path, embedder_info: Mapping | None = None) -> torch.Tensor:
    """Fixed embeddings [M, D]: a .npy array, or the reference rows of a facelatent references/samples file
    (which must come from the same FR model as this run)."""
    path = Path(path)
    if path.suffix == ".npy":
        if not path.exists():
            raise InputFileError(path, "file does not exist")
        arr = np.load(path)
        if arr.ndim != 2:
            raise InputFileError(path, f"obstacle embeddings must be [M, D], got {list(arr.shape)}")
        return torch.from_numpy(arr.astype(np.float32))
    try:
        embedding, attrs = read_reference_embeddings(path)
    except InputFileError:
        table, attrs = read_references(path)
        embedding = table.embedding
    if embedder_info is not None:
        _check_same_embedder(path, attrs.get("embedder", {}), embedder_info)
    return torch.from_numpy(embedding.astype(np.float32))


def _check_same_embedder(path: str | Path, found: Mapping, expected: Mapping) -> None:
    keys = ("kind", "embedding_dim", "checkpoint_sha256")
    if any(found.get(k) != expected.get(k) for k in keys if found.get(k) and expected.get(k)):
        raise InputFileError(
            path,
            f"made with embedder {dict((k, found.get(k)) for k in keys)}, "
            f"this run uses {dict((k, expected.get(k)) for k in keys)}",
        )


def langevin_inputs(embedder_info: Mapping, obstacles: torch.Tensor | None) -> dict[str, str]:
    """The resume-key parts of a Langevin run besides its config and generator: FR weights, obstacle embeddings."""
    embedder = embedder_info.get("checkpoint_sha256") or content_digest(json.dumps(dict(embedder_info), sort_keys=True))
    return {
        "embedder": str(embedder),
        "obstacles": "none" if obstacles is None else content_digest(obstacles.detach().cpu().numpy()),
    }


def make_face_gate(pipe: FacePipeline, run: RunConfig, mtcnn_weights: str | Path | None) -> FaceGate | None:
    """The run's face gate on the pipeline's device (None when `references.face_gate.enabled` is false)."""
    cfg = run.references.face_gate
    if not cfg.enabled:
        return None
    if mtcnn_weights is None:
        raise ConfigError(
            "config key 'synthetic.runs.<run>.references.face_gate.enabled': the face gate needs the MTCNN weights "
            "(resources/models/mtcnn.safetensors, the rule's input 'mtcnn')"
        )
    from facelatent.detect.mtcnn import MTCNN

    detector = MTCNN(device=pipe.device, weights=mtcnn_weights)
    return FaceGate(pipe, detector, cfg, run.seed, run.truncation_psi, run.num_identities)


def gate_columns(gate: FaceGate | None, pipe: FacePipeline, w: np.ndarray) -> tuple[dict, dict | None]:
    """references.h5's face gate columns and summary, from a last check of the stored latents."""
    if gate is None:
        return {}, None
    checks = check_faces(pipe, gate.detector, torch.from_numpy(w).to(pipe.device), gate.cfg)
    if not checks.passed.all():
        raise FaceLatentError(f"face gate: references {np.flatnonzero(~checks.passed).tolist()} fail after gating")
    columns = {
        "face_redraws": gate.redraws,
        "face_confidence": checks.confidence.astype(np.float32),
        "face_landmark_error": checks.error.astype(np.float32),
    }
    log.info("face gate: %d redraw(s) over %d identities", int(gate.redraws.sum()), int((gate.redraws > 0).sum()))
    return columns, gate.summary()


def create_references(
    *,
    generator: str | Path,
    run_cfg: Mapping,
    out_path: str | Path,
    obstacles_path: str | Path | None = None,
    embedder_weights: str | Path | None = None,
    generator_settings: Mapping | None = None,
    device: str | None = None,
    mtcnn_weights: str | Path | None = None,
) -> dict:
    """Rule create_references: references.h5 by `langevin` (resumable), `random` or `reject`; returns the first/last
    stats. `device` None: the run's `device`; `mtcnn_weights`: the face gate's detector (needed when it is on)."""
    run = RunConfig.from_dict(run_cfg)
    pipe, generator_info, embedder_info = load_pipeline(
        generator, run, device, embedder_weights=embedder_weights, generator_settings=generator_settings
    )
    refs = run.references
    n, identity = run.num_identities, np.arange(run.num_identities)
    config = run.as_dict()
    gate = make_face_gate(pipe, run, mtcnn_weights)
    if refs.algorithm == "random":
        out = random_references(pipe, n, run.truncation_psi, run.seed)
        z, w, e, stats = out.z, out.w, out.embedding, out.stats
        if gate is not None:
            gated = gate.enforce(torch.from_numpy(w).to(pipe.device), "on the random draws")
            z = None if gate.redraws.any() else z  # a redrawn row's z is not stored; keep the columns consistent
            w, e = gated.cpu().numpy(), pipe.embed_all(gated).cpu().numpy()
    elif refs.algorithm == "reject":
        face_ok = None if gate is None else gate.accepts
        out = reject_references(pipe, n, refs.ict, run.truncation_psi, run.seed, refs.max_candidates, face_ok=face_ok)
        z, w, e, stats = out.z, out.w, out.embedding, out.stats
    else:
        obstacles = load_obstacles(obstacles_path, embedder_info).to(pipe.device) if obstacles_path else None
        lcfg = refs.langevin
        lcfg.ict = refs.ict
        gen = cpu_generator(run.seed)
        _, w0 = sample_latents(pipe, n, run.truncation_psi, gen)
        checkpoints = CheckpointFile(
            out_path, "facelatent.references", config, generator_info, langevin_inputs(embedder_info, obstacles)
        )
        result = run_langevin(pipe, w0, lcfg, gen, obstacles, checkpoints, gate)
        z, w, e, stats = None, result.w.cpu().numpy(), result.embeddings.cpu().numpy(), result.stats
    columns, gate_summary = gate_columns(gate, pipe, w)
    write_references(
        out_path,
        identity,
        w,
        e,
        z,
        stats,
        refs.algorithm,
        embedder_info,
        generator_info,
        config,
        columns,
        gate_summary,
    )
    summary = {k: (float(v[0]), float(v[-1])) for k, v in stats.items() if k in ("dist_min", "prop_ict", "dist_avg")}
    for k, (first, last) in summary.items():
        log.info("%s: iteration 0 %.4f -> final %.4f", k, first, last)
    return summary


def covariate_paths(directions: Sequence[str | Path], names: Sequence[str]) -> dict[str, Path]:
    """Map each configured covariate name to its `{name}.npy` among the rule's direction inputs."""
    by_name = {Path(p).stem: Path(p) for p in directions}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise InputFileError(f"results/directions/{missing[0]}.npy", "covariate direction is not among the inputs")
    return {n: by_name[n] for n in names}


def create_variations(
    *,
    generator: str | Path,
    references_path: str | Path,
    run_cfg: Mapping,
    part: str,
    out_path: str | Path,
    directions: Sequence[str | Path] = (),
    embedder_weights: str | Path | None = None,
    generator_settings: Mapping | None = None,
    device: str | None = None,
) -> dict:
    """Rule create_variations: variations/{part}.h5, Dispersion or DisCo variations of one block of identities
    (`directions`: DisCo's covariate normals). `device` None: the run's `device`."""
    run = RunConfig.from_dict(run_cfg)
    pipe, generator_info, embedder_info = load_pipeline(
        generator, run, device, embedder_weights=embedder_weights, generator_settings=generator_settings
    )
    refs, ref_attrs = read_references(references_path)
    _check_same_embedder(references_path, ref_attrs.get("embedder", {}), embedder_info)
    ids = part_identities(part, run.num_identities, run.variations.identities_per_part)
    rows = [int(np.flatnonzero(refs.identity == i)[0]) if np.any(refs.identity == i) else -1 for i in ids]
    if min(rows, default=0) < 0:
        raise InputFileError(references_path, f"identity {ids[rows.index(-1)]} of part {part} is missing")
    dcfg = run.variations.dispersion
    dcfg.ict = run.references.ict
    covariates = None
    if run.variations.algorithm == "disco":
        paths = covariate_paths(directions, run.variations.covariates)
        covariates = covariate_directions(
            paths, pipe.w_dim, run.variations.covariate_scaling, run.variations.covariate_magnitudes
        )
    result = run_dispersion(
        pipe, torch.from_numpy(refs.w[rows]), torch.from_numpy(refs.embedding[rows]), ids, dcfg, run.seed, covariates
    )
    a = dcfg.num_augmentations
    table = FaceTable(
        np.repeat(np.asarray(ids, np.int64), a),
        np.array([augmentation_label(k) for _ in ids for k in range(a)], dtype=object),
        result.w.reshape(len(ids) * a, -1).cpu().numpy(),
        result.embeddings.reshape(len(ids) * a, -1).cpu().numpy(),
    )
    write_variations(
        out_path,
        table,
        result.stats,
        part,
        len(ids),
        a,
        run.variations.algorithm,
        embedder_info,
        generator_info,
        run.as_dict(),
    )
    return {
        k: (float(v[0]), float(v[-1])) for k, v in result.stats.items() if k in ("ref_dist_max", "prop_ref", "w2wd_avg")
    }


def merge_samples(*, references: str | Path, parts: Sequence[str | Path], out_path: str | Path) -> int:
    """Rule merge_samples: references + variation parts -> one columnar samples.h5; returns its row count."""
    return merge_sample_files(references, list(parts), out_path)


def merge_stats(*, references: str | Path, parts: Sequence[str | Path], out_path: str | Path) -> None:
    """Rule merge_stats: the references' stats and the variation parts' stats merged into stats.h5."""
    merge_stats_files(references, list(parts), out_path)


def render_crops(
    *,
    generator: str | Path,
    references_path: str | Path,
    run_cfg: Mapping,
    out_dir: str | Path,
    manifest_path: str | Path,
    variations_path: str | Path | None = None,
    embedder_weights: str | Path | None = None,
    generator_settings: Mapping | None = None,
    device: str | None = None,
) -> int:
    """Rule render_crops: an ArcFace 112x112 PNG per face of one variation part (its variations and its
    identities' references; `variations_path` None: every reference) under `out_dir`, written as a whole folder,
    plus its TSV manifest with paths relative to `out_dir`'s parent (`<part>/<identity>/<label>.png`).
    Returns the count."""
    pipe, _, _ = load_pipeline(
        generator,
        RunConfig.from_dict(run_cfg),
        device,
        embedder_weights=embedder_weights,
        generator_settings=generator_settings,
    )
    table = read_part_faces(references_path, variations_path)
    manifest = render_crop_files(pipe, table, out_dir)
    write_manifest(under(manifest, Path(out_dir).name), manifest_path)
    return len(manifest)


def merge_crops(*, manifests: Sequence[str | Path], out_path: str | Path) -> int:
    """Rule merge_crops: the part manifests concatenated, in part order, into the run's crops.tsv (paths
    relative to the crops folder); returns its row count."""
    rows = merge_manifests(list(manifests), out_path)
    log.info("merged %d crops from %d part manifest(s)", rows, len(manifests))
    return rows


def export_synthetics(
    *,
    samples: str | Path,
    stats: str | Path,
    run_cfg: Mapping,
    out_samples: str | Path,
    out_reference_stats: str | Path,
    out_variation_stats: str | Path,
    block_size: int = 4096,
) -> None:
    """Rule export_synthetics: the Idiap layouts, a SampleCollection (written from `block_size`-row blocks of
    samples.h5: 4096 rows of 512-d w, embedding and z are 24 MiB) and the two original-layout stats files."""
    from facelatent.synthetic.export import export_sample_collection, export_stats

    run = RunConfig.from_dict(run_cfg)
    attrs = read_sample_attrs(samples)
    generator = attrs.get("generator", {})
    embedder = attrs.get("embedder", {})
    network_type = run.network_type or str(generator.get("kind", "unknown"))
    embedding_type = str(embedder.get("kind", "unknown"))
    export_sample_collection(iter_samples(samples, block_size), out_samples, network_type, embedding_type)
    groups = read_stats_file(stats)
    langevin_rows = run.references.langevin.iterations if run.references.algorithm == "langevin" else None
    export_stats(groups.get("references", {}), out_reference_stats, langevin_rows)
    export_stats(groups.get("variations", {}), out_variation_stats, run.variations.dispersion.iterations)


def plot_synthetic(
    *,
    samples: str | Path,
    stats: str | Path,
    manifest: str | Path,
    crops_dir: str | Path,
    run_cfg: Mapping,
    out_histograms: str | Path,
    out_stats: str | Path,
    out_grid: str | Path,
    out_metrics: str | Path,
    metrics_config: Mapping | None = None,
) -> dict:
    """Rule plot_synthetic: angle histograms, stats over iterations, the crops grid and the verification metrics
    (pair scores counted in bounded memory as `metrics_config` says)."""
    run = RunConfig.from_dict(run_cfg)
    table = read_sample_embeddings(samples)  # the metrics need identity, label and embedding only
    lines = {"ICT": run.references.ict}
    if run.references.algorithm == "langevin":
        lines["r0"] = run.references.langevin.repulsion_radius
    if run.variations.algorithm != "none":
        lines["reference angle"] = run.variations.dispersion.reference_angle
    metrics_cfg = MetricsConfig.from_dict(metrics_config)
    sets = angle_histograms(table, metrics_cfg)
    plot_histograms(sets, out_histograms, lines)
    plot_stats(read_stats_file(stats), out_stats)
    grid_rows = read_grid_manifest(manifest, run.grid_identities, run.grid_variations)
    crop_grid(grid_rows, crops_dir, out_grid, run.grid_identities, run.grid_variations)
    metrics = verification(table, sets, metrics_cfg)
    atomic_write_text(out_metrics, json.dumps(metrics, indent=2, sort_keys=True))
    log.info(
        "verification on %d faces of %d identities: EER %.4f, rank-1 own reference %.3f",
        metrics["num_faces"],
        metrics["num_identities"],
        metrics["eer"],
        metrics["rank1_own_reference"],
    )
    print(
        f"EER = {metrics['eer']:.4f} (genuine = same identity, {metrics['n_genuine']} genuine / "
        f"{metrics['n_impostor']} impostor pairs)"
    )
    return metrics
