"""The `au:` config section as a plain dataclass (below the model, the LightningModule and the data module)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class AUConfig:
    """The `au:` config section."""

    min_active: float = 0.1
    use_neutral: bool = True
    widths: list[int] = field(default_factory=lambda: [256, 128])
    dropout: float = 0.1
    lr: float = 1e-3
    lr_halve_every: int = 50
    max_epochs: int = 200
    patience: int = 30
    batch_size: int = 64
    seed: int = 0
    split: list[float] = field(default_factory=lambda: [0.6, 0.2, 0.2])
