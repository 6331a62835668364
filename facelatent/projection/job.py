"""The projection jobs: project_shard (one resumable shard: an aligned shard in, a latents shard out),
merge_latents and train_encoder.

Progress lives inside `<out>.partial`: finished batches' results, and the in-flight batch's
full optimiser state (latents, noise, Adam moments, step, per-image RNG and stop steps) every K
steps; during the optional Levenberg-Marquardt refinement, Adam's result and the refinement's
unknowns. A rerun after a kill continues from there when the resume key matches (the config, the
generator's sha256, the aligned ids and images, the encoder); the file is renamed to `<out>` only
when complete.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

import h5py
import numpy as np
import torch

from facelatent.checkpoints import file_sha256
from facelatent.config import loss_terms
from facelatent.devices import pick_device
from facelatent.errors import ConfigError
from facelatent.generators import generator_provenance, load_generator
from facelatent.generators.base import GeneratorBase
from facelatent.generators.statistics import w_statistics
from facelatent.latents import merge_latent_shards, reconstruction_grid
from facelatent.projection.config import ProjectionConfig, micro_batch_for
from facelatent.projection.encoder import ConfiguredEncoder, EncoderConfig, load_encoder, save_encoder
from facelatent.projection.encoder import train_encoder as train_encoder_network
from facelatent.projection.losses import as_grey_where, grey_targets
from facelatent.projection.project import ProjectionState, Schedule, project, psnr, render
from facelatent.projection.refine import RefineConfig, RefineState, refine
from facelatent.store import (
    atomic_h5,
    content_digest,
    open_checked,
    open_resumable_h5,
    write_column,
)

log = logging.getLogger(__name__)


def schedule_kwargs(cfg: ProjectionConfig, device: str | torch.device = "cpu", resolution: int = 0) -> dict:
    """`projection.schedule` for `project`, with micro_batch null (the schema default) set by `micro_batch_for`."""
    micro_batch = micro_batch_for(
        cfg.batch_size, cfg.schedule.get("micro_batch"), torch.device(device).type, resolution
    )
    return {**cfg.schedule, "micro_batch": micro_batch}


def read_aligned(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """ids [N] and uint8 images [N, C, R, R] from an aligned shard (stored [N, R, R, C])."""
    with open_checked(path, "facelatent.aligned") as fh:
        ids = np.array([i.decode() if isinstance(i, bytes) else i for i in fh["ids"][()]], dtype=object)
        images = fh["images"][()]
    return ids, np.ascontiguousarray(images.transpose(0, 3, 1, 2))


# ---- the partial file: finished batches + in-flight optimiser state -------------------


def _save_state(fh: h5py.File, batch_index: int, state: ProjectionState) -> None:
    if "state" in fh:
        del fh["state"]
    g = fh.create_group("state")
    g.attrs["batch_index"] = batch_index
    g.attrs["step"] = state.step
    g.create_dataset("w_opt", data=state.w_opt.numpy())
    for i, n in enumerate(state.noise):
        g.create_dataset(f"noise_{i}", data=n.numpy())
    g.create_dataset("rng", data=torch.stack(state.rng_states).numpy())
    g.create_dataset("losses", data=state.losses.numpy())
    g.create_dataset("done", data=state.done.numpy())
    g.create_dataset("stable", data=state.stable_steps.numpy())
    g.create_dataset("steps", data=state.steps_taken.numpy())
    adam = g.create_group("adam")
    adam.attrs["param_groups"] = json.dumps(state.adam["param_groups"])
    for idx, slot in state.adam["state"].items():
        for key, value in slot.items():
            adam.create_dataset(f"{idx}/{key}", data=torch.as_tensor(value).numpy())


def _load_state(fh: h5py.File) -> tuple[int, ProjectionState]:
    g = fh["state"]
    n_noise = sum(1 for k in g if k.startswith("noise_"))
    adam_state = {
        int(idx): {k: torch.as_tensor(np.asarray(v[()])) for k, v in slot.items()} for idx, slot in g["adam"].items()
    }
    adam = {"state": adam_state, "param_groups": json.loads(g["adam"].attrs["param_groups"])}
    state = ProjectionState(
        step=int(g.attrs["step"]),
        w_opt=torch.from_numpy(g["w_opt"][()]),
        noise=[torch.from_numpy(g[f"noise_{i}"][()]) for i in range(n_noise)],
        adam=adam,
        rng_states=[torch.from_numpy(r) for r in g["rng"][()]],
        losses=torch.from_numpy(g["losses"][()]),
        done=torch.from_numpy(g["done"][()]),
        stable_steps=torch.from_numpy(g["stable"][()]),
        steps_taken=torch.from_numpy(g["steps"][()]),
    )
    return int(g.attrs["batch_index"]), state


def _save_refine_state(fh: h5py.File, batch_index: int, adam: dict[str, np.ndarray], state: RefineState | None) -> None:
    """Adam's result for the batch (so a kill during refinement does not redo it) and the refinement so far."""
    if "refine_state" not in fh:
        g = fh.create_group("refine_state")
        g.attrs["batch_index"] = batch_index
        for key, value in adam.items():
            g.create_dataset(key, data=value)
    g = fh["refine_state"]
    if state is not None:
        g.attrs["iteration"] = state.iteration
        for key, value in (("params", state.params), ("damping", state.damping)):
            if key in g:
                del g[key]
            g.create_dataset(key, data=value.numpy())


