"""The face-recognition jobs: make_benchmark_bin (a held-out .bin), train_fr (an IResNet with a margin head on an
identity-labelled set; resumable, DDP across devices; writes the trained and the initial backbone and per-epoch
metrics), evaluate_fr (every model on every verification benchmark, insightface's protocol) and compare_fr (the
papers' table)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd

from facelatent.datasets import read_index
from facelatent.devices import pick_device
from facelatent.embeddings import load_embedder
from facelatent.errors import ConfigError, InputFileError
from facelatent.fr.augment import Augmentation
from facelatent.fr.binfile import write_bin
from facelatent.fr.compare import comparison_frame, comparison_markdown, plot_comparison, read_evaluations
from facelatent.fr.config import FRTrainConfig, fr_train_config
from facelatent.fr.data import FRDataModule, identity_dataset
from facelatent.fr.evaluate import FOLDS, TSV_COLUMNS, average_rows, benchmark_row, embed_fn, read_benchmark
from facelatent.fr.heldout import (
    BENCHMARK_SIZE,
    aligned_subjects,
    genuine_pairs,
    impostor_pairs,
    interleave,
    read_images,
    resolve_train_set,
)
from facelatent.fr.lightning_module import FRTrainer
from facelatent.fr.model import convert_global_batchnorm, count_parameters, save_backbone
from facelatent.fr.plan import held_out_subjects
from facelatent.fr.protocol import mirror_embeddings
from facelatent.fr.train import build_trainer, merged_metrics, resolve_accelerator, resume_checkpoint, resume_key
from facelatent.pickle_safe import TORCH_SAFE_GLOBALS
from facelatent.store import atomic_write_json, atomic_write_text

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
    """Rule make_benchmark_bin: a verification .bin (insightface's layout, PNG-encoded 112 px crops) from held-out
    subjects of an aligned dataset, and a JSON of what it holds."""
    table = aligned_subjects(read_index(index), shards, index)
    held = held_out_subjects(table["subject"], subjects)
    table = table[table["subject"].isin(held)].reset_index(drop=True)
    subject_of = table["subject"].to_numpy()
    rng = np.random.default_rng(seed)
    genuine = genuine_pairs(subject_of, pairs_per_kind, rng)
    pairs, issame = interleave(genuine, impostor_pairs(subject_of, len(genuine), rng))
    ids = table["id"].to_numpy()[pairs.ravel()]
    images = read_images(shards, sorted(set(ids)), BENCHMARK_SIZE)
    write_bin(out_bin, np.stack([images[i] for i in ids]), issame.tolist(), fmt=".png")
    summary = {
        "subjects": held,
        "images": int(len(set(ids))),
        "pairs": int(len(issame)),
        "genuine": int(issame.sum()),
        "impostor": int((~issame).sum()),
        "size": BENCHMARK_SIZE,
        "seed": seed,
    }
    atomic_write_json(out_json, summary, indent=1)
    log.info(
        "%s: %d pairs (%d genuine) over %d images of %d held-out subjects",
        out_bin,
        len(issame),
        issame.sum(),
        summary["images"],
        len(held),
    )
    return summary


def initial_module(cfg: FRTrainConfig, num_classes: int, key: str) -> FRTrainer:
    """The network at its seeded initialisation (the same weights on every rank and on every rerun)."""
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    return FRTrainer(
        num_classes,
        cfg.arch,
        cfg.embedding_dim,
        cfg.head,
        cfg.s,
        cfg.margin,
        cfg.h,
        cfg.t_alpha,
        cfg.lr,
        cfg.momentum,
        cfg.weight_decay,
        tuple(cfg.milestones),
        key,
    )


def train_fr(
    *,
    train_set: Mapping,
    cfg: Mapping | FRTrainConfig,
    out_backbone: str | Path,
    out_initial: str | Path,
    metrics_csv: str | Path,
    checkpoint_dir: str | Path,
    devices: int | None = None,
    accelerator: str = "auto",
) -> dict:
    """Rule train_fr: train on `train_set` ({'kind': 'crops', 'manifest', 'root'} or {'kind': 'aligned', 'shards',
    'index', 'subjects'}), resuming from checkpoint_dir/last.ckpt when it was written for the same config and
    files; rank 0 writes the trained backbone, the initial one and the per-epoch metrics, each atomically."""
    import torch

    cfg = fr_train_config(cfg)
    devices = cfg.devices if devices is None else devices  # the rule asks the scheduler for cfg.devices
    accelerator = resolve_accelerator(accelerator)
    checkpoint_dir = Path(checkpoint_dir)
    train_set = resolve_train_set(train_set)  # an aligned set's training subjects, from its benchmarks' hold-outs
    dataset = identity_dataset(train_set)
    key = resume_key(cfg, train_set)
    resume = resume_checkpoint(checkpoint_dir, key)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    n_classes = len(dataset.identities)
    module = initial_module(cfg, n_classes, key)
    log.info(
        "train_fr: %s + %s on %d images of %d identities, %d device(s) (%s), %d backbone parameters",
        cfg.arch,
        cfg.head,
        len(dataset),
        n_classes,
        devices,
        accelerator,
        count_parameters(module.model.backbone),
    )
    if devices > 1:  # batch statistics over the global batch, as one process computes them
        convert_global_batchnorm(module.model)
    trainer = build_trainer(cfg, checkpoint_dir, devices, accelerator)
    augmentation = Augmentation(cfg.crop_p, cfg.low_res_p, cfg.photometric_p)
    data = FRDataModule(dataset, cfg.batch_size, cfg.seed, cfg.flip_p, cfg.num_workers, augmentation)
    with torch.serialization.safe_globals(TORCH_SAFE_GLOBALS):
        trainer.fit(module, datamodule=data, ckpt_path=resume, weights_only=True)
    if not trainer.is_global_zero:
        return {}

    # Outputs: rank 0 only, each written atomically.
    metrics = merged_metrics(checkpoint_dir)
    extra = dict(arch=cfg.arch, head=cfg.head, identities=n_classes, images=len(dataset), resume_key=key)
    save_backbone(out_backbone, module.model.backbone, dict(extra, epochs=int(trainer.current_epoch)))
    save_backbone(out_initial, initial_module(cfg, n_classes, key).model.backbone, dict(extra, epochs=0))
    atomic_write_text(metrics_csv, metrics.to_csv(index=False, float_format="%.6g"))
    last = metrics.iloc[-1].to_dict() if len(metrics) else {}
    return dict(
        epochs=int(trainer.current_epoch),
        identities=n_classes,
        images=len(dataset),
        resumed_from=str(resume) if resume else None,
        final=last,
    )


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
