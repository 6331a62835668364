"""Merged latent files (labels joined from the index) and the grids people look at."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from facelatent.datasets import read_index
from facelatent.errors import InputFileError
from facelatent.generators.base import GeneratorBase
from facelatent.grids import put_label, tile, upscale, write_png
from facelatent.projection.project import render
from facelatent.store import atomic_h5, concat_columns, open_checked, read_attrs, read_table, write_column

log = logging.getLogger(__name__)

LATENT_COLUMNS = ("ids", "w", "loss", "psnr", "steps")
REFINE_COLUMNS = (
    "warp",
    "psnr_aligned",
)  # written by projections with refinement support; merged when all shards have them


def _has_columns(path: str | Path, names: tuple[str, ...]) -> bool:
    with open_checked(path, "facelatent.latents") as fh:
        return all(name in fh for name in names)


def _generator_identity(generator: dict) -> dict:
    """What identifies a generator in a file's `generator` attribute (its sha256 and facts; not where it lay)."""
    return {k: v for k, v in generator.items() if k != "path"}


def check_same_generator(shards: list[str | Path]) -> dict:
    """The shards' common `generator` attribute; a one-line error names two shards whose generators differ."""
    first = read_attrs(shards[0], "facelatent.latents")["generator"] if shards else {}
    for path in shards[1:]:
        found = read_attrs(path, "facelatent.latents")["generator"]
        a, b = _generator_identity(found), _generator_identity(first)
        differ = ", ".join(f"{k} {a.get(k)} vs {b.get(k)}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k))
        if differ:
            raise InputFileError(
                path, f"projected with another generator than {shards[0]} ({differ}); re-project the stale shards"
            )
    return first


def merge_latent_shards(shards: list[str | Path], index_tsv: str | Path, out_path: str | Path) -> pd.DataFrame:
    """Concatenate latent shards and join every index column under `labels/` (same row order).

    Columns are copied shard by shard in blocks (`concat_columns`): memory holds the ids, the labels and
    one block of latents, not the dataset's latents twice.
    """
    check_same_generator(shards)
    columns = LATENT_COLUMNS + (
        REFINE_COLUMNS if shards and all(_has_columns(p, REFINE_COLUMNS) for p in shards) else ()
    )
    ids = [str(i) for path in shards for i in read_table(path, "facelatent.latents", ["ids"])["ids"]]
    attrs = read_attrs(shards[0], "facelatent.latents") if shards else {"generator": {}, "config": {}}
    index = read_index(index_tsv).set_index("id", drop=False)
    missing = [i for i in ids if i not in index.index]
    if missing:
        raise InputFileError(index_tsv, f"{len(missing)} projected ids are not in the index, e.g. {missing[0]}")
    labels = index.loc[ids].reset_index(drop=True)
    with atomic_h5(out_path, "facelatent.latents", attrs["generator"], attrs["config"]) as fh:
        if shards:
            concat_columns(fh, shards, "facelatent.latents", columns)
        else:
            for name in columns:
                write_column(fh, name, np.zeros(0))
        group = fh.create_group("labels")
        for col in labels.columns:
            values = labels[col].to_numpy()
            write_column(group, col, values if values.dtype.kind in "iuf" else values.astype(str))
    log.info("merged %d latents from %d shards", len(ids), len(shards))
    return labels


def read_latents(path: str | Path) -> tuple[np.ndarray, pd.DataFrame]:
    """w [N, num_ws, w_dim] and a DataFrame of ids, loss, psnr and the joined index labels."""
    table = read_table(path, "facelatent.latents", list(LATENT_COLUMNS))
    frame = pd.DataFrame({c: table[c] for c in ("ids", "loss", "psnr", "steps")})
    with open_checked(path, "facelatent.latents") as fh:
        if "psnr_aligned" in fh:
            frame["psnr_aligned"] = fh["psnr_aligned"][()]
        if "labels" in fh:
            for col, ds in fh["labels"].items():
                data = ds[()]
                frame[col] = [v.decode() if isinstance(v, bytes) else v for v in data] if ds.dtype.kind == "O" else data
    return table["w"], frame


def read_first_latents(path: str | Path, n: int) -> tuple[np.ndarray, list[str]]:
    """The first `n` latents [n, num_ws, w_dim] and their ids, without reading the rest of the file."""
    with open_checked(path, "facelatent.latents") as fh:
        w = fh["w"][:n]
        ids = [i.decode() if isinstance(i, bytes) else str(i) for i in fh["ids"][:n]]
    return w, ids


def _aligned_images(shards: list[str | Path], limit: int) -> tuple[list[str], np.ndarray]:
    ids, images = [], []
    for path in shards:
        table = read_table(path, "facelatent.aligned", ["ids", "images"])
        ids += list(table["ids"])
        images.append(table["images"])
        if len(ids) >= limit:
            break
    stacked = np.concatenate(images) if images else np.zeros((0, 8, 8, 3), np.uint8)
    return ids[:limit], stacked[:limit]


def aligned_preview(shards: list[str | Path], out_png: str | Path, n: int = 32, cols: int = 8) -> None:
    """A grid of the first aligned faces (or a labelled placeholder when none survived)."""
    _, images = _aligned_images(shards, n)
    if len(images) == 0:
        canvas = np.full((64, 256, 3), 255, np.uint8)
        put_label(canvas, "no aligned faces", (8, 36))
        write_png(out_png, canvas)
        return
    rows = -(-len(images) // cols)
    write_png(out_png, upscale(tile(images, rows, min(cols, len(images))), 768))


def reconstruction_grid(
    G: GeneratorBase, aligned: list[str | Path], latents_h5: str | Path, out_png: str | Path, n: int = 16, cols: int = 4
) -> None:
    """Target | reconstruction pairs, labelled with PSNR."""
    ids, targets = _aligned_images(aligned, n)
    w, frame = read_latents(latents_h5)
    by_id = {str(i): k for k, i in enumerate(frame["ids"])}
    keep = [k for k, i in enumerate(ids) if i in by_id][:n]
    if not keep:
        aligned_preview([], out_png)
        return
    rows_w = torch.from_numpy(w[[by_id[ids[k]] for k in keep]])
    recon = render(G, rows_w.to(G.w_avg.device)).permute(0, 2, 3, 1).numpy()
    pairs = []
    for j, k in enumerate(keep):
        pair = np.concatenate([targets[k], recon[j]], axis=1)
        pair = upscale(pair, 256)
        put_label(pair, f"{frame['psnr'][by_id[ids[k]]]:.1f} dB", (4, pair.shape[0] - 8), 0.5)
        pairs.append(pair)
    pairs = np.stack(pairs)
    write_png(out_png, tile(pairs, -(-len(pairs) // cols), min(cols, len(pairs)), pad=6))
