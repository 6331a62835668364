"""The jobs behind the judge rules: judge_synthetic (dlib's ResNet vs the run's own FR model on a synthetic set)
and check_leakage (each synthetic identity's closest real person; the kept identities' crops)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from facelatent.embeddings.dlib_resnet import SAME_PERSON_DISTANCE, DlibResNetEmbedder
from facelatent.embeddings.verification import MetricsConfig, plot_pair_histograms
from facelatent.errors import ConfigError, InputFileError
from facelatent.images import read_rgb
from facelatent.judge.leakage import (
    LeakageConfig,
    closest_real,
    impostor_threshold,
    leakage_table,
    plot_leakage,
    read_real_embeddings,
    real_pair_histograms,
    write_kept_crops,
)
from facelatent.judge.separation import separation
from facelatent.store import atomic_write_text
from facelatent.synthetic.files import REFERENCE_LABEL, iter_samples, read_sample_attrs, read_sample_embeddings

log = logging.getLogger(__name__)

MANIFEST_DTYPES = {"identity": np.int64, "label": str, "path": str}


def judged_identities(manifest: str | Path, max_identities: int | None, chunk_rows: int = 65536) -> np.ndarray:
    """The identities to judge: the manifest's `max_identities` lowest identity numbers, or all of them (None)."""
    found: set[int] = set()
    for chunk in pd.read_csv(manifest, sep="\t", usecols=["identity"], dtype=np.int64, chunksize=chunk_rows):
        found.update(int(i) for i in chunk["identity"].unique())
    if not found:
        raise InputFileError(manifest, "the crops manifest has no rows")
    identities = np.sort(np.fromiter(found, np.int64))
    return identities if max_identities is None else identities[:max_identities]


def embed_crops(
    embedder: DlibResNetEmbedder,
    manifest: str | Path,
    crops_dir: str | Path,
    identities: np.ndarray | None = None,
    block_rows: int = 256,
) -> tuple[np.ndarray, np.ndarray]:
    """(identity [N], descriptors [N, 128]) of the manifest's crops (of `identities` only, when given), read and
    embedded `block_rows` at a time (memory: one block of images plus the descriptors)."""
    identities_, blocks = [], []
    reader = pd.read_csv(manifest, sep="\t", dtype=MANIFEST_DTYPES, chunksize=block_rows)
    for chunk in tqdm(reader, desc="dlib", unit="block", mininterval=5.0):
        if identities is not None:
            chunk = chunk[chunk["identity"].isin(identities)]
        images = [read_rgb(Path(crops_dir) / path) for path in chunk["path"]]
        blocks.append(embedder.embed_arrays(images))
        identities_.append(chunk["identity"].to_numpy(np.int64))
    if not blocks:
        raise InputFileError(manifest, "the crops manifest has no rows")
    return np.concatenate(identities_), np.concatenate(blocks)


def judge_synthetic(
    *,
    samples: str | Path,
    manifest: str | Path,
    crops_dir: str | Path,
    model: str | Path,
    predictor: str | Path,
    out_json: str | Path,
    out_png: str | Path,
    max_identities: int | None = None,
    metrics_config: Mapping | None = None,
    batch_size: int = 64,
) -> dict:
    """Rule judge_synthetic: identity separation (genuine = same identity) of a run's crops under dlib's ResNet,
    with dlib's 0.6 distance rule, next to the same figures from the run's own FR embeddings (samples.h5), both
    on the faces of the `max_identities` lowest identity numbers (None: every identity)."""
    config = MetricsConfig.from_dict(metrics_config)
    embedder = DlibResNetEmbedder(model, predictor, batch_size=batch_size)
    judged = judged_identities(manifest, max_identities)
    identity, descriptors = embed_crops(embedder, manifest, crops_dir, judged, block_rows=4 * batch_size)
    try:
        dlib_summary, dlib_hists = separation(descriptors, identity, config, distance_threshold=SAME_PERSON_DISTANCE)
    except ValueError as exc:  # e.g. every judged crop blank: no pair to score
        raise InputFileError(manifest, f"dlib judge: {exc}") from None
    del descriptors
    own = read_sample_embeddings(samples)
    is_judged = np.isin(own.identity, judged)
    own_summary, _ = separation(own.embedding[is_judged], own.identity[is_judged], config)
    report = {
        "dlib": {**dlib_summary, "embedder": embedder.describe()},
        "fr_model": {**own_summary, "embedder": read_sample_attrs(samples).get("embedder", {})},
    }
    plot_pair_histograms(
        dlib_hists,
        out_png,
        title=f"{Path(samples).parent.name}: dlib ResNet, same vs different identity",
        thresholds={"EER": dlib_summary["eer_threshold"]},
    )
    atomic_write_text(out_json, json.dumps(report, indent=2, sort_keys=True, default=float))
    log.info(
        "dlib judge on %d crops (%d NaN rows dropped): EER %.4f (run's FR model %.4f); genuine < %.1f: %.3f, "
        "impostor >= %.1f: %.3f",
        dlib_summary["num_faces"],
        dlib_summary["dropped_nan_rows"],
        dlib_summary["eer"],
        own_summary["eer"],
        SAME_PERSON_DISTANCE,
        dlib_summary["euclidean_threshold"]["genuine_below"],
        SAME_PERSON_DISTANCE,
        dlib_summary["euclidean_threshold"]["impostor_at_or_above"],
    )
    return report


