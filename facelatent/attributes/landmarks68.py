"""Eye, mouth and brow shape from dlib's 68 iBUG points ([N, 68, 2], 0-based iBUG order), as plain numpy;
NaN points give NaN scores.

iBUG indices: brows 17-21 (image-left) and 22-26, eyes 36-41 and 42-47 (corner, two upper lid, corner, two
lower lid), inner lips 60-67 (corner 60, upper 61-63, corner 64, lower 65-67). Distances are divided by the eye
distance (between the eye centres, the means of each eye's six points) or by another span of the same face, so
the scores do not depend on image size.
"""

from __future__ import annotations

import numpy as np

LEFT_EYE, RIGHT_EYE = slice(36, 42), slice(42, 48)
LEFT_BROW, RIGHT_BROW = slice(17, 22), slice(22, 27)
INNER_LIP_PAIRS = ((61, 67), (62, 66), (63, 65))  # upper / lower inner lip, left to right
INNER_CORNERS = (60, 64)


def _gap(points: np.ndarray, a: int, b: int) -> np.ndarray:
    return np.linalg.norm(points[:, a] - points[:, b], axis=1)


def eye_distance68(points: np.ndarray) -> np.ndarray:
    """[N]: distance between the eye centres (mean of each eye's six points)."""
    return np.linalg.norm(points[:, RIGHT_EYE].mean(axis=1) - points[:, LEFT_EYE].mean(axis=1), axis=1)


def eye_aspect(points: np.ndarray, first: int) -> np.ndarray:
    """[N]: Soukupova & Cech's eye aspect ratio of the eye whose points start at `first` (36 or 42)."""
    p = [first + k for k in range(6)]
    lids = _gap(points, p[1], p[5]) + _gap(points, p[2], p[4])
    return lids / (2.0 * _gap(points, p[0], p[3]))


def inner_lip_gap(points: np.ndarray) -> np.ndarray:
    """[N]: mean distance between the upper and lower inner lip over the three lip pairs (0 when closed)."""
    return np.mean([_gap(points, a, b) for a, b in INNER_LIP_PAIRS], axis=0)


def mouth_aspect(points: np.ndarray) -> np.ndarray:
    """[N]: inner lip gap over the inner mouth width (corner 60 to corner 64)."""
    return inner_lip_gap(points) / _gap(points, *INNER_CORNERS)


def mouth_opening68(points: np.ndarray) -> np.ndarray:
    """[N]: inner lip gap over the eye distance."""
    return inner_lip_gap(points) / eye_distance68(points)


def brow_height(points: np.ndarray) -> np.ndarray:
    """[N]: mean height of the ten brow points above their own eye's centre, measured perpendicular to the eye
    line, over the eye distance."""
    left, right = points[:, LEFT_EYE].mean(axis=1), points[:, RIGHT_EYE].mean(axis=1)
    u = (right - left) / eye_distance68(points)[:, None]
    up = np.stack([u[:, 1], -u[:, 0]], axis=1)  # perpendicular to the eye line, toward the forehead
    heights = [
        np.einsum("nkj,nj->nk", points[:, brow] - eye[:, None], up)
        for brow, eye in ((LEFT_BROW, left), (RIGHT_BROW, right))
    ]
    return np.concatenate(heights, axis=1).mean(axis=1) / eye_distance68(points)
