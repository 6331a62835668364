"""The demo data's manifest: every file with its size and sha256, written last as the completion marker."""

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
