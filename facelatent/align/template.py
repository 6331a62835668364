"""The mean 68-point face shape, used to write plausible landmark files for synthetic faces."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from facelatent.errors import InputFileError
from facelatent.paths import REPO_ROOT, resources_dir

TEMPLATE_FILE = "landmarks68_template.json"

# Where eyes and mouth corners sit in a DCGAN DigiFace 64x64 face, as fractions of the frame.
# Read off rendered samples (eyes ~(22, 29.5)/(41.5, 29.5), mouth corners ~(23.5, 52)/(40.5, 52)
# at 64 px): that is the ArcFace template (DigiFace crops are ArcFace-aligned), so use it.
# Where MTCNN finds eyes and mouth corners on DCGAN DigiFace faces, as fractions of the face box:
# the mean over 91 seeded samples (RandomState(7)) pasted at 192 px; per-face std is about 2.5% of the box.
BOX_ANCHORS = np.array([[0.3536, 0.4679], [0.6465, 0.4599], [0.3775, 0.8194], [0.6267, 0.8136]])


def _template_path() -> Path:
    for root in (resources_dir(), REPO_ROOT / "resources"):
        if (root / TEMPLATE_FILE).exists():
            return root / TEMPLATE_FILE
    return REPO_ROOT / "resources" / TEMPLATE_FILE


def landmarks68_template(path: str | Path | None = None) -> np.ndarray:
    """Mean 68-point face (iBUG order) [68,2] float64: centred, x right, y down, width ~1.25.

    From insightface's `meanshape_68` (see the JSON's "source" field).
    """
    path = Path(path) if path is not None else _template_path()
    try:
        doc = json.loads(path.read_text())
        pts = np.asarray(doc["points"], dtype=np.float64)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputFileError(path, f"cannot read the 68-point template: {exc}") from exc
    if pts.shape != (68, 2) or not np.isfinite(pts).all():
        raise InputFileError(path, f"'points' must be 68 finite [x, y] pairs, got shape {list(pts.shape)}")
    return pts


def _anchor_points(lm68: np.ndarray) -> np.ndarray:
    """Eye means and mouth corners [4,2]: the points the FFHQ aligner reads."""
    return np.stack([lm68[36:42].mean(0), lm68[42:48].mean(0), lm68[48], lm68[54]])


def template_landmarks_for_box(
    x: float, y: float, w: float, h: float, template: np.ndarray | None = None, anchors: np.ndarray | None = None
) -> np.ndarray:
    """68 landmarks [68,2] for a face filling the box (x, y, w, h) like a DCGAN DigiFace face.

    Per-axis scale and shift fitted (least squares) so the template's eye means and mouth corners
    land on `anchors` (fractions of the box; default `BOX_ANCHORS`, the mean face) inside the box.
    Pass a face's own anchors to make the 68 points follow that face, as AAM tracking would.
    """
    lm = landmarks68_template() if template is None else np.asarray(template, dtype=np.float64)
    src = _anchor_points(lm)
    frac = BOX_ANCHORS if anchors is None else np.asarray(anchors, dtype=np.float64)
    dst = frac * np.array([w, h]) + np.array([x, y])
    if anchors is not None:  # a full affine follows the face's tilt and asymmetry, not only its scale
        A = np.hstack([src, np.ones((len(src), 1))])
        M, *_ = np.linalg.lstsq(A, dst, rcond=None)
        return np.hstack([lm, np.ones((len(lm), 1))]) @ M
    out = np.empty_like(lm)
    for axis in range(2):
        scale, shift = np.polyfit(src[:, axis], dst[:, axis], 1)
        out[:, axis] = lm[:, axis] * scale + shift
    return out
