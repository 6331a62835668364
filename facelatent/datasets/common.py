"""Helpers shared by the dataset indexers: directory listing, ids, atomic text writes."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path, PurePosixPath

from facelatent.errors import InputFileError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def is_hidden(name: str) -> bool:
    """Hidden entries (`.DS_Store`, `._foo`, `.git`) are never data."""
    return name.startswith(".")


def list_dirs(path: str | Path) -> list[str]:
    """Sorted names of the visible sub-directories of `path` (empty when `path` is not a dir)."""
    try:
        with os.scandir(path) as it:
            return sorted(e.name for e in it if not is_hidden(e.name) and e.is_dir())
    except (FileNotFoundError, NotADirectoryError):
        return []


def list_files(path: str | Path, suffix: str | tuple[str, ...] | None = None) -> list[str]:
    """Sorted names of the visible regular files of `path`, optionally filtered by suffix (case-insensitive)."""
    suffixes = (suffix,) if isinstance(suffix, str) else suffix
    try:
        with os.scandir(path) as it:
            names = [e.name for e in it if not is_hidden(e.name) and e.is_file()]
    except (FileNotFoundError, NotADirectoryError):
        return []
    if suffixes is not None:
        names = [n for n in names if n.lower().endswith(tuple(s.lower() for s in suffixes))]
    return sorted(names)


def require_dir(path: str | Path, what: str) -> Path:
    """The directory itself, or a one-line InputFileError naming it."""
    path = Path(path)
    if not path.is_dir():
        raise InputFileError(path, f"{what} not found (expected a directory)")
    return path


def safe_id(text: str) -> str:
    """Filename-safe form of a relative path: separators become `__`, other odd runs `_`."""
    return _UNSAFE.sub("_", text.replace("\\", "/").replace("/", "__")).strip("_") or "_"


def unique_ids(texts: list[str]) -> list[str]:
    """`safe_id` of each text; ids that collide get a short hash of their source text appended."""
    ids = [safe_id(t) for t in texts]
    counts: dict[str, int] = {}
    for i in ids:
        counts[i] = counts.get(i, 0) + 1
    return [
        i if counts[i] == 1 else f"{i}_{hashlib.sha1(t.encode()).hexdigest()[:8]}"
        for i, t in zip(ids, texts, strict=True)
    ]


def posix_rel(path: str | Path, root: str | Path) -> str:
    """`path` relative to `root`, with forward slashes (index files are portable)."""
    return Path(os.path.relpath(path, root)).as_posix()


def relative_inside(path: str) -> str:
    """A relative posix path that stays inside its root; ValueError for absolute paths, `..` or drives."""
    pure = PurePosixPath(str(path).replace("\\", "/"))
    if not pure.parts or pure.is_absolute() or ".." in pure.parts or ":" in pure.parts[0]:
        raise ValueError(f"path '{path}' escapes the data root (absolute, '..' or a drive)")
    return pure.as_posix()
