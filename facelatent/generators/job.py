"""The job behind sample_grid: a grid of the configured generator's samples for the report."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from facelatent import grids
from facelatent.devices import pick_device
from facelatent.generators import GeneratorSettings, load_generator


def sample_grid(
    *,
    generator: str | Path,
    generator_settings: Mapping | GeneratorSettings,
    rows: int,
    cols: int,
    seed: int,
    output: str | Path,
    device: str = "cpu",
) -> np.ndarray:
    """Rule sample_grid: rows x cols samples of the checkpoint (checked against `generator_settings`, the config's
    `generator:` section, which also gives the truncation and noise settings), rendered on `device`."""
    settings = GeneratorSettings.coerce(generator_settings)
    G = load_generator(generator, pick_device(device), expect=settings)
    return grids.sample_grid(
        G,
        output,
        rows=rows,
        cols=cols,
        seed=seed,
        truncation_psi=settings.truncation_psi,
        truncation_cutoff=settings.truncation_cutoff,
        noise_mode=settings.noise_mode,
    )
