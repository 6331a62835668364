"""FFHQ indexer from the `ffhq-dataset-v2.json` manifest (DATASETS.md §3).

The JSON keys are the image indices as decimal strings; the index is taken from the key (in the
full manifest key = position). FFHQ carries no identity labels, so `subject` = `id`.

Columns of `index_ffhq()`:

| column | type | meaning |
|---|---|---|
| `id` | str | index zero-padded to 5 digits, e.g. `01000` |
| `path` | str | the manifest's `file_path` of the chosen kind, relative to the data root |
| `subject` | str | = `id` |
| `index` | int | image index 0..69999 |
| `category` | str | `training` or `validation` |
| `file_size` | int | bytes, from the manifest |
| `file_md5` | str | md5 hex of the file bytes, from the manifest |
| `width`, `height` | int | `pixel_size` from the manifest |
| `landmarks` | str | only with `landmarks=True`: the kind's `face_landmarks` as compact JSON (68 [x, y]) |
| `url` | str | only with `urls=True`: the kind's `file_url` (what the workflow's per-shard download lists need) |

Landmarks are dropped by default: the 1024 images are already aligned, and 68 pairs per row
would make the index of the full dataset ~100 MB. In-the-wild photos are not aligned: their
landmarks are what the align stage aligns them from (`is_in_the_wild`), so the index checkpoint
always keeps them in the per-shard rows files.

The manifest (267 MB of JSON, ~2 GB once parsed whole) is read entry by entry (`iter_ffhq_manifest`):
the indexer keeps only its own columns of each entry, never the whole document.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from facelatent.datasets.common import relative_inside
from facelatent.errors import InputFileError

log = logging.getLogger(__name__)

MANIFEST_NAME = "ffhq-dataset-v2.json"
KINDS = {"image": "image", "thumbnail": "thumbnail", "wild": "in_the_wild", "in_the_wild": "in_the_wild"}
DEFAULT_KIND = "image"
UNALIGNED = "in_the_wild"  # the manifest section whose photos still need the FFHQ alignment
COLUMNS = ["id", "path", "subject", "index", "category", "file_size", "file_md5", "width", "height"]


_SPACE = re.compile(r"[ \t\n\r]*")
MAX_ENTRY_CHARS = 1 << 24  # one manifest entry is ~4 kB; a value this long means a broken file


class _JsonStream:
    """A JSON text read in chunks: whitespace, single characters and whole values, never the whole text."""

    def __init__(self, fh, chunk_chars: int):
        self.fh, self.chunk_chars = fh, chunk_chars
        self.buf, self.pos, self.offset, self.eof = "", 0, 0, False
        self.decoder = json.JSONDecoder()

    def _more(self) -> bool:
        """Append the next chunk (dropping what was consumed); False at the end of the file."""
        data = self.fh.read(self.chunk_chars)
        if not data:
            self.eof = True
            return False
        self.offset += self.pos
        self.buf, self.pos = self.buf[self.pos :] + data, 0
        return True

    def peek(self) -> str:
        """The next character after whitespace ('' at the end of the file), not consumed."""
        while True:
            self.pos = _SPACE.match(self.buf, self.pos).end()
            if self.pos < len(self.buf) or not self._more():
                return self.buf[self.pos : self.pos + 1]

    def expect(self, chars: str) -> str:
        """Consume one of `chars` (after whitespace)."""
        char = self.peek()
        if not char or char not in chars:
            raise ValueError(f"expected one of {list(chars)} at character {self.offset + self.pos}, got {char!r}")
        self.pos += 1
        return char

    def value(self):
        """Decode the next whole JSON value, reading more of the file while it is cut off."""
        self.peek()
        while True:
            try:
                value, end = self.decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                if len(self.buf) - self.pos < MAX_ENTRY_CHARS and self._more():
                    continue  # the value runs past the chunk read so far
                raise ValueError(f"{exc.msg} at character {self.offset + exc.pos}") from None
            if end == len(self.buf) and not self.eof and self._more():
                continue  # a number may continue in the next chunk
            self.pos = end
            return value


def iter_ffhq_manifest(path: str | Path, chunk_chars: int = 1 << 20) -> Iterator[tuple[int, dict]]:
    """(index, entry) for each entry of the manifest, in file order, parsing one entry at a time."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as fh:
            stream = _JsonStream(fh, chunk_chars)
            stream.expect("{")
            if stream.peek() == "}":
                stream.expect("}")
            else:
                while True:
                    key = stream.value()
                    stream.expect(":")
                    entry = stream.value()
                    if not (isinstance(key, str) and key.isascii() and key.isdigit()) or not isinstance(entry, dict):
                        raise ValueError(f"entry {key!r} is not an object keyed by its image index")
                    yield int(key), entry
                    if stream.expect(",}") == "}":
                        break
            if stream.peek():
                raise ValueError(f"extra data after the top-level object at character {stream.offset + stream.pos}")
    except (OSError, ValueError) as exc:  # UnicodeDecodeError and JSON errors are ValueErrors
        raise InputFileError(path, f"cannot read the FFHQ manifest: {exc}") from exc