def _load_refine_state(fh: h5py.File) -> tuple[int, dict[str, np.ndarray], RefineState | None]:
    g = fh["refine_state"]
    adam = {key: g[key][()] for key in ("w", "loss", "steps")}
    state = None
    if "params" in g:
        state = RefineState(
            int(g.attrs["iteration"]), torch.from_numpy(g["params"][()]), torch.from_numpy(g["damping"][()])
        )
    return int(g.attrs["batch_index"]), adam, state


def loss_networks_digest(cfg: ProjectionConfig, facenet_weights: str | Path | None) -> str:
    """sha256 of the feature networks the loss reads (VGG16, FaceNet); '' for pixel losses."""
    files = {"lpips_vgg16": cfg.vgg16_path, "facenet": facenet_weights}  # loss term -> the network it reads
    terms = loss_terms(cfg.loss)
    return "+".join(file_sha256(path) for term, path in files.items() if path and term in terms)


def resume_key(
    cfg: ProjectionConfig,
    G: GeneratorBase,
    generator_info: dict,
    ids: np.ndarray,
    images: np.ndarray,
    encoder: ConfiguredEncoder | None = None,
    facenet_weights: str | Path | None = None,
) -> dict[str, str]:
    """What a partial file's finished batches depend on: config, generator weights, aligned input, encoder,
    and the loss's feature networks."""
    generator = getattr(G, "checkpoint_sha256", "") or str(generator_info.get("sha256", ""))
    if not generator:  # a generator built in memory: hash its weights
        generator = content_digest(*(t.cpu().numpy() for t in G.state_dict().values()))
    start = (
        "w_avg"
        if encoder is None
        else content_digest(
            encoder.w_avg.cpu().numpy(),
            np.float64(encoder.sigma),
            *(t.cpu().numpy() for t in encoder.network.state_dict().values()),
        )
    )
    return {
        "config": cfg.digest(),
        "generator": generator,
        "input": content_digest(ids, images),
        "encoder": start,
        "loss_networks": loss_networks_digest(cfg, facenet_weights),
    }


def _open_progress(path: Path, n: int, G: GeneratorBase, key: dict[str, str]) -> h5py.File:
    """The partial file to resume (same resume key and row count), or a fresh one."""
    fh, resumed = open_resumable_h5(path, key, lambda fh: fh["w"].shape == (n, G.num_ws, G.w_dim))
    if resumed:
        return fh
    fh.create_dataset("w", shape=(n, G.num_ws, G.w_dim), dtype=np.float32)
    fh.create_dataset("loss", shape=(n,), dtype=np.float32)
    fh.create_dataset("psnr", shape=(n,), dtype=np.float32)
    fh.create_dataset("steps", shape=(n,), dtype=np.int32)
    fh.create_dataset("warp", shape=(n, 4), dtype=np.float32)
    fh.create_dataset("psnr_aligned", shape=(n,), dtype=np.float32)
    fh.create_dataset("batch_done", data=np.zeros(max(1, n), dtype=bool))
    fh.flush()
    return fh


