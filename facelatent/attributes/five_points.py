"""Pose, mouth width, face scale and position from MTCNN's five points (left eye, right eye, nose, mouth left,
mouth right; image-left first), as plain numpy on [N, 5, 2] arrays; NaN points give NaN scores.

Points are read in the eye-line frame: u along left -> right eye, v perpendicular, pointing down the face;
d = the eye distance. Ratios of distances in that frame do not depend on crop size or in-plane rotation.
- yaw = (nose - eye midpoint) . u / d: 0 when the nose is between the eyes, > 0 when it sits toward the image's
  right (the head turned to its left); a head turned by angle a moves the nose tip by about h sin(a) for a nose
  depth h, and the eye distance shrinks by cos(a), so the ratio grows monotonically with |a| over the usable range;
- pitch = a / (a + b) - TEMPLATE_PITCH, with a = (nose - eye midpoint) . v and b = (mouth midpoint - nose) . v:
  the nose's place between eye line and mouth line, minus the ArcFace template's value (0 there); > 0 when the
  nose drops toward the mouth (head tilted down), < 0 when it rises (head tilted up);
- roll = the eye line's angle in degrees (image y down, so > 0 is clockwise);
- mouth width = |mouth_right - mouth_left| / d (a smile or open mouth widens it);
- face scale = mean of d and the eye-to-mouth midpoint distance, over the image width;
- face position = the mean of the five points over the image width (x) and height (y).
"""

from __future__ import annotations

import numpy as np

# nose_ratio of insightface's ArcFace 112 px template (facelatent.align.crops.arcface_template; a test checks it),
# written out so that this module loads without torch
TEMPLATE_PITCH = 0.49495586754519577


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


def face_scale(points: np.ndarray, width: int) -> np.ndarray:
    """Mean of the eye distance and the eye-to-mouth midpoint distance, in image widths."""
    mid, _, _, d = eye_frame(points)
    eye_mouth = np.linalg.norm((points[:, 3] + points[:, 4]) / 2 - mid, axis=1)
    return (d + eye_mouth) / 2 / width


def face_position(points: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of the five points' mean, in image widths and heights (0.5, 0.5 = centred)."""
    centre = points.mean(axis=1)
    return centre[:, 0] / width, centre[:, 1] / height
