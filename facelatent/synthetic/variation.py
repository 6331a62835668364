"""Intra-class variation of a synthetic set, per face and per identity: pose, expression and light from MTCNN's
five points and the pixels of the saved ArcFace crops, and the FR angle of each variation to its reference.

The estimators are facelatent.attributes' (five_points.py: yaw, pitch, roll, mouth width; photometric.py:
brightness and asymmetry over MTCNN's face box); this module names their columns as the variation report has
them (`mouth` = mouth_width, `asymmetry` = illumination_asymmetry).
Per identity: the standard deviation of each over its faces and the mean angle of its variations to the reference.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from facelatent.attributes.detections import FacePoints, best_detections
from facelatent.attributes.five_points import mouth_width, pose_from_points
from facelatent.attributes.photometric import illumination
from facelatent.images import read_rgb
from facelatent.synthetic.face_gate import landmark_error

log = logging.getLogger(__name__)

MEASURES = ("yaw", "pitch", "roll", "mouth", "brightness", "asymmetry")
SPREADS = ("yaw", "pitch", "mouth", "brightness", "asymmetry")


def measure_images(detector, images: Sequence[np.ndarray]) -> pd.DataFrame:
    """One row per ArcFace-framed crop: detection confidence, landmark error and the MEASURES (NaN: no face)."""
    found: FacePoints = best_detections(detector, list(images))
    lights = np.array([illumination(img, box) for img, box in zip(images, found.box, strict=True)]).reshape(-1, 2)
    size = images[0].shape[0] if len(images) else 112
    return pd.DataFrame(
        {
            "confidence": found.confidence,
            "landmark_error": landmark_error(found.points, size),
            **pose_from_points(found.points),
            "mouth": mouth_width(found.points),
            "brightness": lights[:, 0],
            "asymmetry": lights[:, 1],
        }
    )


def angles_to_reference(identity: np.ndarray, embedding: np.ndarray, references: dict[int, np.ndarray]) -> np.ndarray:
    """Angle (radians) of each face's embedding to its identity's reference embedding."""
    ref = np.stack([references[int(i)] for i in identity]).astype(np.float64)
    e = embedding.astype(np.float64)
    cos = np.einsum("ij,ij->i", e, ref) / (np.linalg.norm(e, axis=1) * np.linalg.norm(ref, axis=1))
    return np.arccos(np.clip(cos, -1.0, 1.0))


def measure_crops(detector, manifest: pd.DataFrame, root: str | Path, chunk: int = 256) -> pd.DataFrame:
    """measure_images over the manifest's PNGs (paths relative to `root`), `chunk` images in memory at a time."""
    parts = []
    for lo in range(0, len(manifest), chunk):
        rows = manifest.iloc[lo : lo + chunk]
        parts.append(measure_images(detector, [read_rgb(Path(root) / p) for p in rows["path"]]))
        log.info("measured %d of %d crops", min(lo + chunk, len(manifest)), len(manifest))
    return pd.concat(parts, ignore_index=True) if parts else measure_images(detector, [])


def identity_summary(faces: pd.DataFrame) -> pd.DataFrame:
    """Per identity: faces, share detected, std of each SPREADS measure, mean and max angle of the variations to
    the reference (reference rows excluded)."""
    grouped = faces.groupby("identity", sort=True)
    out = pd.DataFrame(
        {"faces": grouped.size(), "detected": grouped["confidence"].apply(lambda c: float((c > 0).mean()))}
    )
    for name in SPREADS:
        out[f"{name}_std"] = grouped[name].std(ddof=0)
    variations = faces[faces["label"] != "reference"].groupby("identity")["angle_to_reference"]
    out["angle_mean"] = variations.mean()
    out["angle_max"] = variations.max()
    return out.reset_index()
