"""Shared fixtures: fetched models, the repository root, a small thread budget per worker."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"

# pytest-xdist runs one worker per core: one torch thread each avoids oversubscription
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)


def fetched_model(name: str) -> Path:
    """Path of a model fetched by `facelatent fetch-models` (the README's test command runs it first)."""
    path = REPO / "resources" / "models" / f"{name}.safetensors"
    if not path.exists():
        from facelatent.fetch import fetch_model

        fetch_model(name, path)
    return path


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def dcgan_path() -> Path:
    return fetched_model("dcgan_digiface64")
