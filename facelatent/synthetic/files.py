"""Columnar HDF5 layouts of a synthetic run (one row per face, never one group per sample).

references.h5 (`facelatent.references`): `identity` [N] int64, `w` [N, w_dim], `embedding` [N, D],
    optional `z` [N, z_dim] (random / reject), group `stats/` (original stat names, or reject timings).
variations/{part}.h5 (`facelatent.variations`): `identity`, `label` (`augmentation_{a}`), `w`,
    `embedding` with N_part x A rows, group `stats/`; attrs `part`, `num_identities`, `num_augmentations`.
samples.h5 (`facelatent.samples`): every identity's `reference` row followed by its augmentations:
    `identity`, `label`, `w`, `embedding`, `z` (NaN rows where a face has no z).
stats.h5 (`facelatent.stats`): groups `references/` and `variations/` (parts merged), flat datasets.
W rows are single W vectors; synthesis broadcasts them to all num_ws inputs.
Every file carries the store's root attributes plus `embedder` (JSON) and `algorithm`.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from facelatent.errors import InputFileError
from facelatent.store import _column_layout, atomic_h5, open_checked, read_attrs, read_table, write_column
from facelatent.synthetic.stats import merge_stats, read_stats, write_stats

log = logging.getLogger(__name__)

REFERENCE_LABEL = "reference"


def augmentation_label(a: int) -> str:
    return f"augmentation_{a}"


@dataclass
class FaceTable:
    """Rows of faces: identity, label, W, embedding (+ optional z)."""

    identity: np.ndarray
    label: np.ndarray
    w: np.ndarray
    embedding: np.ndarray
    z: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.identity)

    def columns(self) -> dict[str, np.ndarray]:
        cols = {
            "identity": self.identity.astype(np.int64),
            "label": self.label.astype(object),
            "w": self.w.astype(np.float32),
            "embedding": self.embedding.astype(np.float32),
        }
        if self.z is not None:
            cols["z"] = self.z.astype(np.float32)
        return cols


def _write(
    path: str | Path,
    fmt: str,
    table: Mapping[str, np.ndarray],
    generator: Mapping,
    config: Mapping,
    attrs: Mapping,
    stats: Mapping[str, Mapping[str, np.ndarray]],
    num_identities: int,
) -> Path:
    with atomic_h5(path, fmt, generator, config) as fh:
        for name, col in table.items():
            write_column(fh, name, col)
        for key, value in attrs.items():
            fh.attrs[key] = json.dumps(value) if isinstance(value, (dict, list)) else value
        for group, arrays in stats.items():
            write_stats(fh.create_group(group), arrays, num_identities)
    return Path(path)


def write_references(
    path: str | Path,
    identity: np.ndarray,
    w: np.ndarray,
    embedding: np.ndarray,
    z: np.ndarray | None,
    stats: Mapping[str, np.ndarray],
    algorithm: str,
    embedder: Mapping,
    generator: Mapping,
    config: Mapping,
    face_gate: Mapping[str, np.ndarray] | None = None,
    face_gate_summary: Mapping | None = None,
) -> Path:
    """`face_gate`: per-reference columns (face_redraws, face_confidence, face_landmark_error) of the gate;
    `face_gate_summary` its settings and totals (attr `face_gate`, JSON)."""
    table = {
        "identity": np.asarray(identity, np.int64),
        "w": np.asarray(w, np.float32),
        "embedding": np.asarray(embedding, np.float32),
    }
    if z is not None:
        table["z"] = np.asarray(z, np.float32)
    table.update({k: np.asarray(v) for k, v in (face_gate or {}).items()})
    attrs = {"algorithm": algorithm, "embedder": dict(embedder), "num_identities": len(identity)}
    if face_gate_summary is not None:
        attrs["face_gate"] = dict(face_gate_summary)
    return _write(path, "facelatent.references", table, generator, config, attrs, {"stats": stats}, len(identity))


def _attrs(path: str | Path, fmt: str) -> dict:
    """Root attributes with the JSON ones (generator, config, embedder) decoded."""
    attrs = read_attrs(path, fmt)
    if isinstance(attrs.get("embedder"), str):
        attrs["embedder"] = json.loads(attrs["embedder"])
    return attrs


def read_references(path: str | Path) -> tuple[FaceTable, dict]:
    """The references as a FaceTable (label `reference`) and the file's root attributes."""
    with open_checked(path, "facelatent.references") as fh:
        has_z = "z" in fh
    cols = read_table(path, "facelatent.references", ["identity", "w", "embedding"] + (["z"] if has_z else []))
    n = len(cols["identity"])
    table = FaceTable(
        cols["identity"], np.array([REFERENCE_LABEL] * n, dtype=object), cols["w"], cols["embedding"], cols.get("z")
    )
    return table, _attrs(path, "facelatent.references")


