"""The AU network: a plain MLP over flattened W / W+ latents (one logit per kept AU)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from facelatent.au.config import AUConfig
from facelatent.generators.base import assert_shape


class AUMLP(nn.Module):
    """Linear -> ReLU -> Dropout blocks, then one logit per AU (sigmoid lives in the loss)."""

    def __init__(
        self,
        in_features: int,
        n_aus: int,
        widths: Sequence[int] = tuple(AUConfig().widths),
        dropout: float = AUConfig.dropout,
    ):
        super().__init__()
        self.in_features, self.n_aus = in_features, n_aus
        layers: list[nn.Module] = []
        prev = in_features
        for width in widths:
            layers += [nn.Linear(prev, width), nn.ReLU(), nn.Dropout(dropout)]
            prev = width
        layers.append(nn.Linear(prev, n_aus))
        self.net = nn.Sequential(*layers)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        x = latents.flatten(1)
        assert_shape(x, [None, self.in_features], "latents")
        return self.net(x)
