"""predict_attributes' and merge_attributes' work: a latent shard rendered and scored batch by batch (resumable),
and the shards merged into one latents file whose `labels/` group holds the scores.

A scores shard (`facelatent.attributes`) has `ids` and one float64 column per predictor, NaN where the predictor
found no face. Its progress lives in `<out>.partial`, keyed on the generator, the latent shard's content and the
predictors, and survives a kill. The merge copies block by block: memory holds one block of latents.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from facelatent.attributes.sampling import batches
from facelatent.errors import InputFileError
from facelatent.generators import GeneratorBase, generator_provenance
from facelatent.grids import render_uint8
from facelatent.latents import check_same_generator
from facelatent.store import (
    atomic_h5,
    column_digest,
    concat_columns,
    content_digest,
    open_checked,
    open_resumable_h5,
    partial_path,
    read_attrs,
    read_table,
    write_column,
)

log = logging.getLogger(__name__)

FORMAT = "facelatent.attributes"
LATENT_FORMAT = "facelatent.latents"
SAMPLE_COLUMNS = ("ids", "w", "z", "loss", "psnr", "steps")
# merge_attributes copies latents in blocks of at most this many bytes (a W+ row of 18 x 512 floats is 36 KiB)
MERGE_BLOCK_BYTES = 64 * 2**20

Scorer = Callable[[np.ndarray], pd.DataFrame]


def _open_progress(path: Path, n: int, names: Sequence[str], n_batches: int, key: dict[str, str]) -> h5py.File:
    """The partial file to resume (same key and shape), or a fresh one with no batch done."""
    fh, resumed = open_resumable_h5(
        path,
        key,
        lambda fh: fh["scores"].shape == (n, len(names)) and fh["batch_done"].shape == (max(1, n_batches),),
    )
    if resumed:
        log.info(
            "resuming from %s: %d of %d batches done", partial_path(path), int(fh["batch_done"][()].sum()), n_batches
        )
        return fh
    fh.create_dataset("scores", shape=(n, len(names)), dtype=np.float64, fillvalue=np.nan)
    fh.create_dataset("batch_done", data=np.zeros(max(1, n_batches), dtype=bool))
    fh.flush()
    return fh


def checked_scores(frame: pd.DataFrame, names: Sequence[str], n: int) -> np.ndarray:
    """A scorer's DataFrame as [n, len(names)] float64, its columns in `names`' order; a wrong shape is an error."""
    missing = [name for name in names if name not in frame]
    if missing or len(frame) != n:
        raise ValueError(
            f"the scorer returned {len(frame)} rows with columns {list(frame.columns)}; wanted {n} x {list(names)}"
        )
    return frame[list(names)].to_numpy(np.float64)


def predict_shard(
    G: GeneratorBase,
    latents: str | Path,
    output: str | Path,
    names: Sequence[str],
    scorer: Scorer,
    batch_size: int,
    noise_mode: str = "const",
    progress: bool = True,
) -> dict:
    """Render every latent of a shard, `batch_size` at a time, score each render with `scorer` (uint8 [B, R, R, 3]
    -> DataFrame with a column per name), and write ids + one column per name to `output` (resumable)."""
    output, names = Path(output), list(names)
    with open_checked(latents, LATENT_FORMAT) as src:
        ids = np.array([i.decode() if isinstance(i, bytes) else str(i) for i in src["ids"][()]], dtype=object)
        w, n = src["w"], len(ids)
        # The progress file is keyed on the generator, the shard's content and what is computed per batch.
        key = {
            "generator": str(generator_provenance(G)["sha256"]),
            "input": column_digest(src, ["ids", "w"], batch_size),
            "config": content_digest(
                np.array(json.dumps({"predictors": names, "batch_size": batch_size, "noise": noise_mode}))
            ),
        }
        slices = list(batches(n, batch_size))
        fh = _open_progress(output, n, names, len(slices), key)
        try:
            for b, rows in enumerate(tqdm(slices, desc="score", disable=not progress, mininterval=5.0)):
                if fh["batch_done"][b]:
                    continue
                images = render_uint8(G, w[rows], noise_mode)
                fh["scores"][rows] = checked_scores(scorer(images), names, len(images))
                fh["batch_done"][b] = True
                fh.flush()
            scores = fh["scores"][()]
        finally:
            fh.close()
    config = {"predictors": names, "noise_mode": noise_mode, "latents_digest": key["input"]}
    with atomic_h5(output, FORMAT, generator_provenance(G), config) as out:
        write_column(out, "ids", ids)
        for j, name in enumerate(names):
            write_column(out, name, scores[:, j])
    found = np.isfinite(scores).all(axis=1).mean() if n else 0.0
    log.info("scored %d renders of %s: every score finite for %.1f%%", n, latents, 100 * found)
    return {"n": n, "all_finite": float(found)}


def _ids(path: str | Path, fmt: str) -> list[str]:
    return [str(i) for i in read_table(path, fmt, ["ids"])["ids"]]


def check_pairs(latent_shards: Sequence[str | Path], score_shards: Sequence[str | Path]) -> None:
    """Each scores shard holds the ids of its latent shard, in order; a one-line error names the first that does not."""
    if len(latent_shards) != len(score_shards):
        raise ValueError(f"{len(latent_shards)} latent shards but {len(score_shards)} scores shards")
    for lat, sco in zip(latent_shards, score_shards, strict=True):
        if _ids(lat, LATENT_FORMAT) != _ids(sco, FORMAT):
            raise InputFileError(sco, f"its ids are not those of {lat}; rerun predict_attributes on it")


def block_rows_for(path: str | Path) -> int:
    """Rows per copy block so that a block of the widest column stays under MERGE_BLOCK_BYTES."""
    with open_checked(path, LATENT_FORMAT) as fh:
        row = int(np.prod(fh["w"].shape[1:])) * fh["w"].dtype.itemsize
    return max(1, MERGE_BLOCK_BYTES // max(1, row))


def merge_shards(
    latent_shards: Sequence[str | Path], score_shards: Sequence[str | Path], names: Sequence[str], output: str | Path
) -> int:
    """One `facelatent.latents` file: the shards' latents, and each predictor's scores under `labels/` (streamed)."""
    if not latent_shards:
        raise ValueError("no shards to merge (generated.samples is 0)")
    check_same_generator(list(latent_shards))
    check_pairs(latent_shards, score_shards)
    attrs = read_attrs(latent_shards[0], LATENT_FORMAT)
    config = {**attrs["config"], "predictors": list(names)}
    with atomic_h5(output, LATENT_FORMAT, attrs["generator"], config) as fh:
        total = concat_columns(fh, latent_shards, LATENT_FORMAT, SAMPLE_COLUMNS, block_rows_for(latent_shards[0]))
        concat_columns(fh.create_group("labels"), score_shards, FORMAT, list(names))
    log.info("merged %d scored samples from %d shards", total, len(latent_shards))
    return total
