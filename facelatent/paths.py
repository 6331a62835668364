"""Where bundled resources live: the models fetched by `fetch_model` and the small assets."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_ROOT.parent


def resources_dir() -> Path:
    """`$FACELATENT_RESOURCES`, else `./resources` when run from a workflow dir, else the repo's."""
    env = os.environ.get("FACELATENT_RESOURCES")
    if env:
        return Path(env)
    local = Path.cwd() / "resources"
    if (local / "model_pins.json").exists():
        return local
    return REPO_ROOT / "resources"


def models_dir() -> Path:
    """Directory holding `{name}.safetensors` written by `facelatent fetch-models`."""
    return resources_dir() / "models"


def model_path(name: str) -> Path:
    """Path of a fetched model; a missing file gets an error that says how to fetch it."""
    path = models_dir() / f"{name}.safetensors"
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: model '{name}' is not fetched yet; run `facelatent fetch-models {name}` "
            f"(or `snakemake --cores 1 {path}`)"
        )
    return path
