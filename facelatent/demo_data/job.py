"""The job behind make_demo_data: the fixture datasets, sealed by a manifest written last."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from facelatent.demo_data import make_demo_data as write_demo_data
from facelatent.demo_data.manifest import write_manifest


def make_demo_data(
    *, generator: str | Path, mtcnn: str | Path | None, seed: int, sizes: Mapping | None, manifest: str | Path
) -> dict:
    """Rule make_demo_data: DCGAN faces -> CK+, Multi-PIE, FFHQ and folder fixtures with planted labels in the
    manifest's folder, then the manifest (a killed run leaves none, so Snakemake reruns it)."""
    root = Path(manifest).parent
    Path(manifest).unlink(missing_ok=True)
    write_demo_data(root, generator_path=generator, seed=seed, sizes=sizes or None, mtcnn_weights=mtcnn)
    return write_manifest(root, manifest)
