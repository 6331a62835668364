"""Dataset indexers: each returns a pandas DataFrame, one row per image, with `id`, `path`, `subject`.

`path` is relative to the dataset root given to the indexer. Indexers list directories (or read a
manifest) when a rule runs them; nothing here is meant to run at Snakefile parse time.
See each module's docstring for its columns.

Files:
- `ckplus.py`: CK+ (Extended Cohn-Kanade) indexer: one row per selected frame, labels read from the label trees.
- `common.py`: Helpers shared by the dataset indexers: directory listing, ids, atomic text writes.
- `ffhq.py`: FFHQ indexer from the `ffhq-dataset-v2.json` manifest (DATASETS.md §3).
- `folder.py`: Indexer for any tree of images (a user's photo folder).
- `job.py`: the `index_dataset` and `download_shard` rules' jobs.
- `multipie.py`: CMU Multi-PIE multiview indexer (DATASETS.md §2).
- `shards.py`: Shard assignment, the index / shard-manifest TSV files, the per-shard rows files and download lists.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from facelatent.datasets.ckplus import au_table, index_ckplus, locate_ckplus_trees, parse_aus
from facelatent.datasets.ffhq import index_ffhq, is_in_the_wild, iter_ffhq_manifest, read_ffhq_manifest
from facelatent.datasets.folder import index_folder
from facelatent.datasets.multipie import index_multipie, read_subject_list
from facelatent.datasets.shards import (
    assign_shards,
    read_download_list,
    read_index,
    read_shard_manifest,
    shard_counts,
    write_download_lists,
    write_index,
    write_shard_manifest,
    write_shard_rows,
)

INDEXERS = {"ckplus": index_ckplus, "multipie": index_multipie, "ffhq": index_ffhq, "folder": index_folder}


def index_dataset(dataset_kind: str, root: str | Path, **options) -> pd.DataFrame:
    """Dispatch to the indexer of `dataset_kind` (ckplus, multipie, ffhq, folder) with its keyword options
    (named apart from them: FFHQ's options have a `kind` of their own, image | thumbnail | in_the_wild)."""
    if dataset_kind not in INDEXERS:
        raise ValueError(f"unknown dataset kind {dataset_kind!r}; known: {sorted(INDEXERS)}")
    return INDEXERS[dataset_kind](root, **options)


def index_and_shard(
    dataset_kind: str,
    root: str | Path,
    index_tsv: str | Path,
    shard_manifest: str | Path,
    images_per_shard: int,
    **options,
) -> pd.DataFrame:
    """Index, assign shards, write the index TSV and the shard manifest (what an index rule does)."""
    df = assign_shards(index_dataset(dataset_kind, root, **options), images_per_shard)
    write_index(df, index_tsv)
    write_shard_manifest(df, shard_manifest)
    return df


__all__ = [
    "INDEXERS",
    "index_dataset",
    "index_and_shard",
    "index_ckplus",
    "index_multipie",
    "index_ffhq",
    "index_folder",
    "assign_shards",
    "write_index",
    "read_index",
    "write_shard_manifest",
    "read_shard_manifest",
    "shard_counts",
    "write_shard_rows",
    "write_download_lists",
    "read_download_list",
    "au_table",
    "parse_aus",
    "locate_ckplus_trees",
    "read_ffhq_manifest",
    "iter_ffhq_manifest",
    "is_in_the_wild",
    "read_subject_list",
]
