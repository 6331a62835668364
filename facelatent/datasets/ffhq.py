"""FFHQ indexer from the `ffhq-dataset-v2.json` manifest (DATASETS.md §3).

The JSON keys are the image indices as decimal strings; the index is taken from the key (in the
full manifest key = position). FFHQ carries no identity labels, so `subject` = `id`.

Columns of `index_ffhq()`:

| column | type | meaning |
|---|---|---|
| `id` | str | index zero-padded to 5 digits, e.g. `01000` |
| `path` | str | the manifest's `file_path` of the chosen kind, relative to the data root |
| `subject` | str | = `id` |
| `index` | int | image index 0..69999 |
| `category` | str | `training` or `validation` |
| `file_size` | int | bytes, from the manifest |
| `file_md5` | str | md5 hex of the file bytes, from the manifest |
| `width`, `height` | int | `pixel_size` from the manifest |
| `landmarks` | str | only with `landmarks=True`: the kind's `face_landmarks` as compact JSON (68 [x, y]) |

Landmarks are dropped by default: the 1024 images are already aligned, and 68 pairs per row
would make the index of the full dataset ~100 MB.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from facelatent.datasets.common import relative_inside
from facelatent.errors import InputFileError

log = logging.getLogger(__name__)

MANIFEST_NAME = "ffhq-dataset-v2.json"
KINDS = {"image": "image", "thumbnail": "thumbnail", "wild": "in_the_wild", "in_the_wild": "in_the_wild"}
COLUMNS = ["id", "path", "subject", "index", "category", "file_size", "file_md5", "width", "height"]


def read_ffhq_manifest(path: str | Path) -> dict[int, dict]:
    """The manifest as {index: entry}, in file order."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
        return {int(key): value for key, value in doc.items()}
    except (OSError, ValueError, AttributeError) as exc:
        raise InputFileError(path, f"cannot read the FFHQ manifest: {exc}") from exc


def check_relative_path(path: str, source: str | Path) -> str:
    """A manifest path must stay inside the data root: no absolute paths, no `..` (error names `source`)."""
    try:
        return relative_inside(path)
    except ValueError as exc:
        raise InputFileError(source, str(exc)) from None


def _section(entry: dict, kind: str, index: int, manifest: Path) -> dict:
    key = KINDS[kind]
    if key not in entry or "file_path" not in entry[key]:
        raise InputFileError(manifest, f"entry {index} has no '{key}.file_path'")
    return entry[key]


def index_ffhq(
    root: str | Path,
    manifest: str | Path | None = None,
    kind: str = "image",
    categories: Iterable[str] | None = None,
    indices: Iterable[int] | None = None,
    missing: str = "error",
    landmarks: bool = False,
) -> pd.DataFrame:
    """Index FFHQ files of one kind (`image`, `thumbnail`, `wild`) listed by the manifest.

    `manifest` defaults to `root/ffhq-dataset-v2.json`. `missing`: `error` (one-line error naming the
    first missing file and the count), `skip` (drop, logged) for listed files not under root, or
    `download` (keep every row without looking: the workflow downloads each shard after indexing).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {sorted(KINDS)}, got {kind!r}")
    if missing not in ("error", "skip", "download"):
        raise ValueError(f"missing must be 'error', 'skip' or 'download', got {missing!r}")
    root = Path(root)
    manifest = Path(manifest) if manifest is not None else root / MANIFEST_NAME
    entries = read_ffhq_manifest(manifest)
    wanted_cat = None if categories is None else set(categories)
    wanted_idx = None if indices is None else {int(i) for i in indices}
    rows = []
    for index, entry in entries.items():
        if (wanted_idx is not None and index not in wanted_idx) or (
            wanted_cat is not None and entry.get("category") not in wanted_cat
        ):
            continue
        sec = _section(entry, kind, index, manifest)
        width, height = sec.get("pixel_size", [-1, -1])
        row = dict(
            id=f"{index:05d}",
            path=check_relative_path(sec["file_path"], manifest),
            subject=f"{index:05d}",
            index=index,
            category=entry.get("category", ""),
            file_size=int(sec.get("file_size", -1)),
            file_md5=sec.get("file_md5", ""),
            width=int(width),
            height=int(height),
        )
        if landmarks:
            row["landmarks"] = json.dumps(sec.get("face_landmarks", []), separators=(",", ":"))
        rows.append(row)
    df = pd.DataFrame(rows, columns=COLUMNS + (["landmarks"] if landmarks else []))
    absent = [] if missing == "download" else [p for p in df["path"] if not (root / p).is_file()]
    if absent and missing == "error":
        raise InputFileError(
            root / absent[0],
            f"listed in {manifest.name} but missing ({len(absent)} of {len(df)} files missing; download them first)",
        )
    if absent:
        log.warning("%s: %d of %d listed files missing; skipped", root, len(absent), len(df))
        df = df[~df["path"].isin(set(absent))].reset_index(drop=True)
    return df.astype({c: np.int64 for c in ("index", "file_size", "width", "height")})
