"""Reference identities: `random` (ALGORITHMS.md 2.1), `reject` (2.2) and the initial latents of `langevin`.

All draws come from seeded CPU generators, so a run is the same on every device.
`reject` tests candidates a batch at a time; the first candidate (in draw order) whose angle to every
accepted identity is >= ICT is accepted, as in the sequential original, and a cap on candidates per
identity turns the original's potential endless loop into a one-line error.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from facelatent.embeddings.base import pairwise_angles
from facelatent.errors import FaceLatentError
from facelatent.synthetic.config import ReferencesConfig
from facelatent.synthetic.render import FacePipeline, cpu_generator, map_z, randn, stream_seed

log = logging.getLogger(__name__)


@dataclass
class References:
    z: np.ndarray | None  # [N, z_dim] (None when the latents were moved away from mapped z)
    w: np.ndarray  # [N, w_dim]
    embedding: np.ndarray  # [N, D]
    stats: dict[str, np.ndarray]


def sample_latents(
    pipe: FacePipeline, n: int, truncation_psi: float, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """z ~ N(0, I) from `gen` and w = mapping(z, psi) (one W row per face)."""
    z = randn(gen, (n, pipe.G.z_dim), pipe.device)
    return z, map_z(pipe.G, z, truncation_psi)


def random_references(pipe: FacePipeline, n: int, truncation_psi: float, seed: int) -> References:
    """N mapped samples with no distance check at all."""
    z, w = sample_latents(pipe, n, truncation_psi, cpu_generator(seed))
    e = pipe.embed_all(w)
    return References(z.cpu().numpy(), w.cpu().numpy(), e.cpu().numpy(), {})


def candidate_seed(seed: int, index: int, candidate: int) -> int:
    """Seed of candidate k (1-based) for new identity `index`: a hash of (seed, index, k), so runs with other
    seeds draw other candidates (the original's seed + index + k N made seeds s and s + 1 share almost all)."""
    return stream_seed(seed, "reject", index, candidate)


def _candidates(pipe: FacePipeline, seeds: list[int], truncation_psi: float) -> tuple[torch.Tensor, torch.Tensor]:
    z = torch.cat([randn(cpu_generator(s), (1, pipe.G.z_dim), pipe.device) for s in seeds])
    return z, map_z(pipe.G, z, truncation_psi)


def reject_references(
    pipe: FacePipeline,
    n: int,
    ict: float,
    truncation_psi: float,
    seed: int,
    max_candidates: int = ReferencesConfig.max_candidates,
    existing: torch.Tensor | None = None,
    face_ok: Callable[[torch.Tensor, int], np.ndarray] | None = None,
) -> References:
    """Accept candidates whose embedding is at least `ict` radians from every accepted (and `existing`) one
    and, with `face_ok(w, identity)` (the face gate's `accepts`), that are faces."""
    accepted_e = [] if existing is None else [e for e in existing.to(pipe.device)]
    zs, ws, es, times, counts = [], [], [], [], []
    for index in range(n):
        t0, tried, found = time.perf_counter(), 0, None
        while found is None:
            if tried >= max_candidates:
                raise FaceLatentError(
                    f"reject: identity {index} found no candidate at >= {ict} rad from the "
                    f"{len(accepted_e)} accepted ones in {max_candidates} tries; lower the ICT"
                )
            k = min(pipe.batch_size, max_candidates - tried)
            seeds = [candidate_seed(seed, index, tried + j + 1) for j in range(k)]
            z, w = _candidates(pipe, seeds, truncation_psi)
            e = pipe.embed_all(w)
            if accepted_e:
                ok = (pairwise_angles(e, torch.stack(accepted_e)) >= ict).all(dim=1)
            else:
                ok = torch.ones(len(e), dtype=torch.bool, device=e.device)
            if face_ok is not None:
                ok = ok & torch.from_numpy(face_ok(w, index)).to(ok.device)
            hits = torch.nonzero(ok).flatten()
            if len(hits):
                j = int(hits[0])
                found = (z[j], w[j], e[j])
                tried += j + 1
            else:
                tried += k
        for column, value in zip((zs, ws, es), found, strict=False):
            column.append(value)
        accepted_e.append(found[2])
        times.append(time.perf_counter() - t0)
        counts.append(tried)
        log.info("reject: identity %d accepted after %d candidate(s)", index, tried)
    stats = {
        "time_total": np.cumsum(times).astype(np.float32),
        "time_iter": np.asarray(times, np.float32),
        "num_candidates": np.asarray(counts, np.float32),
    }
    return References(
        torch.stack(zs).cpu().numpy(), torch.stack(ws).cpu().numpy(), torch.stack(es).cpu().numpy(), stats
    )
