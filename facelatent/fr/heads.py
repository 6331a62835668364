"""Margin heads over a normalised class-weight matrix: ArcFace, CosFace and AdaFace.

Each head maps embeddings [B, D] (not normalised) and labels [B] to scaled logits [B, C]: s * cos(theta) for
every class, with the target class's logit changed by the head's margin. `cosine` gives the plain cosines
(training accuracy, no margin).
- ArcFace (Deng et al. 2019): target cos(theta + m); where theta + m would pass pi (cos theta < cos(pi - m)) the
  logit is cos(theta) - m sin(pi - m) instead, insightface's form that keeps the target logit decreasing in theta.
- CosFace (Wang et al. 2018): target cos(theta) - m.
- AdaFace (Kim et al. 2022): the feature norm, standardised by an EMA of the batch mean and std of the clipped
  norms, gives margin_scaler = clip((norm - mean) / (std + eps) * h, -1, 1); the target becomes
  cos(clip(theta - m * scaler, eps, pi - eps)) - (m + m * scaler), and all cosines are clamped to
  [-1 + eps, 1 - eps].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from facelatent.generators.base import assert_shape

ADAFACE_EPS = 1e-3  # AdaFace's clamp of cosines, angles and the std denominator
ADAFACE_NORM_RANGE = (1e-3, 100.0)  # AdaFace clips feature norms to this range before its statistics


def at_least_float32(x: torch.Tensor) -> torch.Tensor:
    """Half-precision tensors upcast to float32; float32 and float64 kept (64-bit runs check exactness)."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


class MarginHead(nn.Module):
    """Class centres W [C, D] (arcface_torch's normal(0, 0.01) init); subclasses change the target logit."""

    def __init__(self, embedding_dim: int, num_classes: int, s: float = 64.0, m: float = 0.5):
        super().__init__()
        self.embedding_dim, self.num_classes, self.s, self.m = embedding_dim, num_classes, float(s), float(m)
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_dim).normal_(0.0, 0.01))

    def cosine(self, embeddings: torch.Tensor) -> torch.Tensor:
        """cos(theta) [B, C] between each embedding and each class centre, in float32 at least."""
        assert_shape(embeddings, [None, self.embedding_dim], "embeddings")
        return F.linear(F.normalize(at_least_float32(embeddings)), F.normalize(at_least_float32(self.weight))).clamp(
            -1.0, 1.0
        )

    def target_logit(self, cos_target: torch.Tensor, norms: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def forward(
        self, embeddings: torch.Tensor, labels: torch.Tensor, batch_norms: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Scaled logits [B, C]; `batch_norms` are the feature norms of the whole global batch (AdaFace's
        statistics under DDP; the local norms otherwise)."""
        assert_shape(labels, [embeddings.shape[0]], "labels")
        cos = self.cosine(embeddings)
        norms = at_least_float32(embeddings).norm(dim=1)
        logits = self.all_logits(cos, norms if batch_norms is None else batch_norms)
        mask = F.one_hot(labels, self.num_classes).bool()
        target = self.target_logit(cos.masked_fill(~mask, 0.0).sum(1), norms)  # no gather: its CUDA backward is racy
        return self.s * torch.where(mask, target[:, None], logits)

    def all_logits(self, cos: torch.Tensor, batch_norms: torch.Tensor) -> torch.Tensor:
        return cos


class ArcFaceHead(MarginHead):
    def target_logit(self, cos_target: torch.Tensor, norms: torch.Tensor) -> torch.Tensor:
        sin_target = (1.0 - cos_target.square()).clamp_min(0.0).sqrt()
        cos_theta_m = cos_target * math.cos(self.m) - sin_target * math.sin(self.m)
        fallback = cos_target - self.m * math.sin(math.pi - self.m)  # theta + m > pi: stay monotone in theta
        return torch.where(cos_target > math.cos(math.pi - self.m), cos_theta_m, fallback)


class CosFaceHead(MarginHead):
    def target_logit(self, cos_target: torch.Tensor, norms: torch.Tensor) -> torch.Tensor:
        return cos_target - self.m


class AdaFaceHead(MarginHead):
    """Norm-adaptive margin; `batch_mean` / `batch_std` are EMA buffers (AdaFace's initial 20 and 100)."""

    def __init__(
        self, embedding_dim: int, num_classes: int, s: float = 64.0, m: float = 0.4, h: float = 0.333, t_alpha=0.01
    ):
        super().__init__(embedding_dim, num_classes, s, m)
        self.h, self.t_alpha = float(h), float(t_alpha)
        self.register_buffer("batch_mean", torch.full((1,), 20.0))
        self.register_buffer("batch_std", torch.full((1,), 100.0))

    def all_logits(self, cos: torch.Tensor, batch_norms: torch.Tensor) -> torch.Tensor:
        if self.training:  # the statistics follow the training batches only
            self.update_statistics(batch_norms)
        return cos.clamp(-1.0 + ADAFACE_EPS, 1.0 - ADAFACE_EPS)

    @torch.no_grad()
    def update_statistics(self, batch_norms: torch.Tensor) -> None:
        safe = at_least_float32(batch_norms.detach()).clip(*ADAFACE_NORM_RANGE)
        self.batch_mean.mul_(1.0 - self.t_alpha).add_(self.t_alpha * safe.mean())
        self.batch_std.mul_(1.0 - self.t_alpha).add_(self.t_alpha * safe.std())

    def margin_scaler(self, norms: torch.Tensor) -> torch.Tensor:
        safe = at_least_float32(norms.detach()).clip(*ADAFACE_NORM_RANGE)
        return ((safe - self.batch_mean) / (self.batch_std + ADAFACE_EPS) * self.h).clip(-1.0, 1.0)

    def target_logit(self, cos_target: torch.Tensor, norms: torch.Tensor) -> torch.Tensor:
        scaler = self.margin_scaler(norms)
        theta = cos_target.clamp(-1.0 + ADAFACE_EPS, 1.0 - ADAFACE_EPS).acos()
        theta_m = (theta - self.m * scaler).clip(ADAFACE_EPS, math.pi - ADAFACE_EPS)  # angular margin -m * scaler
        return theta_m.cos() - (self.m + self.m * scaler)  # additive margin m + m * scaler


HEAD_CLASSES: dict[str, type[MarginHead]] = {"arcface": ArcFaceHead, "cosface": CosFaceHead, "adaface": AdaFaceHead}


def build_head(
    name: str, embedding_dim: int, num_classes: int, s: float, m: float, h: float = 0.333, t_alpha: float = 0.01
) -> MarginHead:
    if name == "adaface":
        return AdaFaceHead(embedding_dim, num_classes, s, m, h, t_alpha)
    return HEAD_CLASSES[name](embedding_dim, num_classes, s, m)
