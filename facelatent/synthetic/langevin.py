"""Langevin references (Geissbuehler et al.; ALGORITHMS.md 2.4): overdamped Langevin dynamics of W latents
under identity repulsion in FR embedding angle, latent confinement toward w_avg and random forces.

Per iteration it = 0 .. T-1 (then one more embedding pass for the final state):
1. embed all w (no grad) -> fixed embeddings E; record embedding and latent stats;
2. interaction forces in batches (see forces.py; when all N faces fit one batch, steps 1 and 2 share one
   forward/backward pass), F_lat = k_l (w_avg - w), xi = eta N(0, I);
3. dt = |timestep| mu min_{i<j} |w_i - w_j| / max_i |F_int,i + F_lat,i| when timestep < 0, else timestep;
4. w <- w + (dt / mu) (F_int + F_lat) + (sqrt(dt) / mu) xi; record force stats and dt;
5. every `checkpoint_every` iterations save (w, E, RNG state, stats) and resume at it + 1 after a kill.
With a face gate (face_gate.py), the start, every checkpoint (before it is saved) and the final state are
checked, and references that are no face get a fresh seeded latent: redraws at the start and at checkpoints
are then repelled like the rest; a final redraw is a passing face that skips the dynamics, so the stored
references all pass, and the redraw counts (kept in checkpoints) say how many it took.
Stats have T + 1 rows: row T holds the final state's embedding and latent stats (forces and dt NaN).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from facelatent.errors import FaceLatentError
from facelatent.synthetic.config import LangevinConfig
from facelatent.synthetic.face_gate import FaceGate
from facelatent.synthetic.forces import (
    Repulsion,
    embeddings_and_forces,
    interaction_forces,
    per_identity_interaction_forces,
    pull_forces,
)
from facelatent.synthetic.progress import CheckpointFile
from facelatent.synthetic.render import FacePipeline, randn
from facelatent.synthetic.stats import StatsLog, embedding_stats, force_stats, latent_stats

log = logging.getLogger(__name__)


@dataclass
class LangevinResult:
    w: torch.Tensor  # [N, w_dim] final latents
    embeddings: torch.Tensor  # [N, D] embeddings of the final latents
    stats: dict[str, np.ndarray]  # original names, T + 1 rows
    resumed_from: int | None  # checkpoint iteration this run continued from


def adaptive_timestep(cfg: LangevinConfig, w2wd_min: float, totf_max: float) -> float:
    """The step that moves the most-pushed latent by |timestep| x the smallest pairwise latent distance."""
    if cfg.timestep >= 0:
        return float(cfg.timestep)
    if not (math.isfinite(totf_max) and totf_max > 0 and math.isfinite(w2wd_min)):
        return float(-cfg.timestep)  # no force at all: any step is as good; keep the noise scale sane
    return float(-cfg.timestep * cfg.viscous_coefficient * w2wd_min / totf_max)


def langevin_update(
    w: torch.Tensor,
    f_int: torch.Tensor,
    w_avg: torch.Tensor,
    cfg: LangevinConfig,
    gen: torch.Generator,
    w2wd_min: float,
) -> tuple[torch.Tensor, dict[str, float]]:
    """One Euler-Maruyama step; returns the new latents and the force stats plus `timestep`."""
    f_lat = pull_forces(w, w_avg, cfg.latent_force)
    f_tot = f_int + f_lat
    xi = cfg.random_force * randn(gen, tuple(w.shape), w.device)
    stats = force_stats(f_int, xi, f_lat, f_tot)
    dt = adaptive_timestep(cfg, w2wd_min, stats["totf_max"])
    mu = cfg.viscous_coefficient
    w_new = w + (dt / mu) * f_tot + (math.sqrt(dt) / mu) * xi
    return w_new, {**stats, "timestep": dt}


# ---- checkpoint encoding ---------------------------------------------------------------------


def _stats_to_arrays(stats: StatsLog, rows: int) -> dict[str, np.ndarray]:
    names = sorted(stats.columns)
    table = np.full((len(names), rows), np.nan)
    for k, name in enumerate(names):
        values = stats.columns[name]
        table[k, : len(values)] = values
    return {"stats": table, "stats_names": np.array(names, dtype="S32"), "stats_rows": np.array(len(stats))}


def _stats_from_arrays(arrays: dict[str, np.ndarray]) -> StatsLog:
    n = int(arrays["stats_rows"])
    names = [s.decode() for s in arrays["stats_names"]]
    return StatsLog({name: arrays["stats"][k, :n] for k, name in enumerate(names)})


def checkpoint_arrays(
    w: torch.Tensor, e: torch.Tensor, gen: torch.Generator, stats: StatsLog, rows: int
) -> dict[str, np.ndarray]:
    return {
        "w": w.detach().cpu().numpy(),
        "embedding": e.detach().cpu().numpy(),
        "rng_state": gen.get_state().numpy(),
        **_stats_to_arrays(stats, rows),
    }


# ---- the loop ----------------------------------------------------------------------------------


def langevin_iteration(
    pipe: FacePipeline,
    w: torch.Tensor,
    cfg: LangevinConfig,
    gen: torch.Generator,
    obstacles: torch.Tensor | None = None,
    per_identity: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """One iteration: embeddings E of w, forces, update. Returns (new w, E, stats row of w and E).

    Forces are batched; when all N faces fit one batch, E and the forces share one forward/backward pass.
    `per_identity` uses the original's one-pass-per-identity scheme instead (for benchmarks).
    """
    fused = not per_identity and len(w) <= pipe.batch_size
    rep = Repulsion(cfg.repulsion_coefficient, cfg.repulsion_radius, cfg.constant_distance)
    if fused:
        e, f_int = embeddings_and_forces(pipe, w, rep, obstacles)
    else:
        e = pipe.embed_all(w)
        forces = per_identity_interaction_forces if per_identity else interaction_forces
        f_int = forces(pipe, w, e, rep, obstacles)
    row = {**embedding_stats(e, cfg.ict), **latent_stats(w, pipe.w_avg)}
    w_new, update = langevin_update(w, f_int, pipe.w_avg, cfg, gen, row["w2wd_min"])
    return w_new, e, {**row, **update}


def run_langevin(
    pipe: FacePipeline,
    w0: torch.Tensor,
    cfg: LangevinConfig,
    gen: torch.Generator,
    obstacles: torch.Tensor | None = None,
    checkpoints: CheckpointFile | None = None,
    gate: FaceGate | None = None,
) -> LangevinResult:
    """Run (or resume) the Langevin dynamics from initial latents w0 [N, w_dim]; `gate` redraws non-faces."""
    if len(w0) < 2:
        raise FaceLatentError("langevin needs at least 2 identities")
    w = w0.detach().float().to(pipe.device)
    stats, start, resumed_from = StatsLog(), 0, None
    saved = checkpoints.load() if checkpoints is not None else None
    if saved is not None:
        if saved.arrays["w"].shape != tuple(w.shape):
            raise FaceLatentError(
                f"{checkpoints.path}: checkpoint holds {saved.arrays['w'].shape} latents, this run has {tuple(w.shape)}"
            )
        w = torch.from_numpy(saved.arrays["w"]).to(pipe.device)
        gen.set_state(torch.from_numpy(saved.arrays["rng_state"]))
        stats = _stats_from_arrays(saved.arrays)
        start = resumed_from = saved.iteration + 1  # its update is already in w (the original redid it)
        if gate is not None and "face_redraws" in saved.arrays:
            gate.redraws = saved.arrays["face_redraws"].astype(np.int64)
        log.info("resuming after checkpoint %d (next iteration %d)", saved.iteration, start)
    elif gate is not None:
        w = gate.enforce(w, "at the start")
    for it in range(start, cfg.iterations):
        t0 = time.perf_counter()
        w, e, row = langevin_iteration(pipe, w, cfg, gen, obstacles)
        stats.append(row)
        log.info(
            "iteration %d: dist_min %.4f dist_avg %.4f prop_ict %.4f intf_max %.4g dt %.4g (%.1f s)",
            it,
            row["dist_min"],
            row["dist_avg"],
            row["prop_ict"],
            row["intf_max"],
            row["timestep"],
            time.perf_counter() - t0,
        )
        if cfg.checkpoint_every > 0 and it % cfg.checkpoint_every == 0:
            w = w if gate is None else gate.enforce(w, f"after iteration {it}")
            if checkpoints is not None:
                arrays = checkpoint_arrays(w, e, gen, stats, cfg.iterations + 1)
                if gate is not None:
                    arrays["face_redraws"] = gate.redraws.copy()
                checkpoints.save(it, arrays)
                log.info("checkpoint saved after iteration %d", it)
    w = w if gate is None else gate.enforce(w, "at the end")
    e = pipe.embed_all(w)
    final = {**embedding_stats(e, cfg.ict), **latent_stats(w, pipe.w_avg)}
    stats.append(final)
    log.info(
        "final: dist_min %.4f dist_avg %.4f prop_ict %.4f", final["dist_min"], final["dist_avg"], final["prop_ict"]
    )
    return LangevinResult(w=w, embeddings=e, stats=stats.arrays(), resumed_from=resumed_from)
