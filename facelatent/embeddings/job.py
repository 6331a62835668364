"""The embedding jobs: embed_shard (one aligned shard in, its faces' FR embeddings out, batch by batch, resumable)
and embed_dataset (the shards merged, subjects joined from the index, verification metrics by subject).

embed_shard holds the shard's ids and one batch of images. Its progress (the finished batches) lives in
`<out>.partial` and is kept on a rerun when the resume key matches: the embedder weights' sha256, the aligned
shard's content digest, and the crop and batch size. embed_dataset holds the dataset's embeddings (N x D) and ids,
never an image.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from facelatent.align.crops import crop_ffhq_to_arcface
from facelatent.checkpoints import file_sha256
from facelatent.datasets import read_index
from facelatent.devices import pick_device
from facelatent.embeddings import load_embedder
from facelatent.embeddings.verification import MetricsConfig, histogram_summary, pair_histograms, plot_pair_histograms
from facelatent.errors import InputFileError
from facelatent.store import (
    atomic_h5,
    atomic_write_text,
    column_digest,
    concat_columns,
    content_digest,
    open_checked,
    open_resumable_h5,
    partial_path,
    read_attrs,
    read_table,
    write_column,
)

log = logging.getLogger(__name__)

FORMAT = "facelatent.embeddings"


def to_embedder_input(images: torch.Tensor, input_size: tuple[int, int], crop: str) -> torch.Tensor:
    """float RGB 0..255 [B,3,R,R] -> the FR model's input: `resize` (ArcFace-framed faces) or the `ffhq_to_arcface`
    box first."""
    if crop == "ffhq_to_arcface":
        images = crop_ffhq_to_arcface(images, out_size=max(images.shape[-1] // 8, 8) * 8)
    elif crop != "resize":
        raise ValueError(f"crop must be 'resize' or 'ffhq_to_arcface', got {crop!r}")
    return F.interpolate(images, size=tuple(input_size), mode="bicubic", align_corners=False, antialias=True).clamp(
        0, 255
    )


@torch.no_grad()
def embed_batch(embedder, images_nhwc: np.ndarray, crop: str, device: str | torch.device = "cpu") -> np.ndarray:
    """uint8 RGB faces [B, R, R, 3] -> embeddings [B, D] (float32)."""
    batch = torch.from_numpy(np.ascontiguousarray(images_nhwc)).permute(0, 3, 1, 2).float().to(device)
    return embedder.embed(to_embedder_input(batch, embedder.input_size, crop)).cpu().numpy()


def embed_images(
    embedder,
    images_nhwc: np.ndarray,
    crop: str,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> np.ndarray:
    """Embeddings [N, D] of faces already in memory, `batch_size` at a time (a rule streams them: embed_shard)."""
    out = [
        embed_batch(embedder, images_nhwc[i : i + batch_size], crop, device)
        for i in tqdm(range(0, len(images_nhwc), batch_size), desc="embed", disable=not progress, mininterval=2.0)
    ]
    dim = getattr(embedder, "embedding_dim", 512)
    return np.concatenate(out) if out else np.zeros((0, dim), np.float32)


def _spec_json(spec: str | Mapping) -> str | dict:
    return spec if isinstance(spec, str) else dict(spec)


# ---- embed_shard's partial file: the finished batches' embeddings ----------------------------


def _open_progress(path: Path, n: int, dim: int, n_batches: int, key: dict[str, str]) -> h5py.File:
    """The partial file to resume (same resume key and shape), or a fresh one."""
    fh, resumed = open_resumable_h5(
        path,
        key,
        lambda fh: fh["embeddings"].shape == (n, dim) and fh["batch_done"].shape == (max(1, n_batches),),
    )
    if resumed:
        done = int(fh["batch_done"][:n_batches].sum())
        log.info("resuming from %s: %d of %d batches done", partial_path(path), done, n_batches)
        return fh
    fh.create_dataset("embeddings", shape=(n, dim), dtype=np.float32)
    fh.create_dataset("batch_done", data=np.zeros(max(1, n_batches), dtype=bool))
    fh.flush()
    return fh


# ---- the rules' jobs ------------------------------------------------------------------------


def embed_shard(
    *,
    aligned: str | Path,
    spec: str | dict,
    crop: str,
    weights: str | Path,
    output: str | Path,
    batch_size: int = 32,
    device: str = "auto",
    progress: bool = True,
) -> dict:
    """Rule embed_shard: embed the faces of one aligned shard with the FR model `spec` read from `weights` (the
    rule's input file), `batch_size` images at a time, resuming from `<output>.partial`; writes ids + embeddings.

    Memory: the shard's ids and one batch of images (read from the file batch by batch, also for the digest).
    """
    output, batch_size = Path(output), int(batch_size)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = str(pick_device(device))
    embedder = load_embedder(spec, device=device, weights=weights)
    dim = int(embedder.embedding_dim)
    config = {"embedder": _spec_json(spec), "crop": crop}
    with open_checked(aligned, "facelatent.aligned") as src:
        # Read the ids and key the progress file on the weights, the shard's content and the batching.
        ids = np.array([i.decode() if isinstance(i, bytes) else str(i) for i in src["ids"][()]], dtype=object)
        images = src["images"]
        n = len(ids)
        if images.shape[0] != n:
            raise InputFileError(aligned, f"{images.shape[0]} images for {n} ids")
        key = {
            "embedder": file_sha256(weights),
            "input": column_digest(src, ["ids", "images"], batch_size),
            "config": content_digest(np.array(json.dumps({**config, "batch_size": batch_size}, sort_keys=True))),
        }
        starts = range(0, n, batch_size)
        # Embed batch by batch; each finished batch is flushed into the partial file.
        fh = _open_progress(output, n, dim, len(starts), key)
        try:
            for b, lo in enumerate(tqdm(starts, desc="embed", disable=not progress, mininterval=2.0)):
                if fh["batch_done"][b]:
                    continue
                hi = min(lo + batch_size, n)
                fh["embeddings"][lo:hi] = embed_batch(embedder, images[lo:hi], crop, device)
                fh["batch_done"][b] = True
                fh.flush()
            embeddings = fh["embeddings"][()]
        finally:
            fh.close()
    # Write the shard atomically (over the partial file, which the block above closed).
    provenance = {**config, "embedder_sha256": key["embedder"], "aligned_digest": key["input"]}
    with atomic_h5(output, FORMAT, {}, provenance) as out:
        write_column(out, "ids", ids)
        write_column(out, "embeddings", embeddings)
    log.info("embedded %d faces of %s", n, aligned)
    return {"n": n, "embedding_dim": dim}


def check_same_embedder(shards: Sequence[str | Path]) -> None:
    """A one-line error names a shard embedded with other weights or another crop than the first shard."""

    def identity(path: str | Path) -> tuple:
        config = read_attrs(path, FORMAT)["config"]
        return config.get("embedder_sha256"), config.get("crop")

    first = identity(shards[0]) if shards else None
    for path in shards[1:]:
        found = identity(path)
        if found != first:
            raise InputFileError(
                path,
                f"embedded with weights {found[0]} and crop {found[1]} but {shards[0]} with {first[0]} and "
                f"crop {first[1]}; re-embed the stale shards",
            )


def embed_dataset(
    *,
    shards: Sequence[str | Path],
    index_tsv: str | Path,
    spec: str | dict,
    crop: str,
    out_h5: str | Path,
    out_json: str | Path,
    out_png: str | Path,
    device: str = "auto",
    metrics_config: Mapping | None = None,
) -> dict:
    """Rule embed_dataset: merge the embed_shard files into one embeddings file (copied block by block) with each
    face's subject joined from the index, then verification metrics (same vs different subject) and their score
    histogram, computed blockwise. Memory: the embeddings (N x D) and the ids, never an image."""
    # Join the subjects to the shards' ids.
    device = str(pick_device(device))
    shards = [str(path) for path in shards]
    check_same_embedder(shards)
    ids = [str(i) for path in shards for i in read_table(path, FORMAT, ["ids"])["ids"]]
    index = read_index(index_tsv).set_index("id")
    missing = [i for i in ids if i not in index.index]
    if missing:
        raise InputFileError(index_tsv, f"{len(missing)} embedded ids are not in the index, e.g. {missing[0]}")
    subjects = index.loc[ids, "subject"].astype(str).to_numpy()
    del index

    # Merge the shards' embeddings, then read them back once for the metrics.
    # the weights' sha256 lets a later stage check it compares embeddings of the same FR model
    weights_sha256 = read_attrs(shards[0], FORMAT)["config"].get("embedder_sha256") if shards else None
    provenance = {"embedder": _spec_json(spec), "crop": crop, "embedder_sha256": weights_sha256}
    with atomic_h5(out_h5, FORMAT, {}, provenance) as fh:
        write_column(fh, "ids", np.array(ids, dtype=object))
        write_column(fh, "subjects", subjects)
        if shards:
            concat_columns(fh, shards, FORMAT, ["embeddings"])
        else:
            write_column(fh, "embeddings", np.zeros((0, 0), np.float32))
        emb = fh["embeddings"][()]

    # Verification metrics and their histogram.
    hists = pair_histograms(emb, subjects, MetricsConfig.from_dict(metrics_config), device=device)
    report: dict = {"n": len(ids), "n_subjects": int(len(set(subjects))), "embedder": str(spec)}
    if hists.n_genuine and hists.n_impostor:
        report.update(histogram_summary(hists))
        plot_pair_histograms(hists, out_png, title=f"{Path(out_h5).stem}: same vs different subject")
    else:
        report["note"] = "no genuine or no impostor pairs: one image per subject or one subject"
        plot_pair_histograms(hists, out_png, title=f"{Path(out_h5).stem}: not enough pairs")
    atomic_write_text(out_json, json.dumps(report, indent=2, default=float))
    log.info("embedded %d faces of %d subjects from %d shards", len(ids), report["n_subjects"], len(shards))
    return report
