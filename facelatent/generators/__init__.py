"""Generators with one narrow NVlabs-style interface, `load_generator()` and `generator_provenance()`.

`load_generator(path, device, expect=)` reads a checkpoint (.safetensors, .pkl, .pt/.pth) without
executing code from it, builds the matching backend in eval mode and, given the config's `generator:`
section, checks the checkpoint against it. `generator_provenance(G)` is the record every output keeps
of its generator (path, sha256 and `G.describe()`).

Files:
- `base.py`: The narrow NVlabs-style generator interface every backend implements.
- `dcgan.py`: DCGAN generator (PyTorch-tutorial layer stack), the backend of the DigiFace-64 demo weights.
- `frozen_conv.py`: convolutions that keep only a frozen weight for backward (not the input: less memory).
- `job.py`: the `sample_grid` rule's job.
- `ops.py`: Low-level StyleGAN ops in plain PyTorch (the reference path of the NVlabs custom CUDA ops).
- `statistics.py`: A fact about a generator that several stages use: the mean and spread of its W space.
- `stylegan2.py`: StyleGAN2 generator (config-f, skip ToRGB) with NVlabs state-dict names, for inference.
- `stylegan3.py`: StyleGAN3 generator (configs T and R) with NVlabs state-dict names, for inference.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from facelatent.checkpoints import Checkpoint, read_checkpoint
from facelatent.errors import InputFileError
from facelatent.generators.base import GeneratorBase
from facelatent.generators.dcgan import DCGANGenerator

# kind -> (module, class); a backend module is imported when a checkpoint of its kind is built
BACKENDS = {
    "dcgan": ("facelatent.generators.dcgan", "DCGANGenerator"),
    "stylegan2": ("facelatent.generators.stylegan2", "StyleGAN2Generator"),
    "stylegan3": ("facelatent.generators.stylegan3", "StyleGAN3Generator"),
}


def _backend(kind: str, path: str | Path) -> type[GeneratorBase]:
    """The class of a generator kind; a backend that fails to import raises its own ImportError."""
    if kind not in BACKENDS:
        raise InputFileError(
            path, f"checkpoint kind '{kind}' is not a generator (known: {', '.join(sorted(BACKENDS))})"
        )
    module, name = BACKENDS[kind]
    return getattr(importlib.import_module(module), name)


def build_generator(ckpt: Checkpoint) -> GeneratorBase:
    """Instantiate the backend named by `ckpt.kind` and load its weights strictly."""
    backend = _backend(ckpt.kind, ckpt.path)
    try:
        G = backend(**ckpt.init_kwargs)
    except (TypeError, ValueError, AssertionError) as exc:
        raise InputFileError(ckpt.path, f"cannot build a {ckpt.kind} generator from its init kwargs: {exc}") from exc
    try:
        G.load_state_dict(ckpt.state_dict, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0:3]
        raise InputFileError(ckpt.path, f"weights do not fit a {ckpt.kind} generator: {' '.join(first)}") from exc
    G.checkpoint_sha256 = ckpt.sha256
    G.checkpoint_path = ckpt.path
    return G.eval().requires_grad_(False)


@dataclass(frozen=True)
class GeneratorSettings:
    """The `generator:` config section (defaults as in config/schema.yaml)."""

    kind: str = "dcgan"
    checkpoint: str = "resources/models/dcgan_digiface64.safetensors"
    resolution: int = 64
    w_dim: int = 100
    truncation_psi: float = 1.0  # the sample grid's z -> w truncation
    truncation_cutoff: int | None = None
    noise_mode: str = "const"  # renders of new images: the sample grid and the edit grids

    @classmethod
    def coerce(cls, settings: "GeneratorSettings | Mapping") -> "GeneratorSettings":
        return settings if isinstance(settings, GeneratorSettings) else cls(**settings)


def load_generator(
    path: str | Path, device: str | torch.device = "cpu", expect: "GeneratorSettings | Mapping | None" = None
) -> GeneratorBase:
    """Load a generator checkpoint into an eval-mode module on `device`; with `expect` (the config's
    `generator:` section), check its kind, resolution and w_dim against the config. Every job loads its
    generator here; `generator_provenance(G)` is what its outputs record about it."""
    G = build_generator(read_checkpoint(path)).to(device)
    G.checkpoint_path = str(path)  # as the caller (the config) spells it: outputs record this path
    if expect is not None:
        expect = GeneratorSettings.coerce(expect)
        check_generator_matches(G, path, expect.resolution, expect.w_dim, expect.kind)
    return G


def generator_provenance(G: GeneratorBase) -> dict:
    """The facts an output records about its generator: checkpoint path, sha256, and `G.describe()`."""
    return {
        "path": str(getattr(G, "checkpoint_path", "")),
        "sha256": getattr(G, "checkpoint_sha256", ""),
        **G.describe(),
    }


def check_generator_matches(
    G: GeneratorBase, path: str | Path, resolution: int | None = None, w_dim: int | None = None, kind: str | None = None
) -> None:
    """One-line error naming the file and both values when a checkpoint differs from the config."""
    if kind is not None and G.kind != kind:
        raise InputFileError(path, f"checkpoint holds a {G.kind} generator but the config says {kind}")
    if resolution is not None and G.img_resolution != resolution:
        raise InputFileError(path, f"generator resolution is {G.img_resolution} but the config says {resolution}")
    if w_dim is not None and G.w_dim != w_dim:
        raise InputFileError(path, f"generator w_dim is {G.w_dim} but the config says {w_dim}")


__all__ = [
    "GeneratorBase",
    "GeneratorSettings",
    "DCGANGenerator",
    "load_generator",
    "generator_provenance",
    "build_generator",
    "check_generator_matches",
]
