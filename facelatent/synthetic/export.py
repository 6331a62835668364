"""Export to the Idiap `synthetics` layouts (ALGORITHMS.md 1.4, 2.5) so their tools can read our runs.

SampleCollection `samples.h5`: root attributes magic "synthetics_collection", major 2, minor 0; one group
per identity (5-digit zero padded), one group per label inside (`/` and space replaced by `_`), each with
attributes `network_type` and `embedding_type` and float32 datasets with a batch dimension of 1:
`w_latent` (1, w_dim), `embedding` (1, D) and, for faces that have one, `z_latent` (1, z_dim).
Stats: flat float32 datasets at the root with the original names and `iterations` rows (our extra
final-state row is left out).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import h5py
import numpy as np

from facelatent.errors import InputFileError
from facelatent.store import atomic_path
from facelatent.synthetic.files import FaceTable, label_order

COLLECTION_MAGIC = "synthetics_collection"
SAMPLE_MAGIC = "synthetics"
MAJOR, MINOR = 2, 0


def sanitize_label(label: str) -> str:
    return str(label).replace("/", "_").replace(" ", "_")


def identity_key(identity: int) -> str:
    return f"{int(identity):05d}"


def _write_sample(
    group: h5py.Group,
    w: np.ndarray,
    embedding: np.ndarray,
    z: np.ndarray | None,
    network_type: str,
    embedding_type: str,
) -> None:
    group.attrs["network_type"] = network_type
    group.attrs["embedding_type"] = embedding_type
    group.create_dataset("w_latent", data=np.asarray(w, np.float32)[None])
    group.create_dataset("embedding", data=np.asarray(embedding, np.float32)[None])
    if z is not None and np.all(np.isfinite(z)):
        group.create_dataset("z_latent", data=np.asarray(z, np.float32)[None])


def export_sample_collection(
    blocks: Iterable[FaceTable], out_path: str | Path, network_type: str, embedding_type: str
) -> Path:
    """Write every face of `blocks` (row blocks of a samples file, `files.iter_samples`, or one whole FaceTable
    in a list) as a SampleCollection, atomically; memory holds one block."""
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp, h5py.File(tmp, "w") as fh:
        fh.attrs["magic"] = COLLECTION_MAGIC
        fh.attrs["major"] = MAJOR
        fh.attrs["minor"] = MINOR
        for table in blocks:
            for r in range(len(table)):
                identity = fh.require_group(identity_key(table.identity[r]))
                label = sanitize_label(table.label[r])
                if label in identity:
                    raise ValueError(f"identity {int(table.identity[r])} has label '{label}' twice")
                z = table.z[r] if table.z is not None else None
                _write_sample(
                    identity.create_group(label), table.w[r], table.embedding[r], z, network_type, embedding_type
                )
    return out_path


def read_sample_collection(path: str | Path) -> FaceTable:
    """Read a SampleCollection back into rows (checks the magic and version like the original's loader)."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(path, "file does not exist")
    rows: dict[str, list] = {"identity": [], "label": [], "w": [], "embedding": [], "z": []}
    with h5py.File(path, "r") as fh:
        magic = fh.attrs.get("magic")
        magic = magic.decode() if isinstance(magic, bytes) else magic
        version = (int(fh.attrs.get("major", -1)), int(fh.attrs.get("minor", -1)))
        if magic != COLLECTION_MAGIC or version != (MAJOR, MINOR):
            raise InputFileError(path, f"not a synthetics collection {MAJOR}.{MINOR} (magic {magic!r})")
        for identity in sorted(fh):
            for label in sorted(fh[identity], key=label_order):
                group = fh[identity][label]
                if "w_latent" in group and "network_type" not in group.attrs:
                    raise InputFileError(path, f"{identity}/{label}: latent without network_type")
                if "embedding" in group and "embedding_type" not in group.attrs:
                    raise InputFileError(path, f"{identity}/{label}: embedding without embedding_type")
                rows["identity"].append(int(identity))
                rows["label"].append(label)
                rows["w"].append(group["w_latent"][0])
                rows["embedding"].append(group["embedding"][0])
                rows["z"].append(group["z_latent"][0] if "z_latent" in group else None)
    z_dim = next((len(z) for z in rows["z"] if z is not None), 0)
    z = np.stack([r if r is not None else np.full(z_dim, np.nan, np.float32) for r in rows["z"]]) if z_dim else None
    return FaceTable(
        np.asarray(rows["identity"], np.int64),
        np.asarray(rows["label"], dtype=object),
        np.stack(rows["w"]),
        np.stack(rows["embedding"]),
        z,
    )


def export_stats(arrays: Mapping[str, np.ndarray], out_path: str | Path, iterations: int | None = None) -> Path:
    """Flat original-layout stats file with the first `iterations` rows (None: all rows). Pass the run's
    iteration count for Langevin / Dispersion stats to drop our extra final-state row."""
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp, h5py.File(tmp, "w") as fh:
        for name, values in arrays.items():
            values = np.asarray(values, np.float32)
            fh.create_dataset(name, data=values if iterations is None else values[:iterations])
    return out_path
