"""The FR jobs. train_fr: train an IResNet with a margin head on an identity-labelled set (resumable, DDP across
devices) and write the trained and the initial backbone as safetensors plus the per-epoch metrics."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import lightning as L

from facelatent.fr.config import FRTrainConfig, fr_train_config
from facelatent.fr.data import FRDataModule, identity_dataset
from facelatent.fr.lightning_module import FRTrainer
from facelatent.fr.model import convert_global_batchnorm, count_parameters, save_backbone
from facelatent.fr.train import build_trainer, merged_metrics, resolve_accelerator, resume_checkpoint, resume_key
from facelatent.pickle_safe import TORCH_SAFE_GLOBALS
from facelatent.store import atomic_write_text

log = logging.getLogger(__name__)


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
    devices: int = 1,
    accelerator: str = "auto",
) -> dict:
    """Rule train_fr: train on `train_set` ({'kind': 'crops', 'manifest', 'root'} or {'kind': 'aligned', 'shards',
    'index', 'subjects'}), resuming from checkpoint_dir/last.ckpt when it was written for the same config and
    files; rank 0 writes the trained backbone, the initial one and the per-epoch metrics, each atomically."""
    import torch

    cfg = fr_train_config(cfg)
    accelerator = resolve_accelerator(accelerator)
    checkpoint_dir = Path(checkpoint_dir)
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
    data = FRDataModule(dataset, cfg.batch_size, cfg.seed, cfg.flip_p, cfg.num_workers)
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
