"""Demo fixture datasets (CK+, Multi-PIE, FFHQ, a photo folder) with labels planted in the latent space.

`make_demo_data(out_root, generator_path, seed)` writes, under `out_root`:

```
ckplus/                  CK+ trees (cohn-kanade-images, Emotion, FACS, Landmarks)
multipie/                data/session*/multiview/..., meta/subject_list.txt
ffhq_remote/             the "server" side of FFHQ (images, thumbnails, in-the-wild, LICENSE.txt)
ffhq-dataset-v2.json     manifest with file:// URLs into ffhq_remote/
folder/                  nested photos plus broken inputs
ground_truth/            directions.npz, latents.h5, <dataset>_labels.tsv, folder_cases.tsv, README.md
```

Files:
- `ckplus.py`: CK+ fixture tree (DATASETS.md §1.10) with planted emotion and AU labels.
- `faces.py`: Rendering fixture images: DCGAN faces pasted into smooth synthetic backgrounds, and file writers.
- `ffhq.py`: FFHQ fixture: a "remote" tree of files plus an `ffhq-dataset-v2.json` manifest (DATASETS.md §3).
- `folder.py`: A plain photo folder: nested good images plus the bad inputs the align stage must survive.
- `job.py`: the `make_demo_data` rule's job: the fixtures, then the manifest that seals them.
- `manifest.py`: The demo data's manifest: every file with its size and sha256, written last as the completion marker.
- `multipie.py`: Multi-PIE fixture tree (DATASETS.md §2.9) with planted yaw, illumination and expression labels.
- `planted.py`: Planted labels: unit directions in the DCGAN latent space and the rules tying labels to z.
- `readme.py`: The ground-truth README written next to the fixtures: the planting rules, in words.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from facelatent.datasets.common import safe_id
from facelatent.demo_data.ckplus import write_ckplus
from facelatent.demo_data.ffhq import write_ffhq
from facelatent.demo_data.folder import write_folder
from facelatent.demo_data.multipie import write_multipie
from facelatent.demo_data.planted import DIRECTION_NAMES, PlantedSpace, make_directions, visible_basis
from facelatent.demo_data.readme import ground_truth_readme
from facelatent.generators import load_generator
from facelatent.store import atomic_path, atomic_write_text

log = logging.getLogger(__name__)

OWNED = ("ckplus", "multipie", "ffhq_remote", "ffhq-dataset-v2.json", "folder", "ground_truth")


@dataclass(frozen=True)
class DemoSizes:
    """How much to generate (the defaults: ~380 images + 30 FFHQ files, ~36 MB, ~20 s on 2 cores)."""

    ckplus_subjects: int = 10  # >= 2 (S005 and S010 carry the quirks); 0 = no CK+
    ckplus_frames: int = 6  # >= 2 per sequence (S010/002 always has 11)
    multipie_subjects: int = 8  # 0 = no Multi-PIE
    ffhq_images: int = 10  # 3..16 (0, 1000 and 60000 always); 0 = no FFHQ
    folder: bool = True

    @classmethod
    def coerce(cls, sizes: "DemoSizes | dict | None") -> "DemoSizes":
        if sizes is None or isinstance(sizes, DemoSizes):
            return sizes or cls()
        unknown = set(sizes) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown demo size key(s) {sorted(unknown)}")
        return cls(**sizes)


def _write_labels_tsv(path: Path, records: list[dict]) -> None:
    atomic_write_text(path, pd.DataFrame(records).to_csv(sep="\t", index=False, lineterminator="\n"))


def _write_latents(path: Path, groups: dict[str, tuple[list[str], np.ndarray, list[str], np.ndarray]]) -> None:
    """latents.h5: per dataset `ids` [N] str, `z` [N, z_dim] float32, `scores` [N, S] with attr `names`."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w", track_order=True) as f:
        f.attrs["format"] = "facelatent.demo_ground_truth"
        for name, (ids, z, score_names, scores) in groups.items():
            g = f.create_group(name)
            g.create_dataset("ids", data=np.array(ids, dtype=object), dtype=h5py.string_dtype(), track_times=False)
            g.create_dataset("z", data=z.astype(np.float32), track_times=False)
            g.create_dataset("scores", data=scores.astype(np.float32), track_times=False)
            g["scores"].attrs["names"] = score_names


def _write_directions(path: Path, directions: dict[str, np.ndarray]) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **directions)


def _clear(out: Path) -> None:
    """Remove what an earlier run wrote here, so no stale file survives a change of sizes."""
    for name in OWNED:
        target = out / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


def _score_block(records: list[dict]) -> tuple[list[str], np.ndarray]:
    names = [k[2:] for k in records[0] if k.startswith("s_")]
    return names, np.array([[r[f"s_{n}"] for n in names] for r in records], dtype=np.float64)