def project_aligned(
    G: GeneratorBase,
    aligned_path: str | Path,
    out_path: str | Path,
    cfg: ProjectionConfig,
    generator_info: dict,
    progress: bool = True,
    encoder: ConfiguredEncoder | None = None,
    facenet_weights: str | Path | None = None,
) -> dict:
    """Project every image of an aligned shard, resumably; returns summary figures.

    `facenet_weights`: the FaceNet weights file for a `facenet` loss term (the rule's declared input).

    With `cfg.init == "encoder"`, `encoder` (facelatent.projection.encoder.load_encoder) gives each image's start.
    """
    # Check the arguments and read the shard.
    if cfg.init == "encoder" and encoder is None:
        raise ConfigError("projection.init is 'encoder' but no encoder checkpoint was given (rule train_encoder)")
    out_path = Path(out_path)
    ids, images = read_aligned(aligned_path)
    n = len(ids)
    digest = cfg.digest()
    attrs_config = {
        **asdict(cfg),
        "config_digest": digest,
        "noise": "optimised noise maps are not stored; psnr renders w with the generator's const noise",
    }
    if n == 0:
        log.warning("%s has no usable images; writing an empty latents shard", aligned_path)
        with atomic_h5(out_path, "facelatent.latents", generator_info, attrs_config) as fh:
            write_column(fh, "ids", np.array([], dtype=object))
            fh.create_dataset("w", shape=(0, G.num_ws, G.w_dim), dtype=np.float32)
            for name, dtype in (
                ("loss", np.float32),
                ("psnr", np.float32),
                ("steps", np.int32),
                ("psnr_aligned", np.float32),
            ):
                fh.create_dataset(name, shape=(0,), dtype=dtype)
            fh.create_dataset("warp", shape=(0, 4), dtype=np.float32)
        return {"n": 0}

    # Compute w stats.
    device = G.w_avg.device
    # fixed generator chunks make every image's result independent of its batch and shard, bit for bit
    schedule = schedule_kwargs(cfg, device, G.img_resolution)
    log.info("micro-batch %d on %s at %d px", schedule["micro_batch"], device, G.img_resolution)
    sched = Schedule(**schedule)
    w_stats = w_statistics(G, sched.w_avg_samples, device)
    refine_cfg = RefineConfig(**cfg.refine)
    # Open the progress file (kept only when its resume key matches) and project batch by batch.
    key = resume_key(cfg, G, generator_info, ids, images, encoder, facenet_weights)
    # the micro-batch sets each image's float rounding: a partial made on another device's chunking starts over
    fh = _open_progress(out_path, n, G, {**key, "micro_batch": str(schedule["micro_batch"])})
    try:
        batches = [list(range(i, min(n, i + cfg.batch_size))) for i in range(0, n, cfg.batch_size)]
        resume_batch, resume_state = _load_state(fh) if "state" in fh else (None, None)
        for b, rows in enumerate(batches):
            if fh["batch_done"][b]:
                continue
            target = torch.from_numpy(images[rows])
            adam, refine_state = None, None
            if "refine_state" in fh:
                refine_batch, saved_adam, saved_state = _load_refine_state(fh)
                if refine_batch == b:
                    adam, refine_state = saved_adam, saved_state
                    log.info(
                        "batch %d/%d: Adam done, resuming the refinement at iteration %d",
                        b + 1,
                        len(batches),
                        saved_state.iteration if saved_state else 0,
                    )
            if adam is None:
                w_start = encoder(target) if encoder is not None else None  # deterministic: recomputed on resume
                if cfg.steps == 0:
                    w_first = w_start if w_start is not None else w_stats[0].reshape(1, 1, -1).expand(len(rows), 1, -1)
                    adam = {
                        "w": w_first.repeat(1, G.num_ws, 1).cpu().numpy(),
                        "loss": np.full(len(rows), np.nan, np.float32),  # no Adam, no Adam loss
                        "steps": np.zeros(len(rows), np.int32),
                    }
                else:
                    adam = _adam_batch(
                        G,
                        fh,
                        b,
                        len(batches),
                        target,
                        [ids[i] for i in rows],
                        cfg,
                        schedule,
                        w_stats,
                        resume_state if resume_batch == b else None,
                        progress,
                        w_start,
                        facenet_weights,
                    )
            # Refine, measure the reconstruction, save the batch.
            w, warp, psnr_aligned = adam["w"], np.zeros((len(rows), 4), np.float32), None
            if refine_cfg.iterations > 0:
                w, warp, psnr_aligned = _refine_batch(
                    G, fh, b, target, adam, cfg.space, refine_cfg, refine_state, w_stats, progress
                )
            # the file keeps w only, so PSNR is measured on what a reader can render: w with the const noise
            # (against a grey photo, the render's luma)
            recon = as_grey_where(render(G, torch.from_numpy(w)).float(), grey_targets(target))
            recon_psnr = psnr(recon, target).numpy()
            lo, hi = rows[0], rows[-1] + 1
            fh["w"][lo:hi] = w
            fh["loss"][lo:hi] = adam["loss"]
            fh["psnr"][lo:hi] = recon_psnr
            fh["steps"][lo:hi] = adam["steps"]
            fh["warp"][lo:hi] = warp
            fh["psnr_aligned"][lo:hi] = recon_psnr if psnr_aligned is None else psnr_aligned
            fh["batch_done"][b] = True
            for group in ("state", "refine_state"):
                if group in fh:
                    del fh[group]
            fh.flush()
        columns = {k: fh[k][()] for k in ("w", "loss", "psnr", "steps", "warp", "psnr_aligned")}
    finally:
        fh.close()

    # Write the shard atomically and summarise.
    with atomic_h5(out_path, "facelatent.latents", generator_info, attrs_config) as out:
        write_column(out, "ids", ids)
        for name, values in columns.items():
            write_column(out, name, values)
    psnr_ = columns["psnr"]
    summary = {
        "n": n,
        "psnr_mean": float(np.mean(psnr_)),
        "psnr_min": float(np.min(psnr_)),
        "psnr_aligned_mean": float(np.mean(columns["psnr_aligned"])),
        "loss_mean": float(np.nanmean(columns["loss"])) if cfg.steps else None,
    }
    log.info(
        "projected %d images: PSNR mean %.2f dB, min %.2f dB (%.2f dB through the fitted warps)",
        n,
        summary["psnr_mean"],
        summary["psnr_min"],
        summary["psnr_aligned_mean"],
    )
    return summary


