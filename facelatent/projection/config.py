"""The `projection:` config section as a plain dataclass (no torch: the CLI reads its defaults for its help)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field


@dataclass
class ProjectionConfig:
    """The `projection:` config section (see config/README.md)."""

    space: str = "w"
    steps: int = 1000
    batch_size: int = 8
    loss: str | dict = "lpips_vgg16"
    vgg16_path: str | None = None
    seed: int = 0
    checkpoint_every: int = 100
    schedule: dict = field(default_factory=dict)
    refine: dict = field(default_factory=dict)  # RefineConfig keys; iterations 0 (the default) = Adam only
    init: str = "w_avg"  # or "encoder": start from a trained encoder's guess (facelatent/projection/encoder.py)

    def __post_init__(self) -> None:
        if self.init not in ("w_avg", "encoder"):
            raise ValueError(f"projection.init must be 'w_avg' or 'encoder', got '{self.init}'")
        if self.steps < 0:
            raise ValueError(f"projection.steps must be >= 0, got {self.steps}")

    def digest(self) -> str:
        """Hash of everything that changes the result (a partial file from another config is not resumed)."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True, default=str).encode()).hexdigest()[:16]


# On the CPU from 256 px up, one image at a time is both the fastest (issue 22, measured beside NVlabs on 2 cores:
# batch 4 runs at 0.82x and batch 8 at 0.74x the images x steps per second of batch 1) and the smallest (bench/
# projection_memory.py: each image in a micro-batch adds 0.9 GB at 256 px and 3.5 GB at 1024 px with lpips_vgg16).
# Smaller renders (the 64 px demo) and CUDA run the whole batch in one pass.
CPU_ONE_AT_A_TIME_FROM_PX = 256


def micro_batch_for(batch_size: int, configured: int | None, device_type: str, resolution: int) -> int:
    """The generator and loss chunk: `schedule.micro_batch` when set, else the per-device policy above (the
    workflow's project_shard memory declaration reads it too, so it imports no torch)."""
    if configured:
        return int(configured)
    if device_type == "cpu" and resolution >= CPU_ONE_AT_A_TIME_FROM_PX:
        return 1
    return batch_size
