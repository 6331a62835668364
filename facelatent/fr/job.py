"""The face-recognition jobs: evaluate_fr (every model on every verification benchmark, insightface's protocol).

evaluate_fr holds one benchmark's decoded images at a time (lfw: 12,000 x 112 x 112 x 3 uint8, about 450 MB) and
the models it compares.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from facelatent.devices import pick_device
from facelatent.embeddings import load_embedder
from facelatent.errors import ConfigError, InputFileError
from facelatent.fr.binfile import PairSet, read_bin, resize_rgb
from facelatent.fr.pairs import LFW_PATTERN, read_pair_folder
from facelatent.fr.protocol import FR_FARS, mirror_embeddings, pair_distances, tar_at_fars, ten_fold_accuracy
from facelatent.store import atomic_write_text

log = logging.getLogger(__name__)

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


def evaluate_fr(
    *,
    models: Mapping[str, str],
    weights: Mapping[str, str | Path],
    benchmarks: Mapping[str, Mapping],
    out_tsv: str | Path,
    device: str = "auto",
    batch_size: int = 64,
    progress: bool = True,
) -> pd.DataFrame:
    """Rule evaluate_fr: every model (row label -> embedder spec, weights from `weights[label]`) on every benchmark,
    mirror embeddings and insightface's 10-fold protocol; writes one TSV row per (model, benchmark) plus an
    'average' row per model, accuracies in percent."""
    if not models or not benchmarks:
        raise ConfigError("evaluate_fr: needs at least one model and one benchmark")
    missing = [label for label in models if label not in weights]
    if missing:
        raise ConfigError(f"evaluate_fr.weights: no weights file for model '{missing[0]}'")
    device = pick_device(device)
    embedders = {label: load_embedder(spec, device=device, weights=weights[label]) for label, spec in models.items()}
    rows = []
    for name, spec in benchmarks.items():
        pairs = read_benchmark(name, spec)
        if pairs.n_pairs < FOLDS:
            raise InputFileError(pairs.source, f"{pairs.n_pairs} pairs: the {FOLDS}-fold protocol needs {FOLDS}")
        for label, embedder in embedders.items():
            embeddings = mirror_embeddings(embed_fn(embedder, device), pairs.images, batch_size, progress)
            row = benchmark_row(label, name, pairs, embeddings)
            log.info(
                "%s on %s: %.2f +- %.2f %% over %d pairs (threshold %.3f)",
                label, name, row["accuracy"], row["accuracy_std"], row["pairs"], row["threshold"],
            )  # fmt: skip
            rows.append(row)
        del pairs  # one benchmark's images at a time
    frame = pd.DataFrame(rows + average_rows(rows)).reindex(columns=TSV_COLUMNS)
    frame = frame.sort_values("model", key=lambda s: s.map(list(models).index), kind="stable").reset_index(drop=True)
    atomic_write_text(out_tsv, frame.to_csv(sep="\t", index=False))
    return frame


def comparison_table(frame: pd.DataFrame) -> str:
    """The papers' layout as Markdown: one row per model (training set), one column per benchmark
    ('acc ± std', percent) and 'avg'."""
    scores = frame[frame["benchmark"] != AVERAGE]
    benchmarks = list(dict.fromkeys(scores["benchmark"]))
    lines = ["| model | " + " | ".join([*benchmarks, "avg"]) + " |", "|---" * (len(benchmarks) + 2) + "|"]
    for model in dict.fromkeys(frame["model"]):
        mine = frame[frame["model"] == model].set_index("benchmark")
        cells = [
            f"{mine.at[b, 'accuracy']:.2f} ± {mine.at[b, 'accuracy_std']:.2f}" if b in mine.index else ""
            for b in benchmarks
        ]
        cells.append(f"{mine.at[AVERAGE, 'accuracy']:.2f}" if AVERAGE in mine.index else "")
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
