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