def _ckplus(
    out: Path, gt: Path, G, seed: int, space: PlantedSpace, sizes: DemoSizes, mtcnn: str | Path | None
) -> tuple:
    records, z = write_ckplus(
        out / "ckplus", G, np.random.default_rng([seed, 2]), space, sizes.ckplus_subjects, sizes.ckplus_frames, mtcnn
    )
    for r in records:
        r["path"] = f"cohn-kanade-images/{r['subject']}/{r['sequence']}/{r['id']}.png"
    _write_labels_tsv(gt / "ckplus_labels.tsv", records)
    return ([r["id"] for r in records], z, *_score_block(records))


def _multipie(
    out: Path, gt: Path, G, seed: int, space: PlantedSpace, sizes: DemoSizes, mtcnn: str | Path | None
) -> tuple:
    records, z = write_multipie(out / "multipie", G, np.random.default_rng([seed, 3]), space, sizes.multipie_subjects)
    _write_labels_tsv(gt / "multipie_labels.tsv", records)
    return ([r["id"] for r in records], z, *_score_block(records))


def _ffhq(out: Path, gt: Path, G, seed: int, space: PlantedSpace, sizes: DemoSizes, mtcnn: str | Path | None) -> tuple:
    records, z = write_ffhq(
        out / "ffhq_remote",
        out / "ffhq-dataset-v2.json",
        G,
        np.random.default_rng([seed, 4]),
        space,
        sizes.ffhq_images,
        mtcnn,
    )
    _write_labels_tsv(gt / "ffhq_labels.tsv", records)
    return ([r["id"] for r in records], z, *_score_block(records))


def _folder(
    out: Path, gt: Path, G, seed: int, space: PlantedSpace, sizes: DemoSizes, mtcnn: str | Path | None
) -> tuple:
    """Faces in the folder get ids `<image id>:<k>` (k-th face of that file)."""
    records, z = write_folder(out / "folder", G, np.random.default_rng([seed, 5]), space)
    ids = [f"{safe_id(r['path'])}:{k}" for r in records for k in range(r["n_faces"])]
    for r in records:
        r["id"] = safe_id(r["path"])
    _write_labels_tsv(gt / "folder_cases.tsv", records)
    return (ids, z, list(DIRECTION_NAMES), space.scores(z, list(DIRECTION_NAMES)))


PARTS = {"ckplus": _ckplus, "multipie": _multipie, "ffhq": _ffhq, "folder": _folder}


def make_demo_data(
    out_root: str | Path,
    generator_path: str | Path,
    seed: int = 0,
    sizes: DemoSizes | dict | None = None,
    mtcnn_weights: str | Path | None = None,
) -> dict:
    """Write all fixture datasets and their ground truth under `out_root`; return paths and counts.

    `mtcnn_weights` (which places the landmarks of the CK+ and FFHQ fixtures): the rule passes its
    input; library and CLI callers may leave it out for the model fetched under `resources/models/`.

    Deterministic for a seed (each dataset draws from its own `default_rng([seed, k])`). Earlier
    output of this function under `out_root` is removed first.
    """
    t0 = time.perf_counter()
    sizes = DemoSizes.coerce(sizes)
    out = Path(out_root)
    _clear(out)
    gt = out / "ground_truth"
    gt.mkdir(parents=True, exist_ok=True)
    G = load_generator(generator_path)
    basis = visible_basis(G, len(DIRECTION_NAMES), seed=seed)
    space = PlantedSpace(make_directions(np.random.default_rng([seed, 1]), G.z_dim, basis))
    wanted = dict(
        ckplus=sizes.ckplus_subjects > 0,
        multipie=sizes.multipie_subjects > 0,
        ffhq=sizes.ffhq_images > 0,
        folder=sizes.folder,
    )
    parts = [(name, fn) for name, fn in PARTS.items() if wanted[name]]
    groups = {}
    for name, part in parts:
        groups[name] = part(out, gt, G, seed, space, sizes, mtcnn_weights)
        log.info("demo data: %s, %d images/faces, %.1f s", name, len(groups[name][0]), time.perf_counter() - t0)
    _write_directions(gt / "directions.npz", space.directions)
    _write_latents(gt / "latents.h5", groups)
    counts = {name: len(group[0]) for name, group in groups.items()}
    atomic_write_text(gt / "README.md", ground_truth_readme(seed, asdict(sizes), counts))
    return dict(
        root=out,
        ckplus=out / "ckplus" if wanted["ckplus"] else None,
        multipie=out / "multipie" if wanted["multipie"] else None,
        ffhq_remote=out / "ffhq_remote" if wanted["ffhq"] else None,
        ffhq_manifest=out / "ffhq-dataset-v2.json" if wanted["ffhq"] else None,
        folder=out / "folder" if wanted["folder"] else None,
        ground_truth=gt,
        directions=gt / "directions.npz",
        latents=gt / "latents.h5",
        counts=counts,
        seconds=round(time.perf_counter() - t0, 2),
    )


__all__ = ["DemoSizes", "make_demo_data"]
