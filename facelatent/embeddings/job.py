"""embed_dataset: face-recognition embeddings of an aligned dataset, with verification metrics by subject."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from facelatent.align.crops import crop_ffhq_to_arcface
from facelatent.datasets import read_index
from facelatent.devices import pick_device
from facelatent.embeddings import load_embedder
from facelatent.embeddings.verification import MetricsConfig, histogram_summary, pair_histograms, plot_pair_histograms
from facelatent.store import atomic_write_text, read_table, write_table

log = logging.getLogger(__name__)


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
def embed_images(
    embedder,
    images_nhwc: np.ndarray,
    crop: str,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> np.ndarray:
    out = []
    for i in tqdm(range(0, len(images_nhwc), batch_size), desc="embed", disable=not progress, mininterval=2.0):
        batch = torch.from_numpy(images_nhwc[i : i + batch_size]).permute(0, 3, 1, 2).float().to(device)
        out.append(embedder.embed(to_embedder_input(batch, embedder.input_size, crop)).cpu())
    dim = getattr(embedder, "embedding_dim", 512)
    return torch.cat(out).numpy() if out else np.zeros((0, dim), np.float32)


def embed_dataset(
    *,
    aligned: Sequence[str | Path],
    index_tsv: str | Path,
    spec: str | dict,
    crop: str,
    weights: str | Path,
    out_h5: str | Path,
    out_json: str | Path,
    out_png: str | Path,
    device: str = "auto",
    metrics_config: Mapping | None = None,
) -> dict:
    """Rule embed_dataset: embed every aligned face with the FR model `spec` read from `weights` (the rule's input
    file), then verification metrics (same vs different subject) and their score histogram."""
    device = str(pick_device(device))
    embedder = load_embedder(spec, device=device, weights=weights)
    ids, images = [], []
    for path in aligned:
        table = read_table(path, "facelatent.aligned", ["ids", "images"])
        ids += [str(i) for i in table["ids"]]
        images.append(table["images"])
    stacked = np.concatenate(images) if images else np.zeros((0, 8, 8, 3), np.uint8)
    emb = embed_images(embedder, stacked, crop, device=device)
    subjects = read_index(index_tsv).set_index("id").loc[ids, "subject"].astype(str).to_numpy()
    write_table(
        out_h5,
        "facelatent.embeddings",
        {"ids": np.array(ids), "subjects": subjects, "embeddings": emb},
        generator={},
        config={"embedder": spec if isinstance(spec, str) else dict(spec), "crop": crop},
    )
    hists = pair_histograms(emb, subjects, MetricsConfig.from_dict(metrics_config), device=device)
    report: dict = {"n": len(ids), "n_subjects": int(len(set(subjects))), "embedder": str(spec)}
    if hists.n_genuine and hists.n_impostor:
        report.update(histogram_summary(hists))
        plot_pair_histograms(hists, out_png, title=f"{Path(out_h5).stem}: same vs different subject")
    else:
        report["note"] = "no genuine or no impostor pairs: one image per subject or one subject"
        plot_pair_histograms(hists, out_png, title=f"{Path(out_h5).stem}: not enough pairs")
    atomic_write_text(out_json, json.dumps(report, indent=2, default=float))
    log.info("embedded %d faces of %d subjects", len(ids), report["n_subjects"])
    return report
