"""The narrow NVlabs-style generator interface every backend implements."""

from __future__ import annotations

import torch
from torch import nn


def assert_shape(tensor: torch.Tensor, shape: list[int | None], name: str = "tensor") -> None:
    """NVlabs-style shape check; None matches any size."""
    if tensor.ndim != len(shape) or any(s is not None and s != t for s, t in zip(shape, tensor.shape, strict=True)):
        raise AssertionError(f"{name}: expected shape {shape}, got {list(tensor.shape)}")


def truncate(ws: torch.Tensor, w_avg: torch.Tensor, psi: float, cutoff: int | None) -> torch.Tensor:
    """`w_avg.lerp(w, psi)` on all ws, or only on the first `cutoff` of them (NVlabs semantics)."""
    if psi == 1:
        return ws
    if cutoff is None:
        return w_avg.lerp(ws, psi)
    ws = ws.clone()
    ws[:, :cutoff] = w_avg.lerp(ws[:, :cutoff], psi)
    return ws


class GeneratorBase(nn.Module):
    """Common attributes: z_dim, w_dim, num_ws, img_resolution, img_channels, w_avg, kind."""

    kind: str = "base"
    z_dim: int
    w_dim: int
    num_ws: int
    img_resolution: int
    img_channels: int

    @property
    def w_avg(self) -> torch.Tensor:  # pragma: no cover - overridden
        raise NotImplementedError

    def mapping(self, z, c=None, truncation_psi: float = 1.0, truncation_cutoff: int | None = None):
        raise NotImplementedError

    def synthesis(self, ws, noise_mode: str = "const", force_fp32: bool = False, **kwargs):
        raise NotImplementedError

    def forward(
        self,
        z,
        c=None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: str = "const",
        force_fp32: bool = False,
        **synthesis_kwargs,
    ):
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, noise_mode=noise_mode, force_fp32=force_fp32, **synthesis_kwargs)

    def describe(self) -> dict:
        """Plain facts other stages record next to their outputs."""
        return dict(
            kind=self.kind,
            z_dim=self.z_dim,
            w_dim=self.w_dim,
            num_ws=self.num_ws,
            img_resolution=self.img_resolution,
            img_channels=self.img_channels,
        )


class NVlabsGenerator(GeneratorBase):
    """StyleGAN2/3: the NVlabs sub-networks live at `_modules['mapping']` / `['synthesis']`, so state-dict names
    match."""

    @property
    def synthesis_network(self) -> nn.Module:
        return self._modules["synthesis"]

    @property
    def mapping_network(self) -> nn.Module:
        return self._modules["mapping"]

    @property
    def w_avg(self) -> torch.Tensor:
        return self.mapping_network.w_avg
