"""A tiny random-weight FR model for tests and benchmarks whose subject is the code around the embedder.

An arcface_torch IResNet with one block per stage at 32x32 input: the same interface, file format and
loader as a real IResNet checkpoint, about 10 ms per face on a CPU core.
"""

from __future__ import annotations

from pathlib import Path

import torch

from facelatent.checkpoints import Checkpoint, save_safetensors_checkpoint
from facelatent.embeddings.iresnet import IResNetEmbedder

TINY_KWARGS = {"layers": [1, 1, 1, 1], "num_features": 64, "image_size": 32}


def write_tiny_embedder(path: str | Path, seed: int = 0) -> Path:
    """Save a seeded random IResNet-4 (32 px, 64-d) as a facelatent safetensors checkpoint."""
    torch.manual_seed(seed)
    model = IResNetEmbedder(**TINY_KWARGS)
    with torch.no_grad():  # non-trivial batch-norm statistics so every layer matters
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    save_safetensors_checkpoint(
        path, Checkpoint(kind="iresnet", init_kwargs=dict(TINY_KWARGS), state_dict=model.state_dict())
    )
    return Path(path)