def read_face_gate(path: str | Path) -> tuple[dict[str, np.ndarray], dict]:
    """The gate's per-reference columns (with `identity`) and its summary attr; empty when it was off."""
    with open_checked(path, "facelatent.references") as fh:
        names = [k for k in ("face_redraws", "face_confidence", "face_landmark_error") if k in fh]
    summary = _attrs(path, "facelatent.references").get("face_gate")
    if not names:
        return {}, {}
    cols = read_table(path, "facelatent.references", ["identity", *names])
    return cols, json.loads(summary) if isinstance(summary, str) else dict(summary or {})


def write_variations(
    path: str | Path,
    table: FaceTable,
    stats: Mapping[str, np.ndarray],
    part: str,
    num_identities: int,
    num_augmentations: int,
    algorithm: str,
    embedder: Mapping,
    generator: Mapping,
    config: Mapping,
) -> Path:
    attrs = {
        "algorithm": algorithm,
        "embedder": dict(embedder),
        "part": part,
        "num_identities": num_identities,
        "num_augmentations": num_augmentations,
    }
    return _write(
        path, "facelatent.variations", table.columns(), generator, config, attrs, {"stats": stats}, num_identities
    )


def read_faces(path: str | Path, fmt: str) -> FaceTable:
    with open_checked(path, fmt) as fh:
        has_z = "z" in fh
    cols = read_table(path, fmt, ["identity", "label", "w", "embedding"] + (["z"] if has_z else []))
    return FaceTable(cols["identity"], cols["label"], cols["w"], cols["embedding"], cols.get("z"))


def read_group_stats(path: str | Path, fmt: str, group: str) -> tuple[dict[str, np.ndarray], int]:
    with open_checked(path, fmt) as fh:
        if group not in fh:
            raise InputFileError(path, f"group '{group}' is missing")
        return read_stats(fh[group])


def merge_samples(
    references: str | Path, parts: Sequence[str | Path], out_path: str | Path, block_rows: int = 65536
) -> int:
    """samples.h5: each identity's reference row, then its augmentations in label order; every reference
    identity must appear in exactly one part. Returns the number of rows.

    Only identities and labels are read whole; `w` and `embedding` are copied block by block of output
    rows, each block gathered from the files it draws on, so memory holds one block, not the run.
    """
    refs, ref_attrs = read_references(references)
    keys = [_identities_and_labels(p) for p in parts]
    owner: dict[int, str] = {}
    for path, (identity, _) in zip(parts, keys, strict=True):
        for i in np.unique(identity):
            if int(i) in owner:
                raise InputFileError(path, f"identity {int(i)} is also in {owner[int(i)]}")
            owner[int(i)] = str(path)
    missing = [int(i) for i in refs.identity if int(i) not in owner]
    if missing and parts:
        raise InputFileError(references, f"{len(missing)} identities have no variations, e.g. {missing[0]}")
    unknown = sorted(set(owner) - {int(i) for i in refs.identity})
    if unknown:
        raise InputFileError(owner[unknown[0]], f"identity {unknown[0]} is not in the references")
    identity = np.concatenate([refs.identity.astype(np.int64)] + [k[0].astype(np.int64) for k in keys])
    label = np.concatenate([refs.label.astype(object)] + [k[1].astype(object) for k in keys])
    source = np.concatenate([np.full(len(refs), -1)] + [np.full(len(k[0]), s) for s, k in enumerate(keys)])
    row = np.concatenate([np.arange(len(refs))] + [np.arange(len(k[0])) for k in keys])
    order = np.lexsort((_label_rank(label), identity))  # stable: identity ascending, then label order
    attrs = {k: ref_attrs[k] for k in ("embedder", "algorithm") if k in ref_attrs}
    attrs["variations_algorithm"] = read_attrs(parts[0], "facelatent.variations").get("algorithm", "") if parts else ""
    attrs["num_identities"] = len(refs.identity)
    with atomic_h5(out_path, "facelatent.samples", ref_attrs["generator"], ref_attrs["config"]) as fh:
        write_column(fh, "identity", identity[order])
        write_column(fh, "label", label[order])
        columns = {"w": refs.w, "embedding": refs.embedding}
        if refs.z is not None:  # z exists for references only; variations moved away from any mapped z
            columns["z"] = refs.z
        with contextlib.ExitStack() as stack:
            files = [stack.enter_context(open_checked(p, "facelatent.variations")) for p in parts]
            for name, from_refs in columns.items():
                _write_gathered(fh, name, from_refs, files, source[order], row[order], block_rows)
        for key, value in attrs.items():
            fh.attrs[key] = value if not isinstance(value, (dict, list)) else json.dumps(value)
    log.info("merged %d references and %d variations from %d part(s)", len(refs), len(identity) - len(refs), len(parts))
    return len(identity)


