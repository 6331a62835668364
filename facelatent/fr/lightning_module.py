"""LightningModule that trains the FR network: margin-head cross-entropy, SGD with momentum, lr x0.1 at milestones."""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F

from facelatent.fr.config import FRTrainConfig
from facelatent.fr.heads import at_least_float32
from facelatent.fr.model import build_recognizer

RESUME_KEY = "fr_resume_key"  # the checkpoint entry a rerun compares before resuming


class FRTrainer(L.LightningModule):
    def __init__(
        self,
        num_classes: int,
        arch: str = FRTrainConfig.arch,
        embedding_dim: int = FRTrainConfig.embedding_dim,
        head: str = FRTrainConfig.head,
        s: float = FRTrainConfig.s,
        m: float | None = FRTrainConfig.m,
        h: float = FRTrainConfig.h,
        t_alpha: float = FRTrainConfig.t_alpha,
        lr: float = FRTrainConfig.lr,
        momentum: float = FRTrainConfig.momentum,
        weight_decay: float = FRTrainConfig.weight_decay,
        milestones: tuple[int, ...] = tuple(FRTrainConfig().milestones),
        resume_key: str = "",
    ):
        super().__init__()
        self.save_hyperparameters()
        cfg = FRTrainConfig(arch=arch, embedding_dim=embedding_dim, head=head, s=s, m=m, h=h, t_alpha=t_alpha)
        self.model = build_recognizer(cfg, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch, batch_idx):
        images, labels = batch
        embeddings = self.model(self.model.backbone.preprocess(images.to(self.dtype)))
        batch_norms = None
        if self.hparams.head == "adaface":  # AdaFace's statistics over the global batch, as one process sees it
            batch_norms = self.all_gather(at_least_float32(embeddings.detach()).norm(dim=1)).reshape(-1)
        with torch.autocast(self.device.type, enabled=False):  # margins and softmax in float32 (at least)
            logits = self.model.head(at_least_float32(embeddings), labels, batch_norms)
            loss = F.cross_entropy(logits, labels)
            accuracy = (self.model.head.cosine(embeddings.detach()).argmax(1) == labels).float().mean()
        n = len(labels)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, sync_dist=True, batch_size=n)
        self.log("train_accuracy", accuracy, on_step=False, on_epoch=True, prog_bar=True, sync_dist=True, batch_size=n)
        self.log("lr", self.optimizers().param_groups[0]["lr"], on_step=False, on_epoch=True, batch_size=n)
        return loss

    def configure_optimizers(self):
        opt = torch.optim.SGD(
            self.parameters(),
            lr=self.hparams.lr,
            momentum=self.hparams.momentum,
            weight_decay=self.hparams.weight_decay,
        )
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(self.hparams.milestones), gamma=0.1)
        return {"optimizer": opt, "lr_scheduler": sched}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint[RESUME_KEY] = self.hparams.resume_key
