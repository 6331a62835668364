"""The align_shard and align_report jobs: the rows of an index shard -> aligned uint8 crops at the generator's
resolution, and a dataset's rejects table and preview.

Landmarks come from the dataset (CK+ 68-point files, the FFHQ manifest's 68 points of an in-the-wild photo), from
a detector (Multi-PIE and folders: MTCNN, or dlib's 68-point predictor with `align.landmarks: dlib68`), or are not
needed (FFHQ images and thumbnails are already aligned and are only resized); `landmark_source` decides which.
Images that cannot be used land in a `rejects` group with a reason; none of them stops the shard.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from facelatent.align import align_face_5, arcface_template, five_points_from_68, similarity_transform_5pt
from facelatent.align.sources import DEFAULT_DETECTOR, DETECTORS, LANDMARK_SOURCES, check_detector, landmark_source
from facelatent.datasets import read_index
from facelatent.datasets.ckplus import read_landmarks_file
from facelatent.devices import pick_device
from facelatent.errors import ConfigError, FaceLatentError, InputFileError
from facelatent.images import read_rgb
from facelatent.store import atomic_h5, atomic_write_text, read_table, write_column

log = logging.getLogger(__name__)


@dataclass
class AlignConfig:
    """The `align:` config section (see config/README.md)."""

    method: str = "ffhq"  # ffhq: NVlabs quad procedure | template: similarity warp onto a 5-point template
    template: str = "arcface"  # for method=template: arcface (DigiFace/ArcFace framing)
    output_size: int = 1024
    enable_padding: bool = True
    max_reject_share: float = 0.5
    landmarks: str = DEFAULT_DETECTOR  # the detector of the kinds that detect faces: mtcnn | dlib68
    mtcnn_min_face: int = 20

    def __post_init__(self) -> None:
        check_detector(self.landmarks)
        if self.template not in TEMPLATES:
            raise ConfigError(
                f"config key 'align.template': unknown template '{self.template}' "
                f"(known: {', '.join(sorted(TEMPLATES))})"
            )


@dataclass
class Aligned:
    image: np.ndarray
    points5: np.ndarray
    note: str = ""


def largest_face(detections: list[dict]) -> tuple[dict, str]:
    """Keep the largest detection; note how many there were."""
    best = max(detections, key=lambda d: d["box"][2] * d["box"][3])
    note = f"kept the largest of {len(detections)} faces" if len(detections) > 1 else ""
    return best, note


def mtcnn_points(detection: dict) -> np.ndarray:
    k = detection["keypoints"]
    return np.array([k["left_eye"], k["right_eye"], k["nose"], k["mouth_left"], k["mouth_right"]], np.float64)


def arcface_points(size: int) -> np.ndarray:
    """The ArcFace 112 px 5-point template scaled to `size` (the DigiFace/ArcFace framing)."""
    return arcface_template(112) * (size / 112.0)


# align.template: the 5-point targets of method=template, as a function of the output size
TEMPLATES: dict[str, Callable[[int], np.ndarray]] = {"arcface": arcface_points}


def warp_to_template(
    image: np.ndarray, points5: np.ndarray, size: int, template: str = AlignConfig.template
) -> np.ndarray:
    """Similarity warp of the 5 points onto the named template (`align.template`) scaled to `size`."""
    M = similarity_transform_5pt(points5, TEMPLATES[template](size))
    return cv2.warpAffine(
        image,
        M,
        (size, size),
        flags=cv2.INTER_AREA if size < 112 else cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )


def check_points5(points5: np.ndarray, min_spread: float = 1.0) -> np.ndarray:
    """The five points as float64 [5,2]; FaceLatentError (a reject reason) when they cannot place a face:
    NaN/inf, or eyes or eyes-to-mouth less than `min_spread` pixels apart (all-zero files, collapsed fits)."""
    pts = np.asarray(points5, dtype=np.float64)
    if pts.shape != (5, 2):
        raise FaceLatentError(f"bad landmarks: expected 5 [x, y] points, got shape {list(pts.shape)}")
    if not np.isfinite(pts).all():
        raise FaceLatentError("bad landmarks: NaN or infinite coordinates")
    eyes = np.linalg.norm(pts[1] - pts[0])
    eye_to_mouth = np.linalg.norm((pts[3] + pts[4]) / 2 - (pts[0] + pts[1]) / 2)
    if min(eyes, eye_to_mouth) < min_spread:
        raise FaceLatentError(
            f"bad landmarks: degenerate (eyes {eyes:.2g} px apart, eyes to mouth {eye_to_mouth:.2g} px)"
        )
    return pts


def align_from_points(image: np.ndarray, points5: np.ndarray, cfg: AlignConfig) -> np.ndarray:
    """Checked points -> aligned crop; bad points and failed geometry are FaceLatentError (a reject)."""
    points5 = check_points5(points5)
    try:
        return _warp(image, points5, cfg)
    except (ValueError, cv2.error) as exc:
        raise FaceLatentError(f"alignment failed ({str(exc).splitlines()[0]})") from exc


def _warp(image: np.ndarray, points5: np.ndarray, cfg: AlignConfig) -> np.ndarray:
    if cfg.method == "template":
        # supersample then area-downsample, so small outputs are not aliased
        big = warp_to_template(image, points5, cfg.output_size * 4, cfg.template)
        return cv2.resize(big, (cfg.output_size, cfg.output_size), interpolation=cv2.INTER_AREA)
    return align_face_5(image, points5, cfg.output_size, enable_padding=cfg.enable_padding)


def manifest_landmarks(row: pd.Series) -> np.ndarray:
    """The 68 [x, y] points of a row's `landmarks` column (compact JSON from the FFHQ manifest); a FaceLatentError
    (a reject reason) when they are absent or not 68 pairs."""
    text = str(row.get("landmarks", "") or "")
    try:
        points = np.asarray(json.loads(text) if text else [], dtype=np.float64)
    except (ValueError, TypeError) as exc:
        raise FaceLatentError(f"bad landmarks: not a JSON list of [x, y] pairs ({exc})") from exc
    if points.shape != (68, 2):
        raise FaceLatentError(
            f"bad landmarks: expected 68 [x, y] points in the manifest, got shape {list(points.shape)}"
        )
    return points


def align_one(row: pd.Series, root: Path, source: str, cfg: AlignConfig, detect: Callable | None) -> Aligned:
    """Read, locate and align one image (`source`: see `landmark_source`); raises FaceLatentError with a reason
    when it cannot."""
    image = read_rgb(root / row["path"])
    if source == "none":
        resized = cv2.resize(image, (cfg.output_size, cfg.output_size), interpolation=cv2.INTER_AREA)
        return Aligned(resized, np.full((5, 2), np.nan))
    if source == "landmarks68":
        lm_path = root / str(row.get("landmarks", ""))
        if not str(row.get("landmarks", "")) or not lm_path.is_file():
            raise InputFileError(lm_path, "landmark file is missing")
        points = five_points_from_68(read_landmarks_file(lm_path))
        return Aligned(align_from_points(image, points, cfg), points)
    if source == "manifest68":
        # the eye means and mouth corners of the 68 points are all the FFHQ procedure uses
        points = five_points_from_68(manifest_landmarks(row))
        return Aligned(align_from_points(image, points, cfg), points)
    detections = detect(image)
    if not detections:
        raise FaceLatentError("no face found")
    best, note = largest_face(detections)
    points = mtcnn_points(best)
    return Aligned(align_from_points(image, points, cfg), points, note)


def make_detector(
    source: str,
    cfg: AlignConfig,
    device: str = "cpu",
    mtcnn_weights: str | Path | None = None,
    dlib68_predictor: str | Path | None = None,
) -> Callable | None:
    """The face detector of `source` (mtcnn, dlib68) from the weights file the rule declares (no fallback: a job
    reads only its inputs); None for sources that detect nothing."""
    if source not in DETECTORS:
        return None
    weights = {"mtcnn": mtcnn_weights, "dlib68": dlib68_predictor}[source]
    if weights is None:
        raise ConfigError(
            f"align.landmarks '{source}' detects faces: align_shard needs its weights (the rule's input '{source}')"
        )
    if source == "dlib68":
        from facelatent.detect.dlib68 import Dlib68

        return Dlib68(predictor=weights).detect_faces
    from facelatent.detect.mtcnn import MTCNN

    return MTCNN(device=device, weights=weights, min_face_size=cfg.mtcnn_min_face).detect_faces


def align_rows(
    index: pd.DataFrame,
    root: str | Path,
    kind: str,
    out_path: str | Path,
    cfg: AlignConfig,
    generator_info: dict | None = None,
    device: str = "cpu",
    progress: bool = True,
    mtcnn_weights: str | Path | None = None,
    dlib68_predictor: str | Path | None = None,
    source: str | None = None,
) -> dict:
    """Align every row; write ids, images [N,R,R,3], points5 [N,5,2], notes, and a `rejects` group.

    `source`: where the landmarks come from (`landmark_source`; None: the default for `kind` and `cfg.landmarks`).
    `mtcnn_weights` / `dlib68_predictor`: the detector's weights, required when `source` is mtcnn / dlib68.
    """
    root = Path(root)
    source = landmark_source(kind, None, cfg.landmarks) if source is None else source
    if source not in LANDMARK_SOURCES:
        raise ValueError(f"unknown landmark source {source!r}; known: {', '.join(LANDMARK_SOURCES)}")
    detect = make_detector(source, cfg, device, mtcnn_weights, dlib68_predictor)
    ids, images, points, notes = [], [], [], []
    rejects: list[tuple[str, str, str]] = []
    for _, row in tqdm(index.iterrows(), total=len(index), desc="align", disable=not progress, mininterval=2.0):
        try:
            result = align_one(row, root, source, cfg, detect)
        except FaceLatentError as exc:
            reason = exc.reason if isinstance(exc, InputFileError) else str(exc)
            rejects.append((str(row["id"]), str(row["path"]), reason))
            log.warning("reject %s: %s", row["path"], reason)
            continue
        ids.append(str(row["id"]))
        images.append(result.image)
        points.append(result.points5)
        notes.append(result.note)
        if result.note:
            log.info("%s: %s", row["path"], result.note)
    R = cfg.output_size
    with atomic_h5(
        out_path, "facelatent.aligned", generator_info, {"kind": kind, "landmark_source": source, **cfg.__dict__}
    ) as fh:
        write_column(fh, "ids", np.array(ids, dtype=object))
        write_column(fh, "images", np.stack(images) if images else np.zeros((0, R, R, 3), np.uint8))
        write_column(fh, "points5", np.stack(points).astype(np.float32) if points else np.zeros((0, 5, 2), np.float32))
        write_column(fh, "notes", np.array(notes, dtype=object))
        group = fh.create_group("rejects")
        for j, name in enumerate(("ids", "paths", "reasons")):
            write_column(group, name, np.array([r[j] for r in rejects], dtype=object))
    log.info("aligned %d images, rejected %d", len(ids), len(rejects))
    return {"aligned": len(ids), "rejected": len(rejects)}


def align_shard(
    *,
    rows: str | Path,
    shard: str,
    kind: str,
    landmark_source: str,
    root: str | Path,
    align: Mapping | AlignConfig,
    output: str | Path,
    mtcnn: str | Path | None = None,
    dlib68: str | Path | None = None,
    device: str = "auto",
    progress: bool = True,
) -> dict:
    """Rule align_shard: one shard's rows file (the index checkpoint's `rows/<shard>.tsv`; never the whole index)
    -> aligned crops (`align`: the `align:` config section; `landmark_source`: see `landmark_source`).

    `mtcnn` / `dlib68`: the detector's weights file, required when the landmarks come from that detector.
    """
    table = read_index(rows)
    if "shard" in table.columns and not (table["shard"] == shard).all():
        raise InputFileError(rows, f"holds rows of other shards than {shard}: not this shard's rows file")
    if landmark_source == "manifest68" and "landmarks" not in table.columns:
        raise InputFileError(rows, "has no 'landmarks' column, which in-the-wild alignment needs: rerun index_dataset")
    cfg = align if isinstance(align, AlignConfig) else AlignConfig(**align)
    return align_rows(
        table,
        root,
        kind,
        output,
        cfg,
        device=str(pick_device(device)),
        progress=progress,
        mtcnn_weights=mtcnn,
        dlib68_predictor=dlib68,
        source=landmark_source,
    )


def read_rejects(path: str | Path) -> pd.DataFrame:
    """The rejects table of an aligned shard."""
    import h5py

    read_table(path, "facelatent.aligned", columns=["ids"])  # format check with a clear error
    with h5py.File(path, "r") as fh:
        cols = {
            name: [v.decode() if isinstance(v, bytes) else v for v in fh["rejects"][name][()]]
            for name in ("ids", "paths", "reasons")
        }
    return pd.DataFrame({"id": cols["ids"], "path": cols["paths"], "reason": cols["reasons"]})


def summarize_rejects(shards: list[str | Path], max_share: float) -> tuple[pd.DataFrame, int]:
    """All rejects of a dataset and its aligned count; fails with a summary above `max_share`."""
    frames, aligned = [], 0
    for path in shards:
        frames.append(read_rejects(path))
        aligned += len(read_table(path, "facelatent.aligned", columns=["ids"])["ids"])
    rejects = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["id", "path", "reason"])
    total = aligned + len(rejects)
    share = len(rejects) / total if total else 1.0
    if share > max_share:
        reasons = rejects["reason"].str.replace(r"\(.*\)", "", regex=True).str.strip().value_counts()
        top = "; ".join(f"{n} x {r}" for r, n in reasons.head(4).items())
        raise FaceLatentError(
            f"{len(rejects)} of {total} images rejected ({share:.0%} > align.max_reject_share {max_share:.0%}): {top}"
        )
    return rejects, aligned


def align_report(
    *, shards: Sequence[str | Path], max_reject_share: float, rejects: str | Path, preview: str | Path
) -> int:
    """Rule align_report: a dataset's rejects table (fails above `max_reject_share`) and a preview grid; returns
    the aligned count."""
    from facelatent.latents import aligned_preview

    table, aligned = summarize_rejects(list(shards), max_reject_share)
    atomic_write_text(rejects, table.to_csv(sep="\t", index=False))
    aligned_preview(list(shards), preview)
    return aligned
