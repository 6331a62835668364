"""Light and colour over the face: mean grey level and left-right asymmetry over MTCNN's box, and skin tone
(individual typology angle) over two cheek patches placed by the five points. One image at a time; a NaN box or
NaN points (no face) give NaN."""

from __future__ import annotations

import numpy as np

CHEEK_AT = 0.55  # cheek centre: this share of the way from each eye to its mouth corner (about nose height)
CHEEK_HALF = 0.15  # half side of each cheek patch, in eye distances (about 3 px at 64 px renders)


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


def cheek_pixels(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """[K, 3] uint8 RGB pixels of the two cheek patches of one face ([5, 2] points); empty when none fit."""
    h, w = image.shape[:2]
    if not np.all(np.isfinite(points)):
        return np.zeros((0, 3), np.uint8)
    half = CHEEK_HALF * np.linalg.norm(points[1] - points[0])
    parts = []
    for eye, corner in ((points[0], points[3]), (points[1], points[4])):
        cx, cy = eye + CHEEK_AT * (corner - eye)
        x1, x2 = int(np.clip(round(cx - half), 0, w)), int(np.clip(round(cx + half) + 1, 0, w))
        y1, y2 = int(np.clip(round(cy - half), 0, h)), int(np.clip(round(cy + half) + 1, 0, h))
        parts.append(image[y1:y2, x1:x2].reshape(-1, 3))
    return np.concatenate(parts)


def typology_angle(pixels: np.ndarray) -> float:
    """Individual typology angle (degrees) of the median CIELAB colour of [K, 3] uint8 RGB pixels:
    atan2(L* - 50, b*); about > 55 very light, 28..41 intermediate, < -30 dark (Chardon et al. 1991)."""
    if len(pixels) == 0:
        return float("nan")
    import cv2  # here, not at the top: the rule files import the predictor table and must not load OpenCV

    lab = cv2.cvtColor(pixels.reshape(1, -1, 3).astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab).reshape(-1, 3)
    lightness, _, yellow = np.median(lab, axis=0)
    return float(np.degrees(np.arctan2(lightness - 50.0, yellow)))
