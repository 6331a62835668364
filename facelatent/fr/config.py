"""The `fr.training:` config section as a plain dataclass (below the model, the LightningModule and the data module)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

from facelatent.errors import ConfigError

ARCHS = ("tiny", "iresnet18", "iresnet34", "iresnet50", "iresnet100")
HEADS = ("arcface", "cosface", "adaface")
DEFAULT_MARGINS = {"arcface": 0.5, "cosface": 0.35, "adaface": 0.4}  # each paper's recipe
PRECISIONS = ("auto", "16-mixed", "bf16-mixed", "32-true", "64-true")  # 64-true: exactness checks on CPU


@dataclass
class FRTrainConfig:
    """The `fr.training:` config section (one field per schema key, same defaults)."""

    arch: str = "iresnet50"  # tiny (CPU demo) | iresnet18 | iresnet34 | iresnet50 | iresnet100
    embedding_dim: int = 512  # size of the backbone's `features` output
    head: str = "adaface"  # margin head: arcface | cosface | adaface
    s: float = 64.0  # logit scale
    m: float | None = None  # margin; None = the head's paper value (arcface 0.5, cosface 0.35, adaface 0.4)
    h: float = 0.333  # adaface: margin_scaler = clip((norm - mean) / std * h, -1, 1)
    t_alpha: float = 0.01  # adaface: EMA rate of the batch norm statistics
    lr: float = 0.1  # SGD learning rate for the global batch
    momentum: float = 0.9  # SGD momentum
    weight_decay: float = 5e-4  # SGD weight decay (backbone and head)
    milestones: list[int] = field(default_factory=lambda: [12, 20, 26])  # epochs at which lr is multiplied by 0.1
    max_epochs: int = 30  # training epochs (the synthetics AdaFace recipe)
    batch_size: int = 256  # global batch (all devices together); a multiple of the device count
    seed: int = 0  # initial weights, sample order and flips
    flip_p: float = 0.5  # probability of a horizontal flip per sample and epoch
    crop_p: float = 0.2  # probability of a random crop kept in place (the AdaFace recipe's)
    low_res_p: float = 0.2  # probability of a low-resolution round trip
    photometric_p: float = 0.2  # probability of a brightness / contrast / saturation jitter
    precision: str = "auto"  # auto = 16-mixed on GPU, 32-true on CPU; or a Lightning precision string
    deterministic: bool = True  # torch deterministic algorithms: a resumed run ends at the same weights
    checkpoint_every_n_epochs: int = 1  # last.ckpt is written every n epochs (resume granularity)
    num_workers: int = 4  # data-loader worker processes per device
    devices: int = 1  # GPUs of the job (the rule asks the scheduler for them); DDP when more than one
    runtime: int = 1440  # minutes the job may run (the SLURM time limit)

    @property
    def margin(self) -> float:
        return DEFAULT_MARGINS[self.head] if self.m is None else float(self.m)

    def resume_dict(self) -> dict:
        """Everything that changes the trained weights (workers, device count and time limit do not)."""
        return {k: v for k, v in asdict(self).items() if k not in ("num_workers", "devices", "runtime")}


def fr_train_config(cfg: Mapping | FRTrainConfig) -> FRTrainConfig:
    """FRTrainConfig from a mapping (the config section) or itself, with its choices checked."""
    if not isinstance(cfg, FRTrainConfig):
        known = set(FRTrainConfig.__dataclass_fields__)
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ConfigError(f"config key 'fr.training': unknown keys {unknown}")
        cfg = FRTrainConfig(**dict(cfg))
    for key, value, allowed in (
        ("arch", cfg.arch, ARCHS),
        ("head", cfg.head, HEADS),
        ("precision", cfg.precision, PRECISIONS),
    ):
        if value not in allowed:
            raise ConfigError(f"config key 'fr.training.{key}': '{value}' is not one of {', '.join(allowed)}")
    if cfg.batch_size < 2:
        raise ConfigError(f"config key 'fr.training.batch_size': {cfg.batch_size}: batch norm needs at least 2 samples")
    for key in ("flip_p", "crop_p", "low_res_p", "photometric_p"):
        if not 0.0 <= getattr(cfg, key) <= 1.0:
            raise ConfigError(f"config key 'fr.training.{key}': {getattr(cfg, key)} is not a probability")
    return cfg
