"""The `synthetic.runs.{run}` config entry as plain dataclasses, and the split of identities into parts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields

from facelatent.errors import ConfigError

REFERENCE_ALGORITHMS = ("langevin", "random", "reject")
VARIATION_ALGORITHMS = ("dispersion", "disco", "none")


def _build(cls, values: Mapping | None, where: str):
    values = dict(values or {})
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown config key '{where}.{unknown[0]}' (allowed here: {', '.join(sorted(known))})")
    return cls(**values)


@dataclass
class LangevinConfig:
    """Defaults of the README reference run (r0 = ICT = 1.4, k_l = 0.1, 100 iterations)."""

    iterations: int = 100
    repulsion_coefficient: float = 1.0  # k
    repulsion_radius: float = 1.4  # r0, radians
    timestep: float = -0.3  # < 0: adaptive, |timestep| x the minimum pairwise latent distance per step
    viscous_coefficient: float = 1.0  # mu
    random_force: float = 0.01  # eta
    latent_force: float = 0.1  # k_l
    constant_distance: float = 0.0  # contact radius of the fixed obstacle embeddings
    checkpoint_every: int = 10  # 0 = no checkpoints
    ict: float = 1.4  # only for the prop_ict statistic


@dataclass
class DispersionConfig:
    """Defaults of the README run (64 augmentations, 20 iterations)."""

    iterations: int = 20
    num_augmentations: int = 64
    embedding_coefficient: float = 20.0  # k_e
    latent_coefficient: float = 1.0  # k_w
    latent_radius: float = 12.0  # r_w, W units
    latent_global_coefficient: float = 1.0  # k_g
    random_force: float = 0.05  # eta
    viscous_coefficient: float = 1.0  # mu
    timestep: float = 0.05  # < 0: adaptive
    initial_noise: float = 0.2  # sigma_0
    reference_angle: float = 0.7  # radians; `prop_ref` counts variations within it (half the ICT by default)
    ict: float = 1.4  # only for the prop_ict statistic (intra-class pairs above the ICT)


@dataclass
class FaceGateConfig:
    """Every reference must be a face MTCNN finds where the saved ArcFace crop puts one (the 5-point template)."""

    enabled: bool = True
    min_confidence: float = 0.9  # MTCNN O-Net score; random demo DCGAN faces: 10th percentile 0.987
    max_landmark_error: float = 0.5  # largest point-to-template distance / template eye distance (demo max 0.39)
    max_redraws: int = 20  # per identity over the whole run; more is a one-line error


@dataclass
class ReferencesConfig:
    algorithm: str = "langevin"
    ict: float = 1.4  # radians; reject's threshold, and the prop_ict statistic
    max_candidates: int = 1000  # reject: candidates per identity before giving up
    obstacles: str | None = None  # file of fixed embeddings the references are pushed away from (Langevin)
    langevin: LangevinConfig = field(default_factory=LangevinConfig)
    face_gate: FaceGateConfig = field(default_factory=FaceGateConfig)


@dataclass
class VariationsConfig:
    algorithm: str = "dispersion"
    identities_per_part: int = 1000  # one create_variations job per block of identities
    covariates: list[str] = field(default_factory=list)  # DisCo: names of results/directions/{name}.npy
    covariate_scaling: dict[str, float] = field(default_factory=dict)
    covariate_magnitudes: dict[str, float] = field(default_factory=dict)
    dispersion: DispersionConfig = field(default_factory=DispersionConfig)


@dataclass
class RunConfig:
    num_identities: int = 100
    seed: int = 0
    embedder: str | dict = "facenet_casia"
    crop: str = "resize"
    noise_mode: str = "const"
    truncation_psi: float = 0.7
    batch_size: int = 8
    device: str = "auto"
    network_type: str | None = None  # export: the synthetics network_type (default: generator kind)
    references: ReferencesConfig = field(default_factory=ReferencesConfig)
    variations: VariationsConfig = field(default_factory=VariationsConfig)
    grid_identities: int = 8  # rows of the report's image grid
    grid_variations: int = 8  # augmentation columns of the grid (after the reference)

    @classmethod
    def from_dict(cls, values: Mapping, where: str = "synthetic.runs.<run>") -> RunConfig:
        values = dict(values or {})
        for key in (
            "judge",
            "leakage",
            "variation",
        ):  # judged after generation (facelatent/judge/), not generation settings
            values.pop(key, None)
        refs = dict(values.pop("references", {}) or {})
        var = dict(values.pop("variations", {}) or {})
        refs["langevin"] = _build(LangevinConfig, refs.get("langevin"), f"{where}.references.langevin")
        refs["face_gate"] = _build(FaceGateConfig, refs.get("face_gate"), f"{where}.references.face_gate")
        var["dispersion"] = _build(DispersionConfig, var.get("dispersion"), f"{where}.variations.dispersion")
        run = _build(cls, values, where)
        run.references = _build(ReferencesConfig, refs, f"{where}.references")
        run.variations = _build(VariationsConfig, var, f"{where}.variations")
        run.check(where)
        return run

    def check(self, where: str) -> None:
        if self.references.algorithm not in REFERENCE_ALGORITHMS:
            raise ConfigError(
                f"config key '{where}.references.algorithm': '{self.references.algorithm}' is not one "
                f"of {', '.join(REFERENCE_ALGORITHMS)}"
            )
        if self.variations.algorithm not in VARIATION_ALGORITHMS:
            raise ConfigError(
                f"config key '{where}.variations.algorithm': '{self.variations.algorithm}' is not one "
                f"of {', '.join(VARIATION_ALGORITHMS)}"
            )
        if self.variations.algorithm == "disco" and not self.variations.covariates:
            raise ConfigError(f"config key '{where}.variations.covariates': DisCo needs at least one direction")
        gate = self.references.face_gate
        if not (0 <= gate.min_confidence <= 1 and gate.max_landmark_error > 0 and gate.max_redraws >= 0):
            raise ConfigError(
                f"config key '{where}.references.face_gate': min_confidence must be in [0, 1], "
                "max_landmark_error > 0 and max_redraws >= 0"
            )
        if self.num_identities < 1 or self.variations.identities_per_part < 1:
            raise ConfigError(f"config key '{where}': num_identities and identities_per_part must be >= 1")

    def as_dict(self) -> dict:
        return asdict(self)


def num_parts(num_identities: int, identities_per_part: int) -> int:
    return -(-int(num_identities) // int(identities_per_part))


def part_names(num_identities: int, identities_per_part: int) -> list[str]:
    """Zero-padded part ids ('000', '001', ...), one per block of identities."""
    return [f"{p:03d}" for p in range(num_parts(num_identities, identities_per_part))]


def part_identities(part: str | int, num_identities: int, identities_per_part: int) -> list[int]:
    """Global identity indices of one part: a contiguous block."""
    p = int(part)
    if not 0 <= p < num_parts(num_identities, identities_per_part):
        raise ConfigError(
            f"part {part} is out of range for {num_identities} identities in blocks of {identities_per_part}"
        )
    return list(range(p * identities_per_part, min((p + 1) * identities_per_part, num_identities)))
