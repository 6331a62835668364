"""Intra-class variation of a synthetic set, per face and per identity: pose, expression and light from MTCNN's
five points and the pixels of the saved ArcFace crops, and the FR angle of each variation to its reference.

Estimators (points in the eye-line frame: u along left -> right eye, v perpendicular, pointing down the face;
d = the eye distance; all ratios, so they do not depend on crop size or in-plane rotation):
- yaw = (nose - eye midpoint) . u / d: 0 when the nose is between the eyes, > 0 when it sits toward the image's
  right (the head turned to its left); a head turned by angle a moves the nose tip by about h sin(a) for a nose
  depth h, and the eye distance shrinks by cos(a), so the ratio grows monotonically with |a| over the usable range;
- pitch = a / (a + b) - 0.495, with a = (nose - eye midpoint) . v and b = (mouth midpoint - nose) . v:
  the nose's place between eye line and mouth line, minus the ArcFace template's value (0 there); > 0 when the
  nose drops toward the mouth (head tilted down), < 0 when it rises (head tilted up);
- roll = the eye line's angle in degrees (image y down, so > 0 is clockwise);
- mouth = |mouth_right - mouth_left| / d: the corner-to-corner width (a smile or open mouth widens it);
- brightness = mean grey level in [0, 1] over MTCNN's face box; asymmetry = (right half - left half) / mean
  over the same box: side light makes it non-zero.
Per identity: the standard deviation of each over its faces and the mean angle of its variations to the reference.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from facelatent.align.crops import arcface_template
from facelatent.images import read_rgb
from facelatent.synthetic.face_gate import FacePoints, best_detections, landmark_error

log = logging.getLogger(__name__)

MEASURES = ("yaw", "pitch", "roll", "mouth", "brightness", "asymmetry")
SPREADS = ("yaw", "pitch", "mouth", "brightness", "asymmetry")


def eye_frame(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """[N, 5, 2] -> eye midpoint [N, 2], unit u (eye line) and v (down the face) [N, 2], eye distance [N]."""
    eye = points[:, 1] - points[:, 0]
    d = np.linalg.norm(eye, axis=1)
    u = eye / d[:, None]
    v = np.stack([-u[:, 1], u[:, 0]], axis=1)
    return (points[:, 0] + points[:, 1]) / 2, u, v, d


def nose_ratio(points: np.ndarray) -> np.ndarray:
    """a / (a + b): the nose's place between the eye line (0) and the mouth line (1), along v."""
    mid, _, v, _ = eye_frame(points)
    a = np.einsum("ij,ij->i", points[:, 2] - mid, v)
    return a / np.einsum("ij,ij->i", (points[:, 3] + points[:, 4]) / 2 - mid, v)


TEMPLATE_PITCH = float(nose_ratio(arcface_template(112)[None])[0])  # 0.495


def pose_from_points(points: np.ndarray) -> dict[str, np.ndarray]:
    """yaw, pitch (ratios) and roll (degrees) per face from [N, 5, 2] MTCNN points (see the module doc)."""
    mid, u, _, d = eye_frame(points)
    return {
        "yaw": np.einsum("ij,ij->i", points[:, 2] - mid, u) / d,
        "pitch": nose_ratio(points) - TEMPLATE_PITCH,
        "roll": np.degrees(np.arctan2(u[:, 1], u[:, 0])),
    }


def mouth_width(points: np.ndarray) -> np.ndarray:
    """Corner-to-corner mouth width in eye distances."""
    return np.linalg.norm(points[:, 4] - points[:, 3], axis=1) / eye_frame(points)[3]


def illumination(image: np.ndarray, box: np.ndarray) -> tuple[float, float]:
    """(mean grey in [0, 1], right-minus-left half over the mean) over the face box clipped to the image."""
    h, w = image.shape[:2]
    if not np.all(np.isfinite(box)):
        return float("nan"), float("nan")
    x1, y1 = int(np.clip(np.floor(box[0]), 0, w - 1)), int(np.clip(np.floor(box[1]), 0, h - 1))
    x2, y2 = int(np.clip(np.ceil(box[2]), x1 + 2, w)), int(np.clip(np.ceil(box[3]), y1 + 1, h))
    grey = image[y1:y2, x1:x2].astype(np.float64).mean(axis=2) / 255.0
    half = grey.shape[1] // 2
    mean = float(grey.mean())
    return mean, float((grey[:, -half:].mean() - grey[:, :half].mean()) / max(mean, 1e-6))


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
