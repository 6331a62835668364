"""HDF5 store: columnar layouts with root attributes, atomic writes and checked reads.

Every file carries root attributes `format` (e.g. ``facelatent.latents``), `version`,
`generator` (JSON: name + sha256 of the checkpoint) and `config` (JSON of the parameters
that made it). Per-row data lives in columnar datasets (``ids``, ``w`` ...), chunked and
compressed, never one group per sample. Writers go through ``<name>.partial`` and a rename,
so a killed job never leaves a file that Snakemake would take for complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from facelatent.errors import InputFileError

log = logging.getLogger(__name__)

# format tag -> current version; readers accept exactly these versions
FORMATS: dict[str, int] = {
    "facelatent.aligned": 1,
    "facelatent.latents": 1,
    "facelatent.embeddings": 1,
    "facelatent.references": 1,
    "facelatent.variations": 1,
    "facelatent.samples": 1,
    "facelatent.stats": 1,
    "facelatent.demo_faces": 1,
    "facelatent.visible_subspace": 1,
    "facelatent.attributes": 1,
    "facelatent.edit_evaluation": 1,
}

STRING_DTYPE = h5py.string_dtype(encoding="utf-8")


def partial_path(path: str | Path) -> Path:
    """The in-progress name of an output file."""
    path = Path(path)
    return path.with_name(path.name + ".partial")


def _set_root_attrs(fh: h5py.File, fmt: str, generator: Mapping | None, config: Mapping | None) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"unknown store format '{fmt}'")
    fh.attrs["format"] = fmt
    fh.attrs["version"] = FORMATS[fmt]
    fh.attrs["generator"] = json.dumps(dict(generator or {}), sort_keys=True)
    fh.attrs["config"] = json.dumps(dict(config or {}), sort_keys=True, default=str)


def content_digest(*arrays: Any) -> str:
    """Short sha256 of arrays' dtypes, shapes and bytes (strings as UTF-8): the input part of a resume key."""
    digest = hashlib.sha256()
    for value in arrays:
        arr = np.asarray(value)
        if arr.dtype.kind in "OU":
            data = "\0".join(str(v) for v in arr.ravel()).encode()
            digest.update(f"str{arr.shape}".encode())
        else:
            data = np.ascontiguousarray(arr).data
            digest.update(f"{arr.dtype.str}{arr.shape}".encode())
        digest.update(data)
    return digest.hexdigest()[:16]


def column_digest(fh: h5py.Group, names: Sequence[str], block_rows: int = 256) -> str:
    """`content_digest` of columns of an open file, numeric ones read `block_rows` rows at a time: the same value
    as `content_digest(*columns)`, without holding a whole column (an aligned shard's images)."""
    digest = hashlib.sha256()
    for name in names:
        column = fh[name]
        if column.dtype.kind in "OSU":  # strings are read whole, as content_digest hashes them
            values = [v.decode() if isinstance(v, bytes) else str(v) for v in np.atleast_1d(column[()]).ravel()]
            digest.update(f"str{column.shape}".encode())
            digest.update("\0".join(values).encode())
            continue
        digest.update(f"{column.dtype.str}{column.shape}".encode())
        for first in range(0, column.shape[0] if column.ndim else 1, max(1, int(block_rows))):
            block = column[first : first + block_rows] if column.ndim else column[()]
            digest.update(np.ascontiguousarray(block).data)
    return digest.hexdigest()[:16]


def resume_key_mismatch(attrs: Mapping[str, Any], key: Mapping[str, str]) -> list[str]:
    """The parts of a resume key (`resume_<part>` attributes of a partial file) that differ from `key`."""
    found = {name: attrs.get(f"resume_{name}") for name in key}
    return [
        name
        for name, value in key.items()
        if (found[name].decode() if isinstance(found[name], bytes) else found[name]) != value
    ]


def set_resume_key(attrs: Any, key: Mapping[str, str]) -> None:
    """Record a resume key on a partial file's attributes (read back by `resume_key_mismatch`)."""
    for name, value in key.items():
        attrs[f"resume_{name}"] = value


