"""evaluate_fr's parts: a benchmark read from either form, a model's mirrored embeddings of it, and its rows.

evaluate_fr holds one benchmark's decoded images at a time (lfw: 12,000 x 112 x 112 x 3 uint8, about 450 MB) and
the models it compares.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import torch

from facelatent.errors import ConfigError
from facelatent.fr.binfile import PairSet, read_bin, resize_rgb
from facelatent.fr.pairs import LFW_PATTERN, read_pair_folder
from facelatent.fr.protocol import FR_FARS, pair_distances, tar_at_fars, ten_fold_accuracy

FOLDS = 10
AVERAGE = "average"
TSV_COLUMNS = ["model", "benchmark", "pairs", "accuracy", "accuracy_std", "threshold"] + [
    f"tar_at_far_{far:g}" for far in FR_FARS
]


def read_benchmark(name: str, spec: Mapping) -> PairSet:
    """A benchmark given as `{'bin': path}` or `{'pairs': path, 'root': folder, 'pattern': optional}`."""
    if "bin" in spec:
        return read_bin(spec["bin"])
    if "pairs" in spec and "root" in spec:
        return read_pair_folder(spec["pairs"], spec["root"], spec.get("pattern") or LFW_PATTERN)
    raise ConfigError(f"benchmarks.{name}: give 'bin', or 'pairs' and 'root' (got {sorted(spec)})")


def embed_fn(embedder, device: torch.device) -> Callable[[np.ndarray], np.ndarray]:
    """uint8 RGB (B, H, W, 3) -> (B, D) float32 through the embedder's own preprocessing, resized to its input."""
    size = tuple(embedder.input_size)

    @torch.no_grad()
    def embed(batch: np.ndarray) -> np.ndarray:
        if batch.shape[1:3] != size:
            batch = np.stack([resize_rgb(img, size) for img in batch])
        x = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2).float().to(device)
        return embedder.embed(x).float().cpu().numpy()

    return embed


def benchmark_row(model: str, benchmark: str, pairs: PairSet, embeddings: np.ndarray) -> dict:
    """One TSV row: 10-fold accuracy (pair-list folds when given) and TAR@FAR, in percent."""
    distances = pair_distances(embeddings)
    folds = pairs.folds if pairs.folds is not None else FOLDS
    result = ten_fold_accuracy(distances, pairs.issame, folds)
    row = dict(
        model=model,
        benchmark=benchmark,
        pairs=pairs.n_pairs,
        accuracy=round(100 * result.accuracy, 2),
        accuracy_std=round(100 * result.std, 2),
        threshold=round(result.threshold, 3),
        raw_accuracy=result.accuracy,
    )
    for far, point in tar_at_fars(distances, pairs.issame).items():
        row[f"tar_at_far_{far:g}"] = f"{100 * point.tar:.2f}" if point.resolved else "unresolved"
    return row


def average_rows(rows: list[dict]) -> list[dict]:
    """One row per model with benchmark 'average': the mean of its benchmarks' accuracies."""
    out = []
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model]
        mean = float(np.mean([r["raw_accuracy"] for r in mine]))
        out.append(
            dict(model=model, benchmark=AVERAGE, pairs=sum(r["pairs"] for r in mine), accuracy=round(100 * mean, 2))
        )
    return out
