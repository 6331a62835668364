"""Run the demo-data generator and seal its output with a manifest written last."""

from __future__ import annotations

import json
from pathlib import Path

from facelatent.checkpoints import file_sha256
from facelatent.store import atomic_write_text


def write_manifest(root: str | Path, manifest_path: str | Path) -> dict:
    """List every file under `root` with size and sha256; written atomically, last, as the completion marker."""
    root, manifest_path = Path(root), Path(manifest_path)
    files = {
        str(p.relative_to(root)): {"size": p.stat().st_size, "sha256": file_sha256(p)}
        for p in sorted(root.rglob("*"))
        if p.is_file() and p != manifest_path and ".partial" not in p.name
    }
    manifest = {"root": str(root), "n_files": len(files), "files": files}
    atomic_write_text(manifest_path, json.dumps(manifest, indent=1, sort_keys=True))
    return manifest


def make_demo_data_with_manifest(root: str | Path, generator_path: str | Path, seed: int,
                                 manifest_path: str | Path, sizes: dict | None = None,
                                 mtcnn_weights: str | Path | None = None) -> dict:
    """`make_demo_data`, then the manifest; a killed run leaves no manifest, so Snakemake reruns it."""
    from facelatent.demo_data import make_demo_data

    Path(manifest_path).unlink(missing_ok=True)
    make_demo_data(Path(root), generator_path=generator_path, seed=seed, sizes=sizes or None,
                   mtcnn_weights=mtcnn_weights)
    return write_manifest(root, manifest_path)
