"""ArcFace 112x112 crops of every face on disk, and the identities x variations grid built from them.

Crops follow synthetics' naming: `<crops>/<identity:05d>/<label>.png` (e.g. `00042/augmentation_7.png`).
The directory is written as `<crops>.partial` and renamed when complete; a TSV manifest (identity,
label, path relative to the crops directory) lists every file. A run renders one such directory per
variation part, `crops/<part>/`, and merges the part manifests into one whose paths start with `<part>/`.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from facelatent.errors import InputFileError
from facelatent.grids import put_label, tile, to_uint8, upscale, write_png
from facelatent.images import read_rgb
from facelatent.store import atomic_path, atomic_write_text
from facelatent.synthetic.config import RunConfig
from facelatent.synthetic.export import identity_key, sanitize_label
from facelatent.synthetic.files import FaceTable
from facelatent.synthetic.render import SAVED_CROP_SIZE, FacePipeline

log = logging.getLogger(__name__)


def crop_relpath(identity: int, label: str) -> str:
    return f"{identity_key(identity)}/{sanitize_label(label)}.png"


def render_crops(
    pipe: FacePipeline, table: FaceTable, out_dir: str | Path, size: int = SAVED_CROP_SIZE
) -> pd.DataFrame:
    """Write every face's crop under `out_dir` (atomically as a whole directory); returns the manifest."""
    out_dir = Path(out_dir)
    paths = [crop_relpath(int(i), str(label)) for i, label in zip(table.identity, table.label, strict=True)]
    with atomic_path(out_dir) as tmp:
        shutil.rmtree(tmp, ignore_errors=True)  # a folder left by a killed run
        tmp.mkdir(parents=True)
        for lo in range(0, len(table), pipe.batch_size):
            w = torch.from_numpy(np.asarray(table.w[lo : lo + pipe.batch_size], np.float32))
            images = to_uint8(pipe.saved_crops(w, size))
            for rel, image in zip(paths[lo : lo + pipe.batch_size], images, strict=True):
                write_png(tmp / rel, image)
    log.info("wrote %d crops (%dx%d) under %s", len(paths), size, size, out_dir)
    return pd.DataFrame({"identity": table.identity.astype(int), "label": table.label.astype(str), "path": paths})


def write_manifest(manifest: pd.DataFrame, path: str | Path) -> None:
    atomic_write_text(path, manifest.to_csv(sep="\t", index=False))


def under(manifest: pd.DataFrame, folder: str) -> pd.DataFrame:
    """The manifest with each path prefixed by `folder/`: relative to the folder's parent (a part's crops)."""
    return manifest.assign(path=[f"{folder}/{p}" for p in manifest["path"]])


def merge_manifests(paths: Sequence[str | Path], out_path: str | Path) -> int:
    """Concatenate TSV manifests with one header, line by line (memory: one line), atomically; returns the
    number of rows. Each manifest's paths must already be relative to the same folder."""
    header, rows = None, 0
    with atomic_path(out_path) as tmp, open(tmp, "w") as out:
        for path in paths:
            with open(path) as fh:
                first = fh.readline()
                if header is None:
                    header = first
                    out.write(header)
                elif first != header:
                    raise InputFileError(path, f"manifest header {first.strip()!r} differs from {header.strip()!r}")
                for line in fh:
                    out.write(line)
                    rows += 1
        if header is None:
            raise ValueError(f"{out_path}: no manifests to merge")
    return rows


def read_grid_manifest(path: str | Path, identities: int, variations: int, chunk_rows: int = 65536) -> pd.DataFrame:
    """The manifest rows `crop_grid` shows (the `identities` lowest identities, reference and the first
    `variations` augmentations), read in chunks so memory holds the grid's rows, not the run's."""
    labels = {"reference"} | {f"augmentation_{a}" for a in range(variations)}
    kept, dtypes = [], {"identity": np.int64, "label": str, "path": str}
    for chunk in pd.read_csv(path, sep="\t", dtype=dtypes, chunksize=chunk_rows):
        rows = pd.concat([*kept, chunk[chunk["label"].isin(labels)]], ignore_index=True)
        kept = [rows[rows["identity"].isin(np.sort(rows["identity"].unique())[:identities])]]
    if not kept:
        raise InputFileError(path, "the crops manifest has no rows")
    return kept[0].reset_index(drop=True)


def crop_grid(
    manifest: pd.DataFrame,
    crops_dir: str | Path,
    out_png: str | Path,
    identities: int = RunConfig.grid_identities,
    variations: int = RunConfig.grid_variations,
) -> np.ndarray:
    """Rows = identities, columns = reference then the first `variations` augmentations."""
    crops_dir = Path(crops_dir)
    ids = sorted(manifest["identity"].unique())[:identities]
    labels = ["reference"] + [f"augmentation_{a}" for a in range(variations)]
    present = set(zip(manifest["identity"], manifest["label"], strict=True))
    labels = [lab for lab in labels if any((i, lab) in present for i in ids)]
    lookup = {(i, lab): p for i, lab, p in zip(manifest["identity"], manifest["label"], manifest["path"], strict=True)}
    blank = np.full((SAVED_CROP_SIZE, SAVED_CROP_SIZE, 3), 255, np.uint8)
    cells = []
    for i in ids:
        for lab in labels:
            rel = lookup.get((i, lab))
            cells.append(read_rgb(crops_dir / rel) if rel else blank)
    grid = upscale(tile(np.stack(cells), len(ids), len(labels)), 96 * len(labels))
    header = np.full((28, grid.shape[1], 3), 255, np.uint8)
    cell_w = grid.shape[1] / len(labels)
    for j, lab in enumerate(labels):
        put_label(
            header, "ref" if lab == "reference" else f"aug {lab.rsplit('_', 1)[1]}", (int(j * cell_w + 6), 20), 0.5
        )
    canvas = np.concatenate([header, grid], axis=0)
    write_png(out_png, canvas)
    return canvas
