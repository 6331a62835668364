"""DCGAN generator (PyTorch-tutorial layer stack), the backend of the DigiFace-64 demo weights.

Five transposed convolutions (k=4; stride 1 then 2), batch norm in eval mode, ReLU, tanh.
The mapping is the identity: W is Z, num_ws = 1, w_avg = 0, no noise inputs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from facelatent.generators.base import GeneratorBase, assert_shape, truncate
from facelatent.generators.frozen_conv import conv2d


class DeconvBlock(nn.Module):
    """ConvTranspose2d (no bias) -> BatchNorm2d -> ReLU; the last block has no norm and uses tanh."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, padding: int, last: bool):
        super().__init__()
        self.stride, self.padding, self.last = stride, padding, last
        self.weight = nn.Parameter(torch.zeros(in_channels, out_channels, 4, 4))
        if not last:
            self.norm = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = conv2d(x, self.weight, stride=self.stride, padding=self.padding, transposed=True)
        if self.last:
            return torch.tanh(x)
        return F.relu(self.norm(x))


class DCGANGenerator(GeneratorBase):
    kind = "dcgan"

    def __init__(self, z_dim: int = 100, ngf: int = 64, img_channels: int = 3, img_resolution: int = 64):
        super().__init__()
        assert img_resolution == 64, "the DCGAN stack is fixed at 64x64"
        self.z_dim = self.w_dim = z_dim
        self.num_ws = 1
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        widths = [z_dim, ngf * 8, ngf * 4, ngf * 2, ngf, img_channels]
        self.blocks = nn.ModuleList(
            DeconvBlock(
                widths[i],
                widths[i + 1],
                stride=1 if i == 0 else 2,
                padding=0 if i == 0 else 1,
                last=i == len(widths) - 2,
            )
            for i in range(len(widths) - 1)
        )
        self.register_buffer("_w_avg", torch.zeros(z_dim))

    @property
    def w_avg(self) -> torch.Tensor:
        return self._w_avg

    def mapping(self, z, c=None, truncation_psi: float = 1.0, truncation_cutoff: int | None = None):
        assert_shape(z, [None, self.z_dim], "z")
        ws = z.to(torch.float32).unsqueeze(1)
        return truncate(ws, self.w_avg, truncation_psi, truncation_cutoff)

    def synthesis(self, ws, noise_mode: str = "const", force_fp32: bool = False, **kwargs):
        assert_shape(ws, [None, self.num_ws, self.w_dim], "ws")
        x = ws[:, 0, :, None, None].to(torch.float32)
        for block in self.blocks:
            x = block(x)
        assert_shape(x, [None, self.img_channels, self.img_resolution, self.img_resolution], "img")
        return x


def dcgan_state_from_tutorial(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename `main.{3i}.weight` / `main.{3i+1}.*` (nn.Sequential indices) to our block names."""
    out = {}
    for key, value in state.items():
        prefix, index, name = key.split(".", 2)
        assert prefix == "main", key
        block, offset = divmod(int(index), 3)
        out[f"blocks.{block}.weight" if offset == 0 else f"blocks.{block}.norm.{name}"] = value
    out["_w_avg"] = torch.zeros(state["main.0.weight"].shape[0])
    return out
