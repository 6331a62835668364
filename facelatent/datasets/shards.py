"""Shard assignment, the index / shard-manifest TSV files, the per-shard rows files and download lists.

The index TSV has a header row and one row per image; `read_index` reads every column as text and
casts the known integer columns back, so ids such as `01000` keep their zeros. The shard manifest
is the small file a Snakemake checkpoint reads to learn the shard ids (`shard`, `n_images`).

Every dataset also gets one rows file per shard, `<folder>/<shard>.tsv`: that shard's index rows, in the index's
format (`read_index` reads it). A per-shard job reads its own rows file, never the whole index (FFHQ in-the-wild rows
carry 68 landmark pairs each: ~100 MB of index for 70,000 photos, which 274 align jobs would each parse).

A dataset that is downloaded (FFHQ) also gets one download list per shard, `<folder>/<shard>.jsonl`: one JSON
object a line, `{"id", "index", "path", "url", "size", "md5", "landmarks"}` (`size`/`md5` null when the
manifest has none, `landmarks` the manifest's 68 [x, y] points or []). A download job reads its own list,
~0.4 MB for 256 FFHQ images, and neither the index nor the manifest.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from facelatent.errors import InputFileError
from facelatent.store import atomic_path, atomic_write_text

MIN_SHARD_DIGITS = 3
INT_COLUMNS = {
    "frame",
    "n_frames",
    "emotion_code",
    "session",
    "recording",
    "yaw",
    "flash",
    "birth_year",
    "index",
    "file_size",
    "width",
    "height",
    "n_images",
}
_AU_COLUMN = re.compile(r"^au\d+$")
REQUIRED = ("id", "path", "subject")


def shard_width(n_shards: int) -> int:
    """Digits of a shard id: at least 3, more when a dataset has over 1000 shards."""
    return max(MIN_SHARD_DIGITS, len(str(max(n_shards - 1, 0))))


def assign_shards(df: pd.DataFrame, images_per_shard: int) -> pd.DataFrame:
    """A copy with a `shard` column `000`, `001`, ...: consecutive rows, `images_per_shard` per shard."""
    if images_per_shard < 1:
        raise ValueError(f"images_per_shard must be >= 1, got {images_per_shard}")
    n_shards = -(-len(df) // images_per_shard)
    width = shard_width(n_shards)
    out = df.copy()
    out["shard"] = [f"{i // images_per_shard:0{width}d}" for i in range(len(df))]
    return out


def _check_index(df: pd.DataFrame, path: Path) -> None:
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise InputFileError(path, f"index lacks column(s) {missing}")
    if df["id"].duplicated().any():
        raise InputFileError(path, f"duplicate id '{df.loc[df['id'].duplicated(), 'id'].iloc[0]}' in the index")
    bad = df.apply(lambda col: col.astype(str).str.contains("[\t\n\r]", regex=True).any())
    if bad.any():
        raise InputFileError(path, f"tab or newline inside column(s) {list(bad[bad].index)}")


def write_index(df: pd.DataFrame, tsv_path: str | Path) -> Path:
    """Write the index as a TSV (header row, no pandas index), atomically."""
    tsv_path = Path(tsv_path)
    _check_index(df, tsv_path)
    return atomic_write_text(tsv_path, _tsv_text(df))


def _cast_columns(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    for col in df.columns:
        if col in INT_COLUMNS or _AU_COLUMN.match(col):
            try:
                df[col] = df[col].astype(np.int64)
            except ValueError as exc:
                raise InputFileError(path, f"column '{col}' is not integer: {exc}") from exc
    return df


def read_index(tsv_path: str | Path) -> pd.DataFrame:
    """Read an index TSV: text columns stay text (empty = `""`), known integer columns become int64."""
    tsv_path = Path(tsv_path)
    try:
        text = tsv_path.read_text()
        df = pd.read_csv(io.StringIO(text), sep="\t", dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise InputFileError(tsv_path, f"cannot read the index: {exc}") from exc
    _check_index(df, tsv_path)
    return _cast_columns(df, tsv_path)


def shard_counts(df: pd.DataFrame) -> pd.DataFrame:
    """`shard`, `n_images` per shard, in shard order."""
    if "shard" not in df.columns:
        raise ValueError("assign_shards() first: the index has no 'shard' column")
    counts = df.groupby("shard", sort=True).size()
    return pd.DataFrame(dict(shard=counts.index.astype(str), n_images=counts.to_numpy(np.int64)))


def write_shard_manifest(df: pd.DataFrame, path: str | Path) -> Path:
    """Write `shard<TAB>n_images` rows (header included), atomically."""
    return atomic_write_text(path, shard_counts(df).to_csv(sep="\t", index=False, lineterminator="\n"))


def _tsv_text(df: pd.DataFrame) -> str:
    return df.to_csv(sep="\t", index=False, lineterminator="\n")


def write_shard_rows(df: pd.DataFrame, folder: str | Path) -> Path:
    """Write `<folder>/<shard>.tsv` (the index rows of that shard, header included) for every shard of `df`, the
    folder as a whole and atomically (a job never sees half of the shards)."""
    folder = Path(folder)
    if "shard" not in df.columns:
        raise ValueError("assign_shards() first: the index has no 'shard' column")
    _check_index(df, folder)
    with atomic_path(folder) as tmp:
        tmp.mkdir()
        for shard, rows in df.groupby("shard", sort=True).indices.items():
            (tmp / f"{shard}.tsv").write_text(_tsv_text(df.iloc[rows]))
    return folder


def _read_small_tsv(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    """A small TSV with the given required columns, read as text."""
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise InputFileError(path, f"cannot read: {exc}") from exc
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputFileError(path, f"lacks column(s) {missing}")
    return df


def read_shard_manifest(path: str | Path) -> list[str]:
    """The shard ids listed in a shard manifest, in order (what a checkpoint's input function needs)."""
    return _read_small_tsv(Path(path), ("shard", "n_images"))["shard"].tolist()


# index column -> value when the column is absent, in `_download_line`'s argument order
_LIST_COLUMNS = (
    ("id", ""),
    ("index", -1),
    ("path", ""),
    ("url", ""),
    ("file_size", -1),
    ("file_md5", ""),
    ("landmarks", ""),
)


def _download_line(id_: str, index: int, path: str, url: str, size: int, md5: str, landmarks: str) -> str:
    """One download-list line. `landmarks` is compact JSON text (as `index_ffhq(landmarks=True)` makes it) and goes
    in verbatim: encoding 70,000 x 136 floats a second time would double the index job's time."""
    head = dict(id=id_, index=int(index), path=path, url=url, size=int(size) if size >= 0 else None, md5=md5 or None)
    return json.dumps(head, separators=(",", ":"))[:-1] + f',"landmarks":{landmarks or "[]"}}}\n'


def write_download_lists(df: pd.DataFrame | None, folder: str | Path) -> Path:
    """Write `<folder>/<shard>.jsonl` for every shard of `df`, the folder as a whole and atomically; `None` writes an
    empty folder (a dataset already on disk downloads nothing).

    `df` needs `shard`, `id`, `path` and `url`; `index`, `file_size`, `file_md5` and `landmarks` are optional.
    """
    groups, columns = {}, []
    if df is not None:
        missing = [c for c in ("shard", "id", "path", "url") if c not in df.columns]
        if missing:
            raise ValueError(f"write_download_lists: the index lacks column(s) {missing}")
        groups = df.groupby("shard", sort=True).indices
        columns = [df[name].tolist() if name in df.columns else [default] * len(df) for name, default in _LIST_COLUMNS]
    with atomic_path(folder) as tmp:
        tmp.mkdir()
        for shard, rows in groups.items():
            text = "".join(_download_line(*(column[i] for column in columns)) for i in rows)
            (tmp / f"{shard}.jsonl").write_text(text)
    return Path(folder)


def read_download_list(path: str | Path) -> list[dict]:
    """A shard's download list (see the module docstring); every line needs `url` and `path`."""
    path = Path(path)
    entries = []
    try:
        with open(path, encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                entry = json.loads(line)
                if not isinstance(entry, dict) or not {"url", "path"} <= set(entry):
                    raise ValueError(f"line {number} is not an object with `url` and `path`")
                entries.append(entry)
    except (OSError, ValueError) as exc:
        raise InputFileError(path, f"cannot read the download list: {exc}") from exc
    return entries