def read_ffhq_manifest(path: str | Path) -> dict[int, dict]:
    """The whole manifest as {index: entry}, in file order (~2 GB for the full FFHQ: prefer `iter_ffhq_manifest`)."""
    return dict(iter_ffhq_manifest(path))


def is_in_the_wild(kind: str) -> bool:
    """True for the `options.kind` values that index the unaligned Flickr photos (`wild`, `in_the_wild`)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {sorted(KINDS)}, got {kind!r}")
    return KINDS[kind] == UNALIGNED


def check_relative_path(path: str, source: str | Path) -> str:
    """A manifest path must stay inside the data root: no absolute paths, no `..` (error names `source`)."""
    try:
        return relative_inside(path)
    except ValueError as exc:
        raise InputFileError(source, str(exc)) from None


def _section(entry: dict, kind: str, index: int, manifest: Path) -> dict:
    key = KINDS[kind]
    if key not in entry or "file_path" not in entry[key]:
        raise InputFileError(manifest, f"entry {index} has no '{key}.file_path'")
    return entry[key]


def index_ffhq(
    root: str | Path,
    manifest: str | Path | None = None,
    kind: str = DEFAULT_KIND,
    categories: Iterable[str] | None = None,
    indices: Iterable[int] | None = None,
    missing: str = "error",
    landmarks: bool = False,
    urls: bool = False,
) -> pd.DataFrame:
    """Index FFHQ files of one kind (`image`, `thumbnail`, `wild`) listed by the manifest.

    `manifest` defaults to `root/ffhq-dataset-v2.json`. `missing`: `error` (one-line error naming the
    first missing file and the count), `skip` (drop, logged) for listed files not under root, or
    `download` (keep every row without looking: the workflow downloads each shard after indexing).
    `landmarks` / `urls` add the kind's `face_landmarks` / `file_url` columns. The manifest is streamed.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {sorted(KINDS)}, got {kind!r}")
    if missing not in ("error", "skip", "download"):
        raise ValueError(f"missing must be 'error', 'skip' or 'download', got {missing!r}")
    root = Path(root)
    manifest = Path(manifest) if manifest is not None else root / MANIFEST_NAME
    wanted_cat = None if categories is None else set(categories)
    wanted_idx = None if indices is None else {int(i) for i in indices}
    rows = []
    for index, entry in iter_ffhq_manifest(manifest):
        if (wanted_idx is not None and index not in wanted_idx) or (
            wanted_cat is not None and entry.get("category") not in wanted_cat
        ):
            continue
        sec = _section(entry, kind, index, manifest)
        width, height = sec.get("pixel_size", [-1, -1])
        row = dict(
            id=f"{index:05d}",
            path=check_relative_path(sec["file_path"], manifest),
            subject=f"{index:05d}",
            index=index,
            category=entry.get("category", ""),
            file_size=int(sec.get("file_size", -1)),
            file_md5=sec.get("file_md5", ""),
            width=int(width),
            height=int(height),
        )
        if landmarks:
            row["landmarks"] = json.dumps(sec.get("face_landmarks", []), separators=(",", ":"))
        if urls:
            row["url"] = sec.get("file_url", "")
        rows.append(row)
    df = pd.DataFrame(rows, columns=COLUMNS + (["landmarks"] if landmarks else []) + (["url"] if urls else []))
    absent = [] if missing == "download" else [p for p in df["path"] if not (root / p).is_file()]
    if absent and missing == "error":
        raise InputFileError(
            root / absent[0],
            f"listed in {manifest.name} but missing ({len(absent)} of {len(df)} files missing; download them first)",
        )
    if absent:
        log.warning("%s: %d of %d listed files missing; skipped", root, len(absent), len(df))
        df = df[~df["path"].isin(set(absent))].reset_index(drop=True)
    return df.astype({c: np.int64 for c in ("index", "file_size", "width", "height")})
