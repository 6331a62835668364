"""The face-recognition jobs: make_benchmark_bin, train_fr, evaluate_fr (every model on every verification
benchmark, insightface's protocol) and compare_fr (the papers' table)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from facelatent.devices import pick_device
from facelatent.embeddings import load_embedder
from facelatent.errors import ConfigError, InputFileError
from facelatent.fr.compare import comparison_frame, comparison_markdown, plot_comparison, read_evaluations
from facelatent.fr.evaluate import FOLDS, TSV_COLUMNS, average_rows, benchmark_row, embed_fn, read_benchmark
from facelatent.fr.heldout import write_heldout_bin
from facelatent.fr.protocol import mirror_embeddings
from facelatent.store import atomic_write_text

log = logging.getLogger(__name__)


def make_benchmark_bin(
    *,
    shards: Sequence[str | Path],
    index: str | Path,
    subjects: int | None,
    pairs_per_kind: int,
    seed: int,
    out_bin: str | Path,
    out_json: str | Path,
) -> dict:
    """Rule make_benchmark_bin: a verification .bin (insightface's layout) from held-out subjects of an aligned
    dataset, and a JSON of what it holds."""
    return write_heldout_bin(
        shards=shards, index=index, subjects=subjects, pairs_per_kind=pairs_per_kind, seed=seed,
        out_bin=out_bin, out_json=out_json,
    )  # fmt: skip


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


def compare_fr(*, evaluations: Sequence[str | Path], out_tsv: str | Path, out_png: str | Path) -> pd.DataFrame:
    """Rule compare_fr: every evaluate_fr table in the papers' layout (TSV, logged as Markdown) and its plot."""
    frame = read_evaluations(evaluations)
    table = comparison_frame(frame)
    atomic_write_text(out_tsv, table.to_csv(sep="\t", index=False))
    plot_comparison(frame, out_png)
    log.info("comparison:\n%s", comparison_markdown(table))
    return table
