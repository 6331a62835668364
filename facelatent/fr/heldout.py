"""The parts of a verification `.bin` drawn from held-out subjects of an aligned dataset (the file itself:
`job.make_benchmark_bin`), and an aligned training set's subjects.

Genuine pairs are drawn from every pair of images of one subject, impostor pairs from images of two different
subjects, as many of each (seeded, without repeats), in random order and interleaved, so that every contiguous
tenth (a fold of the 10-fold protocol) holds both kinds and many subjects. Only the images the pairs use are
read, one shard at a time.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from facelatent.datasets import read_index
from facelatent.errors import InputFileError
from facelatent.fr.plan import training_subjects
from facelatent.store import open_checked

log = logging.getLogger(__name__)

BENCHMARK_SIZE = 112  # insightface's verification sets hold 112 x 112 ArcFace-aligned crops


def genuine_pairs(subject_of: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Up to `count` distinct (i, j) index pairs with i < j of the same subject, drawn uniformly."""
    pairs = [
        pair
        for subject in np.unique(subject_of)
        for pair in itertools.combinations(np.flatnonzero(subject_of == subject), 2)
    ]
    if not pairs:
        raise ValueError("no subject has two images: no genuine pair can be drawn")
    chosen = rng.choice(len(pairs), size=min(count, len(pairs)), replace=False)  # in random order: folds mix subjects
    return np.asarray(pairs, dtype=np.int64)[chosen]


def impostor_pairs(subject_of: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` distinct (i, j) index pairs with i < j of different subjects, by rejection (impostors dominate)."""
    n = len(subject_of)
    possible = (n * n - int((np.unique(subject_of, return_counts=True)[1] ** 2).sum())) // 2
    if possible < count:
        raise ValueError(f"only {possible} impostor pairs exist, {count} asked for")
    found: set[tuple[int, int]] = set()
    while len(found) < count:
        i, j = (int(v) for v in rng.integers(0, n, size=2))
        if subject_of[i] != subject_of[j]:
            found.add((min(i, j), max(i, j)))
    return rng.permutation(np.asarray(sorted(found), dtype=np.int64))  # sorted first: the draw alone sets the order


def interleave(genuine: np.ndarray, impostor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs alternating genuine / impostor (as many of each), and their is-same flags."""
    count = min(len(genuine), len(impostor))
    pairs = np.empty((2 * count, 2), np.int64)
    pairs[0::2], pairs[1::2] = genuine[:count], impostor[:count]
    issame = np.tile([True, False], count)
    return pairs, issame


def read_images(shards: Sequence[str | Path], wanted: Sequence[str], size: int) -> dict[str, np.ndarray]:
    """The wanted ids' aligned images, resized to `size`, reading one shard at a time."""
    wanted_set, found = set(wanted), {}
    for shard in shards:
        with open_checked(shard, "facelatent.aligned") as fh:
            ids = fh["ids"].asstr()[()]
            rows = [k for k, i in enumerate(ids) if i in wanted_set]
            if rows:
                for image_id, image in zip(ids[rows], fh["images"][rows], strict=True):
                    found[str(image_id)] = cv2.resize(image, (size, size), interpolation=cv2.INTER_CUBIC)
    return found


def aligned_subjects(index: pd.DataFrame, shards: Sequence[str | Path], index_path: str | Path) -> pd.DataFrame:
    """id and subject of every image that aligned (rejected images are not in any shard)."""
    if "subject" not in index.columns:
        raise InputFileError(index_path, "the index has no 'subject' column: its identities are unknown")
    aligned: list[str] = []
    for shard in shards:
        with open_checked(shard, "facelatent.aligned") as fh:
            aligned += list(fh["ids"].asstr()[()])
    return index.loc[index["id"].isin(aligned), ["id", "subject"]].sort_values("id").reset_index(drop=True)


def resolve_train_set(train_set: Mapping) -> dict:
    """An aligned training set given by its benchmarks' hold-outs (`held_out`: their `subjects` counts) as the
    explicit list of subjects it trains on: every aligned subject that no benchmark holds out."""
    train_set = dict(train_set)
    if train_set.get("kind") != "aligned" or "held_out" not in train_set:
        return train_set
    counts = train_set.pop("held_out")
    table = aligned_subjects(read_index(train_set["index"]), train_set["shards"], train_set["index"])
    train_set["subjects"] = training_subjects(table["subject"], counts)
    log.info(
        "training on %d subjects of %s (%d held out)",
        len(train_set["subjects"]),
        train_set["index"],
        table["subject"].nunique() - len(train_set["subjects"]),
    )
    return train_set
