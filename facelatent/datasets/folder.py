"""Indexer for any tree of images (a user's photo folder).

Every visible file whose extension is one of `IMAGE_EXTENSIONS` (case-insensitive) is listed; hidden
files and hidden directories are skipped. Files are listed, never opened: zero-byte or corrupt
images are indexed and left to the align stage, which records them as rejects.

Columns of `index_folder()`:

| column | type | meaning |
|---|---|---|
| `id` | str | the relative path made filename-safe (`/` -> `__`, odd characters -> `_`; collisions get a hash) |
| `path` | str | relative to the root, forward slashes |
| `subject` | str | name of the parent folder (the root's own name for files directly in it) |
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from facelatent.datasets.common import IMAGE_EXTENSIONS, is_hidden, require_dir, unique_ids
from facelatent.errors import InputFileError

COLUMNS = ["id", "path", "subject"]


def _walk_images(root: Path, extensions: tuple[str, ...]) -> list[str]:
    """Relative posix paths of the image files under root, sorted, hidden entries pruned."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not is_hidden(d))
        rel = Path(dirpath).relative_to(root)
        found += [(rel / f).as_posix() for f in filenames if not is_hidden(f) and f.lower().endswith(extensions)]
    return sorted(found)


def index_folder(root: str | Path, extensions: Iterable[str] = IMAGE_EXTENSIONS) -> pd.DataFrame:
    """One row per image file under `root` (any depth)."""
    root = require_dir(root, "image folder")
    paths = _walk_images(root, tuple(e.lower() for e in extensions))
    if not paths:
        raise InputFileError(root, f"no image files ({', '.join(extensions)}) under this folder")
    subjects = [Path(p).parent.name or root.resolve().name for p in paths]
    return pd.DataFrame(dict(id=unique_ids(paths), path=paths, subject=subjects), columns=COLUMNS)
