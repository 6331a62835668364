"""The `generated:` config section as plain dataclasses (defaults equal to config/schema.yaml's)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from facelatent.errors import ConfigError


@dataclass
class EvaluationConfig:
    """`generated.evaluation`: held-out samples per direction and the strengths they are moved to."""

    samples: int = 32
    strengths: list[float] = field(default_factory=lambda: [-3, -2, -1, 0, 1, 2, 3])

    def __post_init__(self) -> None:
        if 0 not in self.strengths:  # every change is measured from the unedited image
            raise ConfigError(f"config key 'generated.evaluation.strengths': 0 must be among {self.strengths}")


@dataclass
class GeneratedConfig:
    """`generated:`: latents drawn through the mapping, rendered and scored by attribute predictors."""

    samples: int = 0
    samples_per_shard: int = 10000
    seed: int = 0
    batch_size: int = 64
    truncation_psi: float = 1.0
    truncation_cutoff: int | None = None
    predictors: list[str] = field(default_factory=list)
    ends: int = 4
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)

    @classmethod
    def coerce(cls, values: GeneratedConfig | Mapping) -> GeneratedConfig:
        """The section as the workflow passes it (a mapping, its `evaluation` a mapping too) or a ready dataclass."""
        if isinstance(values, GeneratedConfig):
            return values
        values = dict(values)
        evaluation = values.pop("evaluation", {})
        if not isinstance(evaluation, EvaluationConfig):
            evaluation = EvaluationConfig(**evaluation)
        return cls(**values, evaluation=evaluation)


def shard_names(samples: int, samples_per_shard: int) -> list[str]:
    """Zero-padded shard ids ('000', '001', ...; wider past 1000 shards), one per block of samples."""
    count = -(-samples // samples_per_shard) if samples > 0 else 0
    width = max(3, len(str(max(count - 1, 0))))
    return [f"{k:0{width}d}" for k in range(count)]


def shard_rows(shard: str | int, samples: int, samples_per_shard: int) -> range:
    """The global sample indices of one shard: a contiguous block."""
    k = int(shard)
    first = k * samples_per_shard
    if not 0 <= first < samples:
        raise ConfigError(
            f"generated shard {shard} is out of range for {samples} samples in blocks of {samples_per_shard}"
        )
    return range(first, min(first + samples_per_shard, samples))