def reference_rows(samples: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(identity [N], embedding [N, D]) of each identity's reference row, read block by block."""
    identities, embeddings = [], []
    for block in iter_samples(samples, columns=("embedding",)):
        is_ref = block.label == REFERENCE_LABEL
        identities.append(block.identity[is_ref])
        embeddings.append(block.embedding[is_ref])
    return np.concatenate(identities).astype(np.int64), np.concatenate(embeddings).astype(np.float32)


def check_leakage(
    *,
    samples: str | Path,
    manifest: str | Path,
    embeddings: Sequence[str | Path],
    datasets: Sequence[str],
    leakage_cfg: Mapping | None,
    run_spec: str | Mapping,
    out_tsv: str | Path,
    out_train: str | Path,
    out_json: str | Path,
    out_png: str | Path,
    metrics_config: Mapping | None = None,
) -> dict:
    """Rule check_leakage: each synthetic identity's max cosine to any real image of `datasets` (their embeddings
    files, from the run's FR model `run_spec`), the identities at or over the threshold dropped, and the crops
    manifest of the kept ones (train.tsv)."""
    config = LeakageConfig.from_dict(leakage_cfg)
    if len(embeddings) != len(datasets) or not datasets:
        raise ConfigError(f"leakage needs one embeddings file per dataset, got {list(embeddings)} for {list(datasets)}")
    run_embedder = read_sample_attrs(samples).get("embedder", {})
    real = read_real_embeddings(dict(zip(datasets, embeddings, strict=True)), run_embedder, run_spec)
    identity, refs = reference_rows(samples)
    max_cosine, index = closest_real(refs, real.embeddings)
    real_hists = real_pair_histograms(real, metrics_config)

    # The threshold: configured, or the real impostors' cosine at FAR `far`.
    resolved = True
    if config.max_cosine is not None:
        threshold, source = float(config.max_cosine), "config"
    elif real_hists.n_impostor:
        threshold, resolved = impostor_threshold(real_hists, config.far)
        source = f"real impostor pairs at FAR {config.far:g}"
    else:
        raise InputFileError(embeddings[0], "one real subject only: no impostor pairs to set the threshold from")
    table = leakage_table(identity, max_cosine, index, real, threshold)
    atomic_write_text(out_tsv, table.to_csv(sep="\t", index=False))
    kept_rows = write_kept_crops(manifest, table.loc[table["dropped"], "identity"], out_train)
    plot_leakage(max_cosine, threshold, real_hists if real_hists.n_genuine else None, out_png)
    summary = {
        "datasets": list(datasets),
        "num_real_images": len(real.subjects),
        "num_identities": len(identity),
        "dropped": int(table["dropped"].sum()),
        "kept_crops": kept_rows,
        "threshold": threshold,
        "threshold_source": source,
        "threshold_resolved": resolved,
        "max_cosine": {
            "min": float(max_cosine.min()),
            "mean": float(max_cosine.mean()),
            "max": float(max_cosine.max()),
        },
        "real_impostor_mean": real_hists.impostor.mean,
        "real_genuine_mean": real_hists.genuine.mean,
    }
    atomic_write_text(out_json, json.dumps(summary, indent=2, sort_keys=True, default=float))
    log.info(
        "leakage: %d of %d identities dropped at max cosine >= %.4f (%s); max cosine %.4f..%.4f",
        summary["dropped"],
        len(identity),
        threshold,
        source,
        max_cosine.min(),
        max_cosine.max(),
    )
    return summary
