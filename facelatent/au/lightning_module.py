"""LightningModule that trains the AU MLP: BCE with per-AU pos_weight, Adam, lr halved every N epochs."""

from __future__ import annotations

import lightning as L
import torch
from torch import nn

from facelatent.au.config import AUConfig
from facelatent.au.model import AUMLP


class AUClassifier(L.LightningModule):
    def __init__(
        self,
        in_features: int,
        aus: list[int],
        widths: tuple[int, ...] = tuple(AUConfig().widths),
        dropout: float = AUConfig.dropout,
        lr: float = AUConfig.lr,
        lr_halve_every: int = AUConfig.lr_halve_every,
        pos_weight: list[float] | None = None,
        weight_decay: float = 1e-4,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.model = AUMLP(in_features, len(aus), widths, dropout)
        self.register_buffer("pos_weight", torch.tensor(pos_weight or [1.0] * len(aus), dtype=torch.float32))
        self.loss = nn.BCEWithLogitsLoss(pos_weight=self.pos_weight)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return self.model(latents)

    def _step(self, batch, stage: str) -> torch.Tensor:
        x, y = batch
        loss = self.loss(self(x), y)
        self.log(f"{stage}_loss", loss, prog_bar=True, on_epoch=True, on_step=False, batch_size=len(x))
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        return self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        return self._step(batch, "test")

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=self.hparams.lr_halve_every, gamma=0.5)
        return {"optimizer": opt, "lr_scheduler": sched}