def _adam_batch(
    G: GeneratorBase,
    fh: h5py.File,
    b: int,
    n_batches: int,
    target: torch.Tensor,
    ids: list[str],
    cfg: ProjectionConfig,
    schedule: dict,
    w_stats: tuple,
    state: ProjectionState | None,
    progress: bool,
    w_start: torch.Tensor | None = None,
    facenet_weights: str | Path | None = None,
) -> dict[str, np.ndarray]:
    """Adam under the NVlabs schedule for one batch, checkpointing into the partial file -> w, loss, steps."""
    if state is not None:
        log.info("batch %d/%d: resuming at step %d", b + 1, n_batches, state.step)
    else:
        log.info("batch %d/%d: %d images from step 0", b + 1, n_batches, len(ids))

    def checkpoint(s: ProjectionState) -> None:
        _save_state(fh, b, s)
        fh.flush()
        log.info("batch %d: checkpoint at step %d (mean loss %.5g)", b + 1, s.step, float(s.losses.mean()))

    result = project(
        G,
        target,
        num_steps=cfg.steps,
        space=cfg.space,
        loss=cfg.loss,
        vgg16_path=cfg.vgg16_path,
        facenet_path=facenet_weights,
        seed=cfg.seed,
        ids=ids,
        resume=state,
        checkpoint_every=cfg.checkpoint_every,
        on_checkpoint=checkpoint,
        progress=progress,
        w_stats=w_stats,
        w_init=w_start,
        **schedule,
    )
    return {"w": result.w.numpy(), "loss": result.loss.numpy(), "steps": result.steps.numpy()}


