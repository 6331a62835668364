"""A fact about a generator that several stages use: the mean and spread of its W space."""

from __future__ import annotations

import numpy as np
import torch

from facelatent.generators.base import GeneratorBase


def w_statistics(
    G: GeneratorBase, num_samples: int, device: torch.device, batch: int = 4096
) -> tuple[torch.Tensor, float]:
    """NVlabs start point: mean and scalar std of `mapping(z)[:, :1]` for `RandomState(123)` samples."""
    z = np.random.RandomState(123).randn(num_samples, G.z_dim)
    with torch.no_grad():
        w = (
            torch.cat(
                [
                    G.mapping(torch.from_numpy(z[i : i + batch]).to(device), None)[:, :1, :].float().cpu()
                    for i in range(0, num_samples, batch)
                ]
            )
            .numpy()
            .astype(np.float32)
        )
    w_avg = np.mean(w, axis=0, keepdims=True)  # [1, 1, C]
    w_std = (np.sum((w - w_avg) ** 2) / num_samples) ** 0.5  # a numpy float32, as in NVlabs (numpy 2 promotion)
    return torch.from_numpy(w_avg).to(device), float(w_std)
