"""The Lightning side of `train_fr`: precision and strategy from the devices, the resume key and the checkpoint
it is compared with, per-epoch log lines, and the CSV logs of every (resumed) attempt merged into one table."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import shutil
import time
from collections.abc import Mapping
from pathlib import Path

import lightning as L
import pandas as pd
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.plugins.environments import LightningEnvironment
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.utilities import rank_zero_only

from facelatent.checkpoints import file_sha256
from facelatent.fr.config import FRTrainConfig
from facelatent.fr.lightning_module import RESUME_KEY
from facelatent.pickle_safe import TORCH_SAFE_GLOBALS

log = logging.getLogger(__name__)

LAST = "last.ckpt"


def resolve_accelerator(accelerator: str = "auto") -> str:
    """'gpu' or 'cpu' ('auto' = gpu when CUDA is there)."""
    if accelerator == "auto":
        return "gpu" if torch.cuda.is_available() else "cpu"
    return "gpu" if accelerator in ("gpu", "cuda") else accelerator


def resolve_precision(precision: str, accelerator: str) -> str:
    """'auto': mixed precision on GPU, full float32 on CPU (CPU float16 is slow and inexact)."""
    if precision != "auto":
        return precision
    return "16-mixed" if accelerator == "gpu" else "32-true"


def train_set_files(train_set: Mapping) -> list[str]:
    """The files a train set is read from (a crops run's images are named by its manifest)."""
    if train_set.get("kind") == "crops":
        return [str(train_set["manifest"])]
    return [str(train_set["index"]), *map(str, train_set["shards"])]


def resume_key(cfg: FRTrainConfig, train_set: Mapping) -> str:
    """sha256 over what the trained weights depend on: the config and the train set's files and subjects."""
    subjects = train_set.get("subjects")
    content = {
        "config": cfg.resume_dict(),
        "kind": train_set.get("kind"),
        "files": [[Path(f).name, file_sha256(f)] for f in train_set_files(train_set)],
        "subjects": None if subjects is None else sorted(map(str, subjects)),
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()


def checkpoint_resume_key(path: Path) -> str | None:
    """The resume key stored in a Lightning checkpoint, read with the weights-only unpickler; None when the file
    cannot be read that way (a torn or foreign file is not resumed from)."""
    try:
        with torch.serialization.safe_globals(TORCH_SAFE_GLOBALS):
            ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
        log.warning("%s is not a readable checkpoint (%s)", path, str(exc).splitlines()[0] if str(exc) else exc)
        return None
    return ckpt.get(RESUME_KEY) if isinstance(ckpt, dict) else None


def resume_checkpoint(checkpoint_dir: Path, key: str) -> Path | None:
    """last.ckpt when it was written for this key; otherwise None, and rank 0 clears the stale directory."""
    last = checkpoint_dir / LAST
    if not last.exists():
        return None
    found = checkpoint_resume_key(last)
    if found == key:
        log.info("resuming from %s", last)
        return last
    log.info("%s was written for another config or train set (key %s, now %s): starting over", last, found, key)
    if rank_zero_only.rank == 0:
        shutil.rmtree(checkpoint_dir)
    return None


class LogEpochs(L.Callback):
    """One log line per epoch with the epoch's metrics and its duration (the rule's log shows progress)."""

    def on_train_epoch_start(self, trainer, pl_module):
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.is_global_zero:
            metrics = {k: round(float(v), 5) for k, v in trainer.callback_metrics.items()}
            log.info("epoch %d (%.1f s): %s", trainer.current_epoch, time.perf_counter() - self.start, metrics)


def ddp_environment(devices: int) -> LightningEnvironment | None:
    """Lightning launches the processes itself unless srun started one task per device: inside a one-task SLURM
    allocation (a Snakemake job) Lightning's SLURM detection would otherwise refuse devices > 1."""
    if os.environ.get("SLURM_NTASKS") == str(devices):
        return None  # srun started them: Lightning's SLURM environment reads ranks from SLURM
    return LightningEnvironment()


def build_trainer(cfg: FRTrainConfig, checkpoint_dir: Path, devices: int, accelerator: str) -> L.Trainer:
    """Lightning Trainer: DDP (gloo on CPU) across `devices`, last.ckpt every n epochs, a CSV log per attempt."""
    strategy = "auto"
    if devices > 1:
        strategy = DDPStrategy(
            cluster_environment=ddp_environment(devices),
            process_group_backend="gloo" if accelerator == "cpu" else "nccl",
        )
    return L.Trainer(
        max_epochs=cfg.max_epochs,
        accelerator=accelerator,
        devices=devices,
        strategy=strategy,
        precision=resolve_precision(cfg.precision, accelerator),
        deterministic=cfg.deterministic,
        use_distributed_sampler=False,  # GlobalBatchSampler already gives each rank its slice
        logger=CSVLogger(checkpoint_dir, name="csv", flush_logs_every_n_steps=1),
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
        callbacks=[
            ModelCheckpoint(
                dirpath=checkpoint_dir, save_top_k=0, save_last=True, every_n_epochs=cfg.checkpoint_every_n_epochs
            ),
            LogEpochs(),
        ],
    )


def merged_metrics(checkpoint_dir: Path) -> pd.DataFrame:
    """Per-epoch rows of every attempt's metrics.csv (a resumed attempt's rows replace the killed one's)."""
    tables = [
        pd.read_csv(path)
        for path in sorted((checkpoint_dir / "csv").glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name[8:]))
    ]
    if not tables:
        return pd.DataFrame(columns=["epoch", "step", "train_loss", "train_accuracy", "lr"])
    table = pd.concat(tables, ignore_index=True)
    return table.drop_duplicates("epoch", keep="last").sort_values("epoch").reset_index(drop=True)
