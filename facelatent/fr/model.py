"""The face-recognition network: an arcface_torch IResNet backbone plus a margin head, kept apart from the
LightningModule; the batch norm that spans processes under DDP; the backbone written as our safetensors."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from facelatent.checkpoints import Checkpoint, save_safetensors_checkpoint
from facelatent.embeddings.iresnet import STAGE_WIDTHS, IResNetEmbedder
from facelatent.embeddings.spec import IRESNET_LAYERS
from facelatent.fr.config import FRTrainConfig
from facelatent.fr.heads import MarginHead, at_least_float32, build_head

TINY = dict(layers=[1, 1, 1, 1], widths=[8, 8, 16, 32, 64])  # a narrow IResNet that trains on 2 CPU cores (1.7M)


def backbone_kwargs(arch: str, embedding_dim: int = 512, image_size: int = 112) -> dict:
    """IResNetEmbedder kwargs for an arch name; arcface_torch's own depths keep its widths (and its plain kwargs)."""
    if arch == "tiny":
        return dict(TINY, num_features=embedding_dim, image_size=image_size)
    depth = int(arch.removeprefix("iresnet"))
    return dict(layers=list(IRESNET_LAYERS[depth]), num_features=embedding_dim, image_size=image_size)


class FaceRecognizer(nn.Module):
    """Backbone (embeddings [B, D], arcface_torch layout) and margin head (logits [B, C]), trained together."""

    def __init__(self, backbone: IResNetEmbedder, head: MarginHead):
        super().__init__()
        assert backbone.embedding_dim == head.embedding_dim, (backbone.embedding_dim, head.embedding_dim)
        self.backbone, self.head = backbone, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)


class TrainableIResNet(IResNetEmbedder):
    """IResNetEmbedder whose train() switches batch norm to batch statistics (the base embedder is frozen)."""

    def train(self, mode: bool = True) -> TrainableIResNet:
        return nn.Module.train(self, mode)


def build_recognizer(cfg: FRTrainConfig, num_classes: int) -> FaceRecognizer:
    """The network at its seeded initialisation (the caller seeds torch first)."""
    backbone = TrainableIResNet(**backbone_kwargs(cfg.arch, cfg.embedding_dim))
    head = build_head(cfg.head, cfg.embedding_dim, num_classes, cfg.s, cfg.margin, cfg.h, cfg.t_alpha)
    return FaceRecognizer(backbone, head)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class SumAcrossProcesses(torch.autograd.Function):
    """All-reduce (sum) whose backward all-reduces the gradients: each process then holds the gradient of the
    summed loss of all processes through the shared statistics (torch's own is deprecated)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        out = x.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        out = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out)
        return out


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm over the global batch of every process (sums all-reduced with autograd), so N processes see
    the statistics one process sees on the whole batch; torch's SyncBatchNorm refuses CPU tensors (gloo).
    The same parameters and buffers as BatchNorm1d/2d, so the state-dict keys do not change."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() not in (2, 3, 4):
            raise ValueError(f"GlobalBatchNorm expects [N, C], [N, C, L] or [N, C, H, W] input, got {x.dim()}-D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        xf = at_least_float32(x)
        count = torch.tensor([xf.numel() / xf.shape[1]], dtype=xf.dtype, device=x.device)
        total = SumAcrossProcesses.apply(torch.cat([xf.sum(dims), count]))
        n = total[-1]
        mean = total[:-1] / n
        centred = xf - mean.view(shape)
        # Two passes (mean, then centred squares): as stable as the single-process kernel.
        var = SumAcrossProcesses.apply(centred.square().sum(dims)) / n
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
            self.running_mean.lerp_(mean.detach(), momentum)
            self.running_var.lerp_((var * n / (n - 1)).detach(), momentum)  # unbiased, as torch's BatchNorm
        return out.to(x.dtype)


def convert_global_batchnorm(module: nn.Module) -> nn.Module:
    """Swap every BatchNorm1d/2d for a GlobalBatchNorm holding the same tensors (in place for children)."""
    for name, child in module.named_children():
        if isinstance(child, (nn.BatchNorm1d, nn.BatchNorm2d)):
            new = GlobalBatchNorm(
                child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats
            )
            new.load_state_dict(child.state_dict())
            setattr(module, name, new)
        else:
            convert_global_batchnorm(child)
    return module


def iresnet_init_kwargs(backbone: IResNetEmbedder) -> dict:
    """The kwargs `iresnet_kwargs` infers from the state dict (plain arcface_torch ones for its own widths)."""
    kwargs = dict(layers=list(backbone.layers), num_features=backbone.embedding_dim, image_size=backbone.input_size[0])
    if list(backbone.widths) != [64, *STAGE_WIDTHS]:
        kwargs["widths"] = list(backbone.widths)
    return kwargs


def backbone_state(backbone: nn.Module) -> dict[str, torch.Tensor]:
    """arcface_torch's keys (conv1.weight, bn1.*, prelu.weight, layer1.0.*, bn2.*, fc.*, features.*), float32."""
    state = backbone.state_dict()
    return {k: (v.float() if v.is_floating_point() else v).detach().cpu().clone() for k, v in state.items()}


def save_backbone(path: str | Path, backbone: IResNetEmbedder, extra: dict | None = None) -> None:
    """The backbone as our safetensors (kind 'iresnet'), loadable by `load_embedder('iresnet:<path>')` and by
    insightface's tools through `safetensors.torch.load_file` + `load_state_dict`."""
    ckpt = Checkpoint(
        kind="iresnet",
        init_kwargs=iresnet_init_kwargs(backbone),
        state_dict=backbone_state(backbone),
        extra=extra or {},
    )
    save_safetensors_checkpoint(path, ckpt)
