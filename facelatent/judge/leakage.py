"""Identity leakage: how close each synthetic identity comes to a real person, in the run's own FR model space.

For every synthetic identity's reference embedding, the most cosine-similar image among the real datasets'
per-image embeddings (`results/embeddings/{dataset}.h5`, rule embed_dataset) gives its max cosine and the real
subject it belongs to; the search runs in query x gallery tiles (`nearest_neighbours`), never an N x M matrix.

Threshold: an identity is dropped when its max cosine is >= `max_cosine`. Unset, it is the FR model's cosine at
FAR `far` (default 1e-3) among the real datasets' own impostor pairs (different subjects): the score above which
the model itself would accept only one in 1/far pairs of different real people, so a synthetic identity scoring
higher against some real image would be "verified" as that person by the very model that shaped it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from facelatent.embeddings.verification import (
    MetricsConfig,
    PairHistograms,
    histogram_tar_at_far,
    nearest_neighbours,
    pair_histograms,
)
from facelatent.errors import ConfigError, InputFileError
from facelatent.store import atomic_path, read_attrs, read_table

EMBEDDINGS_FORMAT = "facelatent.embeddings"
DEFAULT_FAR = 1e-3


@dataclass
class LeakageConfig:
    """`synthetic.runs.<run>.leakage` (defaults equal to the schema's)."""

    datasets: list[str] = field(default_factory=list)  # embedded real datasets to compare with
    max_cosine: float | None = None  # None: the real impostors' cosine at `far`
    far: float = DEFAULT_FAR

    @classmethod
    def from_dict(cls, values: Mapping | None, where: str = "synthetic.runs.<run>.leakage") -> LeakageConfig:
        values = dict(values or {})
        unknown = sorted(set(values) - {"datasets", "max_cosine", "far"})
        if unknown:
            raise ConfigError(f"unknown config key '{where}.{unknown[0]}' (allowed here: datasets, far, max_cosine)")
        config = cls(**values)
        if not 0 < config.far < 1:
            raise ConfigError(f"config key '{where}.far': must be in (0, 1), got {config.far}")
        return config


@dataclass
class RealEmbeddings:
    """Per-image embeddings of the real datasets, concatenated, with each row's dataset and subject."""

    embeddings: np.ndarray  # [M, D] float32
    datasets: np.ndarray  # [M] str
    subjects: np.ndarray  # [M] str


def embedder_identity(attrs_config: Mapping) -> dict:
    """What identifies the FR model of an embeddings file: its spec and, when recorded, the weights' sha256."""
    return {"spec": attrs_config.get("embedder"), "sha256": attrs_config.get("embedder_sha256")}


def check_same_fr_model(path: str | Path, found: Mapping, run_embedder: Mapping, run_spec) -> None:
    """One-line InputFileError unless the embeddings file `path` (identity `found`) comes from the run's FR model:
    the weights' sha256 when both files record it, else the same embedder spec."""
    expected_sha = run_embedder.get("checkpoint_sha256")
    if found.get("sha256") and expected_sha:
        if found["sha256"] != expected_sha:
            raise InputFileError(
                path, f"embedded with FR weights sha256 {found['sha256'][:12]}, the run with {expected_sha[:12]}"
            )
        return
    if json.dumps(found.get("spec"), sort_keys=True) != json.dumps(run_spec, sort_keys=True):
        raise InputFileError(path, f"embedded with FR model {found.get('spec')!r}, the run with {run_spec!r}")


def read_real_embeddings(paths: Mapping[str, str | Path], run_embedder: Mapping, run_spec) -> RealEmbeddings:
    """The datasets' embeddings files (name -> path), each checked to come from the run's FR model."""
    parts = []
    for name, path in paths.items():
        check_same_fr_model(
            path, embedder_identity(read_attrs(path, EMBEDDINGS_FORMAT)["config"]), run_embedder, run_spec
        )
        cols = read_table(path, EMBEDDINGS_FORMAT, ["embeddings", "subjects"])
        if len(cols["subjects"]) == 0:
            raise InputFileError(path, "the embeddings file has no rows")
        width = cols["embeddings"].shape[1]
        if width != run_embedder.get("embedding_dim", width):
            raise InputFileError(
                path, f"{width}-d embeddings, the run's FR model gives {run_embedder['embedding_dim']}"
            )
        parts.append((name, cols))
    return RealEmbeddings(
        np.concatenate([c["embeddings"] for _, c in parts]).astype(np.float32),
        np.concatenate([np.full(len(c["subjects"]), name, dtype=object) for name, c in parts]),
        np.concatenate([c["subjects"].astype(str).astype(object) for _, c in parts]),
    )


def closest_real(queries: np.ndarray, gallery: np.ndarray, block_size: int = MetricsConfig.block_size):
    """(max cosine [N], index [N]) of each query's most similar gallery row, found in query x gallery tiles."""
    index = nearest_neighbours(queries, gallery, block_size=block_size)
    q = queries.astype(np.float64) / np.linalg.norm(queries, axis=1, keepdims=True).clip(1e-12)
    g = gallery[index].astype(np.float64)
    g /= np.linalg.norm(g, axis=1, keepdims=True).clip(1e-12)
    return (q * g).sum(axis=1), index


def real_pair_histograms(real: RealEmbeddings, metrics_config: MetricsConfig | Mapping | None) -> PairHistograms:
    """Genuine / impostor cosine histograms among the real images (subject ids qualified by their dataset)."""
    labels = np.array([f"{d}/{s}" for d, s in zip(real.datasets, real.subjects, strict=True)], dtype=object)
    return pair_histograms(real.embeddings, labels, metrics_config)


def impostor_threshold(hists: PairHistograms, far: float) -> tuple[float, bool]:
    """(cosine, resolved): the lowest histogram edge whose share of real impostor pairs at or above it is <= far;
    `resolved` is False when the set has fewer than 1 / far impostor pairs (the threshold is then the max)."""
    point, _ = histogram_tar_at_far(hists.genuine, hists.impostor, far)
    return float(point.threshold), bool(point.resolved)


def leakage_table(
    identity: np.ndarray, max_cosine: np.ndarray, index: np.ndarray, real: RealEmbeddings, threshold: float
) -> pd.DataFrame:
    """One row per synthetic identity: its closest real dataset and subject, the max cosine, and whether dropped."""
    return pd.DataFrame(
        {
            "identity": np.asarray(identity, np.int64),
            "closest_dataset": real.datasets[index],
            "closest_subject": real.subjects[index],
            "max_cosine": np.round(max_cosine, 6),
            "dropped": max_cosine >= threshold,
        }
    )


def write_kept_crops(
    manifest: str | Path, dropped: Sequence[int], out_path: str | Path, chunk_rows: int = 65536
) -> int:
    """The crops manifest's rows of identities not dropped, read and written in chunks, atomically; returns the rows."""
    dropped, rows = set(int(i) for i in dropped), 0
    with atomic_path(out_path) as tmp, open(tmp, "w") as out:
        reader = pd.read_csv(
            manifest, sep="\t", dtype={"identity": np.int64, "label": str, "path": str}, chunksize=chunk_rows
        )
        for k, chunk in enumerate(reader):
            kept = chunk[~chunk["identity"].isin(dropped)]
            kept.to_csv(out, sep="\t", index=False, header=k == 0)
            rows += len(kept)
    return rows


def plot_leakage(
    max_cosine: np.ndarray, threshold: float, real: PairHistograms | None, path: str | Path, bins: int = 60
) -> Path:
    """Densities of the synthetic identities' max cosine to a real image, with the threshold line, over the real
    images' own genuine / impostor cosines for scale; atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from facelatent.embeddings.verification import coarse_bins
    from facelatent.figures import save_figure

    fig = Figure(figsize=(6.4, 4.0), dpi=100)
    FigureCanvasAgg(fig)  # Agg canvas without pyplot's global state
    ax = fig.add_subplot(1, 1, 1)
    if real is not None:
        edges, (imp, gen) = coarse_bins([real.impostor, real.genuine], bins)
        for counts, color, label in ((imp, "tab:red", "real impostor pairs"), (gen, "tab:blue", "real genuine pairs")):
            if counts.sum():
                ax.stairs(
                    counts / (counts.sum() * np.diff(edges)), edges, fill=True, alpha=0.35, color=color, label=label
                )
    label = f"synthetic identity: max cosine to a real image (n={len(max_cosine)})"
    ax.hist(
        max_cosine, bins=min(bins, max(5, len(max_cosine))), density=True, histtype="step", color="black", label=label
    )
    ax.axvline(threshold, color="tab:orange", linestyle="--", linewidth=1.5, label=f"drop threshold {threshold:.3f}")
    ax.set_xlabel("cosine similarity")
    ax.set_ylabel("density")
    ax.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)
