"""What a results folder offers the editor: projected latents files, synthetic runs, fitted and PCA directions.

Everything is found by listing known places under the root and keeping only regular files that stay inside it
once symlinks are resolved; requests then name entries of these lists, never paths.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facelatent.editor.safety import NAME, inside
from facelatent.store import open_checked

log = logging.getLogger(__name__)

UPLOADS = Path("editor") / "uploads"  # under the results folder: projected uploads, so their URLs keep working
SAVED = Path("editor") / "saved"  # under the results folder: what the Save button writes


@dataclass(frozen=True)
class DirectionEntry:
    """A direction the editor offers: its .npy, its kind (fitted, conditional, pca) and a one-line label."""

    name: str
    kind: str
    label: str
    path: Path


@dataclass
class Catalog:
    """The allow-list of a results folder: latents files and synthetic runs by name, directions by name."""

    root: Path
    latents: dict[str, Path] = field(default_factory=dict)
    synthetic: dict[str, Path] = field(default_factory=dict)
    directions: dict[str, DirectionEntry] = field(default_factory=dict)


def _named_files(root: Path, pattern: str, name_of) -> dict[str, Path]:
    """{name: file} for files matching `pattern` under root that stay inside it; odd names are left out."""
    found = {}
    for path in sorted(root.glob(pattern)):
        name = name_of(path)
        if not re.fullmatch(NAME, name) or not path.is_file():
            continue
        if not inside(root, path):
            log.warning("editor: %s leads outside %s; not offered", path, root)
            continue
        found[name] = path
    return found


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}


def direction_entry(path: Path, pca_info: dict) -> DirectionEntry:
    """Kind and label of a direction .npy from the metrics JSON beside it (or pca.json for pca_<k>)."""
    name, meta = path.stem, _read_json(path.with_suffix(".json"))
    pca = re.fullmatch(r"pca_(\d+)", name)
    if pca and pca_info:
        k = int(pca[1])
        ratio = pca_info.get("explained_variance_ratio", [])
        share = f", {100 * ratio[k]:.0f}% of the variance" if k < len(ratio) else ""
        return DirectionEntry(name, "pca", f"PCA component {k}{share}", path)
    if meta.get("conditional"):
        cond = meta["conditional"]
        return DirectionEntry(name, "conditional", f"{cond['primal']} given {', '.join(cond['given'])}", path)
    accuracy = meta.get("cv", {}).get("accuracy_mean")
    detail = f"SVM on {meta['dataset']}" if "dataset" in meta else "fitted"
    detail += f", cv accuracy {accuracy:.2f}" if accuracy is not None else ""
    return DirectionEntry(name, "fitted", detail, path)


def scan_results(root: str | Path) -> Catalog:
    """The catalog of a results folder (missing parts are simply empty)."""
    root = Path(root).resolve()
    pca_info = _read_json(root / "directions" / "pca.json")
    directions = {
        name: direction_entry(path, pca_info)
        for name, path in _named_files(root, "directions/*.npy", lambda p: p.stem).items()
    }
    order = {"fitted": 0, "conditional": 1, "pca": 2}  # the page lists fitted, then conditional, then PCA
    return Catalog(
        root=root,
        latents=_named_files(root, "latents/*.h5", lambda p: p.stem),
        synthetic=_named_files(root, "synthetic/*/references.h5", lambda p: p.parent.name),
        directions=dict(sorted(directions.items(), key=lambda kv: (order[kv[1].kind], kv[0]))),
    )


def face_ids(path: Path, fmt: str = "facelatent.latents") -> list[str]:
    """The ids of a latents file (the identity numbers of a synthetic run's references)."""
    column = "ids" if fmt == "facelatent.latents" else "identity"
    with open_checked(path, fmt) as fh:
        values = fh[column][()]
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def aligned_target(root: Path, dataset: str, face_id: str) -> np.ndarray | None:
    """The aligned crop [R, R, 3] a projected face was fitted to (results/aligned/<dataset>/*.h5), if kept."""
    for shard in sorted((root / "aligned" / dataset).glob("*.h5")):
        if not inside(root, shard):
            continue
        with open_checked(shard, "facelatent.aligned") as fh:
            ids = [v.decode() if isinstance(v, bytes) else str(v) for v in fh["ids"][()]]
            if face_id in ids:
                return fh["images"][ids.index(face_id)]
    return None
