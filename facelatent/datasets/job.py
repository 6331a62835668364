"""The jobs behind index_dataset and download_shard: read the rule's files, call the indexers and the downloader,
write."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from facelatent.datasets import (
    assign_shards,
    index_and_shard,
    index_ffhq,
    read_download_list,
    write_download_lists,
    write_index,
    write_shard_manifest,
    write_shard_rows,
)
from facelatent.datasets.ffhq import DEFAULT_KIND, is_in_the_wild
from facelatent.download import download_files
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
    rows: str | Path,
    downloads: str | Path,
    manifest: str | Path | None = None,
) -> pd.DataFrame:
    """Checkpoint index_dataset: list a dataset's images and labels, assign shards, write the index and shard TSVs,
    each shard's rows into the folder `rows` (what a per-shard job reads instead of the index), and each shard's
    download list into the folder `downloads` (FFHQ; the folder stays empty for other kinds).

    `options`: the dataset's `options:` for its indexer; `manifest`: FFHQ's `ffhq-dataset-v2.json` (ffhq only),
    streamed once here so that no download job reads it.
    """
    options = dict(options)
    if kind != "ffhq":
        write_download_lists(None, downloads)
        df = index_and_shard(kind, root, index, shards, images_per_shard=images_per_shard, **options)
        write_shard_rows(df, rows)
        return df

    # One pass over the manifest: the index columns plus what the download lists need (URL, landmarks).
    options["manifest"] = manifest
    options.setdefault("missing", "download")  # download_shard fetches each shard after indexing
    keep_landmarks = options.pop("landmarks", False)
    df = assign_shards(index_ffhq(root, **options, landmarks=True, urls=True), images_per_shard)
    write_download_lists(df, downloads)
    df = df.drop(columns=["url"])

    # In-the-wild photos are aligned from their landmarks, so their rows keep them whatever the config says.
    wild = is_in_the_wild(options.get("kind", DEFAULT_KIND))
    write_shard_rows(df if keep_landmarks or wild else df.drop(columns=["landmarks"]), rows)

    # The index keeps landmarks only when the config asks for them.
    if not keep_landmarks:
        df = df.drop(columns=["landmarks"])
    write_index(df, index)
    write_shard_manifest(df, shards)
    return df


def download_shard(
    *, download_list: str | Path, shard: str, root: str | Path, output: str | Path, workers: int = 4
) -> dict:
    """Rule download_shard: fetch the files of one shard's download list (parallel, resumable, md5-checked), then
    write its receipt. It reads only its own list, and writes only its files under `root` and its receipt."""
    entries = read_download_list(download_list)
    report = download_files(entries, root, workers=workers)
    receipt = {"shard": shard, "files": len(entries), "report": str(report)}
    atomic_write_json(output, receipt, indent=None)
    return receipt
