"""The jobs behind index_dataset and download_shard: read the rule's files, call the indexers and the downloader,
write."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from facelatent.datasets import index_and_shard, read_index
from facelatent.download import download_ffhq
from facelatent.store import atomic_write_json

log = logging.getLogger(__name__)


def index_dataset(
    *,
    kind: str,
    root: str | Path,
    options: Mapping,
    images_per_shard: int,
    index: str | Path,
    shards: str | Path,
    manifest: str | Path | None = None,
) -> pd.DataFrame:
    """Checkpoint index_dataset: list a dataset's images and labels, assign shards, write the index and shard TSVs.

    `options`: the dataset's `options:` for its indexer; `manifest`: FFHQ's `ffhq-dataset-v2.json` (ffhq only).
    """
    options = dict(options)
    if kind == "ffhq":
        options["manifest"] = manifest
        options.setdefault("missing", "download")  # download_shard fetches each shard after indexing
    return index_and_shard(kind, root, index, shards, images_per_shard=images_per_shard, **options)


def download_shard(
    *, index: str | Path, shard: str, manifest: str | Path, root: str | Path, output: str | Path, workers: int = 4
) -> dict:
    """Rule download_shard: fetch one shard's FFHQ images (parallel, resumable, md5-checked), then write its receipt."""
    table = read_index(index)
    rows = table[table["shard"] == shard]
    report = download_ffhq(manifest, root, indices=rows["index"].astype(int).tolist(), workers=workers)
    receipt = {"shard": shard, "files": len(rows), "report": str(report)}
    atomic_write_json(output, receipt, indent=None)
    return receipt
