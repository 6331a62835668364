"""Seeded draws z -> w through the generator's mapping, stored as latent shards, and the renders scored later.

Shard k draws from the stream SeedSequence(seed, spawn_key=(0, k)) and the held-out samples of evaluate_direction
from (seed, spawn_key=(1,)): the streams are independent, so no held-out latent is a training latent, and a shard
is the same whichever machine or order draws it (numpy's generator, not the device's). A shard is written in the
merged-latents format (`facelatent.latents`: ids, w [N, num_ws, w_dim], plus z; loss and psnr NaN, steps 0: these
latents were drawn, not projected), so the tools that read projected latents read these too.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from facelatent.generators import GeneratorBase, generator_provenance
from facelatent.generators.base import assert_shape
from facelatent.store import atomic_h5, write_column

log = logging.getLogger(__name__)

TRAIN_STREAM = 0
HELDOUT_STREAM = 1


def draw_z(seed: int, stream: tuple[int, ...], n: int, z_dim: int) -> np.ndarray:
    """[n, z_dim] float32 standard normal draws of one seeded stream (see the module docstring)."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=stream))
    return rng.standard_normal((n, z_dim), dtype=np.float32)


def shard_z(seed: int, shard: int, n: int, z_dim: int) -> np.ndarray:
    """The z of training shard `shard`."""
    return draw_z(seed, (TRAIN_STREAM, int(shard)), n, z_dim)


def heldout_z(seed: int, n: int, z_dim: int) -> np.ndarray:
    """The z of the held-out samples every direction is evaluated on (disjoint from every shard's)."""
    return draw_z(seed, (HELDOUT_STREAM,), n, z_dim)


def batches(n: int, batch_size: int) -> Iterator[slice]:
    for first in range(0, n, batch_size):
        yield slice(first, min(first + batch_size, n))


@torch.no_grad()
def map_latents(
    G: GeneratorBase, z: np.ndarray, truncation_psi: float, truncation_cutoff: int | None, batch_size: int
) -> np.ndarray:
    """z [N, z_dim] -> ws [N, num_ws, w_dim] float32 through the mapping, `batch_size` at a time."""
    device = G.w_avg.device
    out = np.zeros((len(z), G.num_ws, G.w_dim), np.float32)
    for rows in batches(len(z), batch_size):
        batch = torch.from_numpy(np.ascontiguousarray(z[rows])).to(device)
        assert_shape(batch, [None, G.z_dim], "z")
        ws = G.mapping(batch, None, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        assert_shape(ws, [batch.shape[0], G.num_ws, G.w_dim], "ws")
        out[rows] = ws.float().cpu().numpy()
    return out


def sample_ids(rows: range) -> np.ndarray:
    """Global sample ids ('g0000042'): stable across shard sizes, sortable as text."""
    return np.array([f"g{i:08d}" for i in rows], dtype=object)


def write_sample_shard(
    out_h5: str | Path, ids: np.ndarray, z: np.ndarray, ws: np.ndarray, G: GeneratorBase, config: dict
) -> Path:
    """One shard of drawn latents in the `facelatent.latents` layout (atomic)."""
    n = len(ids)
    assert z.shape[0] == ws.shape[0] == n, f"{n} ids, {z.shape[0]} z, {ws.shape[0]} w"
    with atomic_h5(out_h5, "facelatent.latents", generator_provenance(G), config) as fh:
        write_column(fh, "ids", ids)
        write_column(fh, "w", ws)
        write_column(fh, "z", z)
        write_column(fh, "loss", np.full(n, np.nan, np.float32))  # drawn, not projected: no fit to report
        write_column(fh, "psnr", np.full(n, np.nan, np.float32))
        write_column(fh, "steps", np.zeros(n, np.int32))
    return Path(out_h5)
