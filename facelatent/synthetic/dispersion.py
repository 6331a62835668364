"""Dispersion variations (ALGORITHMS.md 3.1): augmentations of each reference spread apart in W while an
FR-angle anchor keeps their identity; DisCo (3.2) only changes the initialisation (see disco.py).

Per iteration, for w [N, A, w_dim] with references (w_ref, e_ref):
    F_e = -grad sum_a 1/2 (k_e/2) theta(e(w_ia), e_ref_i)^2    (one gradient per augmentation, any A)
    F_w = -grad sum_{a != b} (k_w/4) max(0, r_w - |w_ia - w_ib|)^2
    F_g = k_g (w_avg - w_ia),   xi = eta N(0, I)
    w <- w + (dt/mu) (F_e + F_w + F_g + xi)      (the random force is scaled by dt, unlike Langevin)
Fixed from the original: gradients are per augmentation whatever A and the batch size (the original
copied one row's gradient over a chunk when A > batch size); force norms are per vector.
Every identity draws from its own seeded generator, so its result does not depend on how identities
are split into parallel parts (except through an adaptive dt, which is shared within a part).
Stats have T + 1 rows; row T is the final state (no forces). Besides the original names, `ref_dist_*`
are angles of each variation to its reference and `prop_ref` the share within `reference_angle`.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from facelatent.generators.base import assert_shape
from facelatent.synthetic.config import DispersionConfig
from facelatent.synthetic.forces import anchor_forces, latent_repulsion_forces, pull_forces
from facelatent.synthetic.render import FacePipeline, cpu_generator, randn, stream_seed
from facelatent.synthetic.stats import StatsLog, force_stats, reference_stats, within_identity_stats

log = logging.getLogger(__name__)


@dataclass
class DispersionResult:
    w: torch.Tensor  # [N, A, w_dim]
    embeddings: torch.Tensor  # [N, A, D]
    stats: dict[str, np.ndarray]


def identity_generators(seed: int, identities: list[int]) -> list[torch.Generator]:
    """One generator per identity, seeded from a hash of the run seed and the identity's global index."""
    return [cpu_generator(stream_seed(seed, "dispersion", i)) for i in identities]


def initial_variations(
    w_ref: torch.Tensor,
    num_augmentations: int,
    initial_noise: float,
    gens: list[torch.Generator],
    covariates: torch.Tensor | None = None,
) -> torch.Tensor:
    """w_ia = w_ref_i + sigma_0 N(0, I) [+ sum_d u_iad v_d with u ~ U(-0.5, 0.5) for DisCo]."""
    assert_shape(w_ref, [len(gens), None], "w_ref")
    rows = []
    for i, gen in enumerate(gens):
        offset = initial_noise * randn(gen, (num_augmentations, w_ref.shape[1]), w_ref.device)
        if covariates is not None and len(covariates):
            u = torch.rand((num_augmentations, len(covariates)), generator=gen).to(w_ref.device) - 0.5
            offset = offset + u @ covariates.to(w_ref)
        rows.append(w_ref[i][None] + offset)
    return torch.stack(rows)


def dispersion_timestep(cfg: DispersionConfig, w2wd_min: float, totf_max: float) -> float:
    if cfg.timestep >= 0:
        return float(cfg.timestep)
    if not (math.isfinite(totf_max) and totf_max > 0 and math.isfinite(w2wd_min)):
        return float(-cfg.timestep)
    return float(-cfg.timestep * cfg.viscous_coefficient * w2wd_min / totf_max)


def dispersion_step(
    pipe: FacePipeline, w: torch.Tensor, e_ref: torch.Tensor, cfg: DispersionConfig, gens: list[torch.Generator]
) -> tuple[torch.Tensor, dict[str, float]]:
    """One update of all variations; returns the new latents and this iteration's stats row."""
    n, a, w_dim = w.shape
    flat_ref = e_ref.repeat_interleave(a, dim=0)
    f_e, e = anchor_forces(pipe, w.reshape(n * a, w_dim), flat_ref, cfg.embedding_coefficient)
    f_e, e = f_e.reshape(n, a, w_dim), e.reshape(n, a, -1)
    f_lat = latent_repulsion_forces(w, cfg.latent_radius, cfg.latent_coefficient) + pull_forces(
        w, pipe.w_avg, cfg.latent_global_coefficient
    )
    xi = cfg.random_force * torch.stack([randn(g, (a, w_dim), w.device) for g in gens])
    f_tot = f_e + f_lat + xi
    row = {
        **within_identity_stats(e, w, pipe.w_avg, cfg.ict),
        **reference_stats(e, e_ref, cfg.reference_angle),
        **force_stats(f_e, xi, f_lat, f_tot),
    }
    dt = dispersion_timestep(cfg, row["w2wd_min"], row["totf_max"])
    row["timestep"] = dt
    return w + (dt / cfg.viscous_coefficient) * f_tot, row


def final_embeddings(pipe: FacePipeline, w: torch.Tensor) -> torch.Tensor:
    n, a, w_dim = w.shape
    return pipe.embed_all(w.reshape(n * a, w_dim)).reshape(n, a, -1)


def run_dispersion(
    pipe: FacePipeline,
    w_ref: torch.Tensor,
    e_ref: torch.Tensor,
    identities: list[int],
    cfg: DispersionConfig,
    seed: int,
    covariates: torch.Tensor | None = None,
) -> DispersionResult:
    """Variations of the given references ([N, w_dim], [N, D]; `identities` their global indices)."""
    assert_shape(e_ref, [w_ref.shape[0], None], "e_ref")
    gens = identity_generators(seed, identities)
    w_ref, e_ref = w_ref.float().to(pipe.device), e_ref.float().to(pipe.device)
    w = initial_variations(w_ref, cfg.num_augmentations, cfg.initial_noise, gens, covariates)
    stats = StatsLog()
    for it in range(cfg.iterations):
        t0 = time.perf_counter()
        w, row = dispersion_step(pipe, w, e_ref, cfg, gens)
        stats.append(row)
        log.info(
            "iteration %d: ref_dist_max %.4f w2wd_avg %.4f dist_avg %.4f totf_max %.4g (%.1f s)",
            it,
            row["ref_dist_max"],
            row["w2wd_avg"],
            row["dist_avg"],
            row["totf_max"],
            time.perf_counter() - t0,
        )
    e = final_embeddings(pipe, w)
    final = {**within_identity_stats(e, w, pipe.w_avg, cfg.ict), **reference_stats(e, e_ref, cfg.reference_angle)}
    stats.append(final)
    log.info(
        "final: ref_dist_max %.4f prop_ref %.4f w2wd_avg %.4f",
        final["ref_dist_max"],
        final["prop_ref"],
        final["w2wd_avg"],
    )
    return DispersionResult(w=w, embeddings=e, stats=stats.arrays())