def label_order(label: str) -> tuple[int, int | str]:
    """Sort key: reference, augmentation_0, augmentation_1, ..., then any other label by name."""
    if label == REFERENCE_LABEL:
        return (0, 0)
    if label.startswith("augmentation_") and label.rsplit("_", 1)[1].isdigit():
        return (1, int(label.rsplit("_", 1)[1]))
    return (2, label)


def _identities_and_labels(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    cols = read_table(path, "facelatent.variations", ["identity", "label"])
    return cols["identity"], cols["label"]


def _label_rank(labels: np.ndarray) -> np.ndarray:
    """Integer sort keys in `label_order`: reference, augmentation_0, augmentation_1, ..., then others by name."""
    unique = sorted({str(x) for x in labels}, key=label_order)
    rank = {name: k for k, name in enumerate(unique)}
    return np.array([rank[str(x)] for x in labels], dtype=np.int64)


def _write_gathered(
    fh: h5py.File,
    name: str,
    from_refs: np.ndarray,
    files: Sequence[h5py.File],
    source: np.ndarray,
    row: np.ndarray,
    block_rows: int,
) -> None:
    """Column `name` in output order: rows of `from_refs` where source is -1, else row `row` of files[source]
    (whose `name` column is NaN-filled when the variations lack it, as z is)."""
    total = len(source)
    out = fh.create_dataset(
        name, shape=(total, from_refs.shape[1]), dtype=np.float32, **_column_layout((total, from_refs.shape[1]), 4)
    )
    for first in range(0, total, block_rows):
        src, rows = source[first : first + block_rows], row[first : first + block_rows]
        block = np.full((len(src), from_refs.shape[1]), np.nan, np.float32)
        block[src == -1] = from_refs[rows[src == -1]]
        for s in np.unique(src[src >= 0]):
            if name not in files[s]:
                continue
            at = np.flatnonzero(src == s)
            wanted = rows[at]
            ascending = np.argsort(wanted, kind="stable")  # h5py reads rows in increasing order
            block[at[ascending]] = files[s][name][wanted[ascending]]
        out[first : first + len(src)] = block


def read_samples(path: str | Path) -> tuple[FaceTable, dict]:
    """Every column of every face, in memory: for small runs and tests; jobs read what they need (below)."""
    return read_faces(path, "facelatent.samples"), _attrs(path, "facelatent.samples")


def read_sample_attrs(path: str | Path) -> dict:
    """A samples file's root attributes (generator, config, embedder decoded), no rows."""
    return _attrs(path, "facelatent.samples")


def read_sample_embeddings(path: str | Path) -> FaceTable:
    """identity, label and embedding of every face; `w` is left out (zero-width [N, 0]) and `z` is None.
    What the metrics need, without the W and z columns (2/3 of a 512-d run's bytes)."""
    cols = read_table(path, "facelatent.samples", ["identity", "label", "embedding"])
    n = len(cols["identity"])
    return FaceTable(cols["identity"], cols["label"], np.zeros((n, 0), np.float32), cols["embedding"])


def read_reference_embeddings(path: str | Path) -> tuple[np.ndarray, dict]:
    """The `reference` rows' embeddings of a samples file and its attributes, reading only those rows."""
    blocks = [block.embedding[block.label == REFERENCE_LABEL] for block in iter_samples(path, columns=("embedding",))]
    return np.concatenate(blocks).astype(np.float32), _attrs(path, "facelatent.samples")


def _decoded(values: np.ndarray) -> np.ndarray:
    """A string column as Python str objects (h5py hands back bytes)."""
    return np.array([v.decode() if isinstance(v, bytes) else v for v in np.atleast_1d(values)], dtype=object)


def iter_samples(
    path: str | Path, block_rows: int = 65536, columns: Sequence[str] = ("w", "embedding", "z")
) -> Iterator[FaceTable]:
    """The faces of a samples file in file order, `block_rows` rows at a time (h5py slices; memory: one block).
    identity and label always; of `columns`, a left-out w or embedding is zero-width and a left-out z None."""
    with open_checked(path, "facelatent.samples") as fh:
        n = len(fh["identity"])
        if n == 0:
            raise InputFileError(path, "the samples file has no rows")
        for lo in range(0, n, block_rows):
            rows = slice(lo, lo + block_rows)
            identity = fh["identity"][rows]
            empty = np.zeros((len(identity), 0), np.float32)
            yield FaceTable(
                identity,
                _decoded(fh["label"][rows]),
                fh["w"][rows] if "w" in columns else empty,
                fh["embedding"][rows] if "embedding" in columns else empty,
                fh["z"][rows] if "z" in columns and "z" in fh else None,
            )


def read_part_faces(references: str | Path, variations: str | Path | None) -> FaceTable:
    """identity, label and w of one variation part's faces in samples.h5's order (each identity's reference,
    then its augmentations in label order); `embedding` is left out (zero-width). The part's variation rows plus
    the reference rows of its identities; `variations` None (a run without variations): every reference."""
    with open_checked(references, "facelatent.references") as fh:
        ref_identity = fh["identity"][()].astype(np.int64)
        if variations is None:
            wanted, ref_w = np.arange(len(ref_identity)), fh["w"][()]
            var = {"identity": np.zeros(0, np.int64), "label": np.zeros(0, object), "w": ref_w[:0]}
        else:
            var = read_table(variations, "facelatent.variations", ["identity", "label", "w"])
            wanted = _reference_rows(references, ref_identity, np.unique(var["identity"]))
            ref_w = fh["w"][wanted]  # increasing rows, as h5py needs
    identity = np.concatenate([ref_identity[wanted], var["identity"].astype(np.int64)])
    label = np.concatenate([np.full(len(wanted), REFERENCE_LABEL, object), var["label"].astype(object)])
    order = np.lexsort((_label_rank(label), identity))  # the order merge_samples writes
    w = np.concatenate([ref_w, var["w"]]).astype(np.float32)
    return FaceTable(identity[order], label[order], w[order], np.zeros((len(order), 0), np.float32))


def _reference_rows(path: str | Path, ref_identity: np.ndarray, identities: np.ndarray) -> np.ndarray:
    """Increasing row numbers of `identities` in a references file's identity column; one-line error if missing."""
    at = {int(i): r for r, i in enumerate(ref_identity)}
    missing = [int(i) for i in identities if int(i) not in at]
    if missing:
        raise InputFileError(path, f"identity {missing[0]} of the variations is not in the references")
    return np.sort(np.array([at[int(i)] for i in identities], dtype=np.int64))


def merge_stats_files(references: str | Path, parts: Sequence[str | Path], out_path: str | Path) -> dict:
    """stats.h5 with the references' stats and the variation parts' stats merged (stats.merge_stats)."""
    ref_arrays, n_ref = read_group_stats(references, "facelatent.references", "stats")
    part_stats = [read_group_stats(p, "facelatent.variations", "stats") for p in parts]
    groups = {"references": (ref_arrays, n_ref)}
    if part_stats:
        groups["variations"] = (merge_stats(part_stats), sum(n for _, n in part_stats))
    attrs = read_attrs(references, "facelatent.references")
    with atomic_h5(out_path, "facelatent.stats", attrs["generator"], attrs["config"]) as fh:
        for name, (arrays, n) in groups.items():
            write_stats(fh.create_group(name), arrays, n)
        fh.attrs["num_parts"] = len(parts)
    return {name: arrays for name, (arrays, _) in groups.items()}


def read_stats_file(path: str | Path) -> dict[str, dict[str, np.ndarray]]:
    with open_checked(path, "facelatent.stats") as fh:
        return {name: read_stats(group)[0] for name, group in fh.items() if isinstance(group, h5py.Group)}