def open_resumable_h5(
    path: str | Path, key: Mapping[str, str], fits: Callable[[h5py.File], bool]
) -> tuple[h5py.File, bool]:
    """The `.partial` HDF5 of a resumable job: reopened when its resume key equals `key` and `fits` accepts its
    layout, else started afresh with the key recorded (one log line names what differed). Returns (file, resumed)."""
    tmp = partial_path(path)
    if tmp.exists():
        try:
            fh = h5py.File(tmp, "a")
            stale = resume_key_mismatch(fh.attrs, key)
            if not stale and fits(fh):
                return fh, True
            fh.close()
            log.warning("%s was made with another %s; starting over", tmp, ", ".join(stale or ["shape"]))
        except (OSError, KeyError):
            log.warning("%s is unreadable (killed while writing?); starting over", tmp)
        tmp.unlink()
    tmp.parent.mkdir(parents=True, exist_ok=True)
    fh = h5py.File(tmp, "w")
    set_resume_key(fh.attrs, key)
    return fh, False


def _column_layout(shape: tuple[int, ...], itemsize: int) -> dict[str, Any]:
    """Chunking and compression of a numeric column: about 1 MiB chunks of whole rows, gzip along rows."""
    if len(shape) == 0 or int(np.prod(shape, dtype=np.int64)) == 0:
        return {}
    row = int(np.prod(shape[1:], dtype=np.int64)) or 1
    rows_per_chunk = int(max(1, min(shape[0], (1 << 20) // max(1, row * itemsize))))
    return dict(chunks=(rows_per_chunk, *shape[1:]), compression="gzip", compression_opts=4, shuffle=True)


def write_column(fh: h5py.Group, name: str, values: Any) -> h5py.Dataset:
    """Write one column: strings as UTF-8, numbers chunked + gzip-compressed along rows."""
    arr = np.asarray(values)
    if arr.dtype.kind in "UOS":
        return fh.create_dataset(name, data=arr.astype(object), dtype=STRING_DTYPE)
    return fh.create_dataset(name, data=arr, **_column_layout(arr.shape, arr.itemsize))


def concat_columns(
    fh: h5py.Group, sources: Sequence[str | Path], fmt: str, names: Sequence[str], block_rows: int = 65536
) -> int:
    """Write each named column as the row-wise concatenation of the same column in `sources`, block by
    block, so memory holds one block, never the whole set; the layout equals `write_column`'s. Returns rows."""
    shapes: dict[str, list[tuple[int, ...]]] = {name: [] for name in names}
    dtypes: dict[str, np.dtype] = {}
    for path in sources:
        with open_checked(path, fmt) as src:
            for name in names:
                if name not in src:
                    raise InputFileError(path, f"column '{name}' is missing")
                shapes[name].append(src[name].shape)
                dtypes.setdefault(name, src[name].dtype)
    totals = {name: sum(shape[0] for shape in shapes[name]) for name in names}
    if len(set(totals.values())) > 1:
        raise InputFileError(sources[0], f"columns differ in length across the files: {totals}")
    total = next(iter(totals.values()), 0)
    for name in names:
        tails = {shape[1:] for shape in shapes[name]}
        if len(tails) > 1:
            raise InputFileError(sources[0], f"column '{name}' has row shapes {sorted(tails)} across the files")
        tail = tails.pop() if tails else ()
        dtype = dtypes.get(name, np.dtype(np.float32))
        if dtype.kind == "O":
            out = fh.create_dataset(name, shape=(total, *tail), dtype=STRING_DTYPE)
        else:
            out = fh.create_dataset(
                name, shape=(total, *tail), dtype=dtype, **_column_layout((total, *tail), dtype.itemsize)
            )
        start = 0
        for path in sources:
            with open_checked(path, fmt) as src:
                column = src[name]
                for first in range(0, column.shape[0], block_rows):
                    block = column[first : first + block_rows]
                    out[start + first : start + first + len(block)] = block
                start += column.shape[0]
    return total


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """The one atomic writer: yield `<path>.partial<suffix>` to write (a file or a folder), rename it to `path`
    when the block finishes, remove it when the block raises.

    `suffix` keeps an extension that a writer needs to pick its format (cv2 and matplotlib read `.png`).
    A folder replaces an existing folder of the same name as a whole.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial" + suffix)
    if tmp.is_symlink():  # never write through a link planted at the temporary name
        tmp.unlink()
    try:
        yield tmp
    except BaseException:
        if tmp.exists() or tmp.is_symlink():
            _remove(tmp)
        raise
    if not tmp.exists():
        raise FileNotFoundError(f"{tmp}: the writer produced nothing")
    if tmp.is_dir() and path.exists():
        _remove(path)
    os.replace(tmp, path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write a binary file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_json(path: str | Path, obj: Any, **dumps_kwargs: Any) -> Path:
    """Write a JSON document atomically (indent 2 and a final newline unless told otherwise)."""
    dumps_kwargs.setdefault("indent", 2)
    return atomic_write_text(path, json.dumps(obj, **dumps_kwargs) + "\n")


@contextlib.contextmanager
def atomic_h5(
    path: str | Path, fmt: str, generator: Mapping | None = None, config: Mapping | None = None
) -> Iterator[h5py.File]:
    """Open `<path>.partial` for writing as an HDF5 store; rename to `path` only if the block finishes."""
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as fh:
            _set_root_attrs(fh, fmt, generator, config)
            yield fh


def write_table(
    path: str | Path,
    fmt: str,
    columns: Mapping[str, Any],
    generator: Mapping | None = None,
    config: Mapping | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> Path:
    """Write a whole columnar table atomically; all columns must share their first dimension."""
    lengths = {name: len(np.asarray(col)) for name, col in columns.items() if np.asarray(col).ndim > 0}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"columns differ in length: {lengths}")
    with atomic_h5(path, fmt, generator, config) as fh:
        for name, col in columns.items():
            write_column(fh, name, col)
        for key, value in (attrs or {}).items():
            fh.attrs[key] = value if not isinstance(value, (dict, list)) else json.dumps(value)
    return Path(path)


def open_checked(path: str | Path, fmt: str | tuple[str, ...], mode: str = "r") -> h5py.File:
    """Open an HDF5 file and check its format tag and version; one-line errors name the file."""
    path = Path(path)
    formats = (fmt,) if isinstance(fmt, str) else fmt
    if not path.exists():
        raise InputFileError(path, "file does not exist")
    if path.stat().st_size == 0:
        raise InputFileError(path, "file is empty (zero bytes)")
    try:
        fh = h5py.File(path, mode)
    except OSError as exc:
        reason = "truncated or corrupt HDF5 file" if h5py.is_hdf5(path) else "not an HDF5 file"
        raise InputFileError(path, f"{reason} ({str(exc).splitlines()[0]})") from exc
    found = fh.attrs.get("format")
    found = found.decode() if isinstance(found, bytes) else found
    if found not in formats:
        fh.close()
        raise InputFileError(path, f"wrong format tag '{found}', expected {' or '.join(formats)}")
    version = int(fh.attrs.get("version", -1))
    if version != FORMATS[found]:
        fh.close()
        raise InputFileError(path, f"format {found} version {version} is not supported (expected {FORMATS[found]})")
    return fh


def read_table(path: str | Path, fmt: str | tuple[str, ...], columns: list[str] | None = None) -> dict[str, np.ndarray]:
    """Read columns (all by default) into memory; strings come back as Python str objects."""
    with open_checked(path, fmt) as fh:
        names = columns or [k for k in fh.keys() if isinstance(fh[k], h5py.Dataset)]
        out = {}
        for name in names:
            if name not in fh:
                raise InputFileError(path, f"column '{name}' is missing")
            try:
                data = fh[name][()]
            except OSError as exc:
                raise InputFileError(
                    path, f"column '{name}' cannot be read, file truncated or corrupt ({exc})"
                ) from exc
            if fh[name].dtype.kind == "O":
                data = np.array([d.decode() if isinstance(d, bytes) else d for d in np.atleast_1d(data)], dtype=object)
            out[name] = data
        return out


def read_attrs(path: str | Path, fmt: str | tuple[str, ...]) -> dict[str, Any]:
    """Root attributes, with `generator` and `config` decoded from JSON."""
    with open_checked(path, fmt) as fh:
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in fh.attrs.items()}
    for key in ("generator", "config"):
        if isinstance(attrs.get(key), str):
            attrs[key] = json.loads(attrs[key])
    return attrs