def _refine_batch(
    G: GeneratorBase,
    fh: h5py.File,
    b: int,
    target: torch.Tensor,
    adam: dict[str, np.ndarray],
    space: str,
    refine_cfg: RefineConfig,
    state: RefineState | None,
    w_stats: tuple,
    progress: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Levenberg-Marquardt from Adam's latents, checkpointing into the partial file -> w, warp, psnr_aligned."""
    _save_refine_state(fh, b, adam, None)
    if "state" in fh:  # Adam's own state is no longer needed
        del fh["state"]
    fh.flush()

    def checkpoint(s: RefineState) -> None:
        _save_refine_state(fh, b, adam, s)
        fh.flush()
        log.info("batch %d: refinement checkpoint at iteration %d", b + 1, s.iteration)

    # Adam's w comes broadcast to all layers: W refines one w per image, W+ one per layer
    w_init = torch.from_numpy(adam["w"][:, :1] if space == "w" else adam["w"])
    # an iteration costs tens of renders per image, a checkpoint a few kB: save after each one
    result = refine(
        G,
        target,
        w_init.to(w_stats[0].device),
        w_stats,
        refine_cfg,
        resume=state,
        checkpoint_every=1,
        on_checkpoint=checkpoint,
        progress=progress,
    )
    w = result.w.repeat(1, G.num_ws // result.w.shape[1], 1)
    return w.numpy(), result.warp.numpy(), result.psnr.numpy()


# ---- the rules' jobs ------------------------------------------------------------------------


def project_shard(
    *,
    generator: str | Path,
    aligned: str | Path,
    output: str | Path,
    projection: Mapping | ProjectionConfig,
    generator_settings: Mapping | None = None,
    encoder: str | Path | None = None,
    facenet: str | Path | None = None,
    device: str = "auto",
    progress: bool = True,
) -> dict:
    """Rule project_shard: project one aligned shard into W / W+, resuming from its .partial file.

    `projection`: the dataset's `projection:` section; `generator_settings`: the config's `generator:` section,
    checked against the checkpoint; `encoder`: the trained encoder to start from (none or empty: w_avg);
    `facenet`: the FaceNet weights of a `facenet` loss term.
    """
    G = load_generator(generator, pick_device(device), expect=generator_settings)
    start = load_encoder(encoder, G) if encoder else None
    cfg = projection if isinstance(projection, ProjectionConfig) else ProjectionConfig(**projection)
    return project_aligned(
        G, aligned, output, cfg, generator_provenance(G), progress=progress, encoder=start, facenet_weights=facenet
    )


def merge_latents(
    *,
    shards: Sequence[str | Path],
    aligned: Sequence[str | Path],
    index: str | Path,
    generator: str | Path,
    latents: str | Path,
    grid: str | Path,
    generator_settings: Mapping | None = None,
    device: str = "cpu",
) -> None:
    """Rule merge_latents: one latents file per dataset with the index labels joined, plus a reconstruction grid
    (rendered on `device`: the rule runs on the submit host, so the CPU)."""
    merge_latent_shards(list(shards), index, latents)
    G = load_generator(generator, pick_device(device), expect=generator_settings)
    reconstruction_grid(G, list(aligned), latents, grid)


def train_encoder(
    *,
    generator: str | Path,
    encoder: Mapping | EncoderConfig,
    w_avg_samples: int,
    output: str | Path,
    generator_settings: Mapping | None = None,
    device: str = "auto",
    progress: bool = True,
) -> dict:
    """Rule train_encoder: train the image -> w encoder on the generator's renders and write its checkpoint."""
    G = load_generator(generator, pick_device(device), expect=generator_settings)
    cfg = encoder if isinstance(encoder, EncoderConfig) else EncoderConfig(**encoder)
    w_stats = w_statistics(G, w_avg_samples, G.w_avg.device)
    network, metrics = train_encoder_network(G, w_stats, cfg, progress=progress)
    save_encoder(output, network, cfg, w_stats, generator_provenance(G), metrics)
    log.info(
        "encoder: held-out mse %.3f of the latent variance (1.0 = w_avg), median cosine %.3f",
        metrics["heldout_mse"],
        metrics["heldout_cosine_median"],
    )
    return metrics
