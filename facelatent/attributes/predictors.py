"""Attribute predictors on images: each is a plain function from a batch of detections and pixels to one score
column, and `score_images` runs the detectors a batch needs once and returns the asked columns.

Every predictor needs a face: MTCNN runs once per batch (most confident face per image), dlib's 68 points run
once per image inside MTCNN's box only when a dlib68 predictor is asked for. An image without a face gets NaN in
every column, never a number. `predictor_table()` reads each predictor's name, unit, what it measures and where
it fails from its function's docstring (first paragraph, `Unit:`, `Fails on:`), so the table and the code have
one text; docs/PREDICTORS.md is generated from it (`python -m facelatent.attributes.docs docs/PREDICTORS.md`).
This module loads neither torch nor OpenCV (the rule files may import the table); the detectors load in
`load_attribute_models`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from facelatent.attributes import five_points as fp
from facelatent.attributes import landmarks68 as lm68
from facelatent.attributes.detections import NUM_LANDMARKS, FacePoints, best_detections, landmarks_for
from facelatent.attributes.photometric import cheek_pixels, illumination, typology_angle
from facelatent.errors import ConfigError

MIN_SIDE = 32  # MTCNN's first pyramid level (x 0.6 for 20 px faces) must stay above P-Net's 12 px window
NEEDS = ("mtcnn", "dlib68", "image")


@dataclass(frozen=True)
class Predictor:
    name: str  # column name, e.g. "yaw"
    needs: str  # "mtcnn" | "dlib68" | "image": what must run first
    unit: str  # e.g. "degrees (approx.)", "ratio of eye distance"
    measures: str  # one line: what it measures
    fails_on: str  # one line: known failure cases


@dataclass
class FaceBatch:
    """What a predictor reads: the images, MTCNN's best face per image and dlib's 68 points in its box."""

    images: np.ndarray  # [N, H, W, 3] uint8 RGB
    found: FacePoints  # NaN points and box, confidence 0, where no face was found
    landmarks: np.ndarray  # [N, 68, 2]; NaN where no face was found or no dlib68 predictor was asked for


@dataclass
class AttributeModels:
    """The detectors `score_images` runs; None when no asked predictor needs it."""

    mtcnn: object | None = None  # facelatent.detect.mtcnn.MTCNN
    dlib68: object | None = None  # facelatent.detect.dlib68.Dlib68


def yaw(batch: FaceBatch) -> np.ndarray:
    """Head turn: the nose tip's offset from the eye midpoint along the eye line (0 frontal, > 0 when the nose
    sits toward the image's right, i.e. the head turned to its own left).
    Unit: eye distances (about 0.5 tan(yaw angle) for an adult nose; 0.1 ~ 11 degrees).
    Fails on: turns past ~45 degrees (MTCNN loses the far eye), nose points off for strong pitch or occlusion."""
    return fp.pose_from_points(batch.found.points)["yaw"]


def pitch(batch: FaceBatch) -> np.ndarray:
    """Head nod: the nose's place between eye line and mouth line minus the ArcFace template's (> 0 head down).
    Unit: share of the eye-to-mouth span (0 = template; about +-0.1 for +-20 degrees).
    Fails on: an open mouth or smile moves the mouth line and reads as pitch; faces differ by about +-0.05."""
    return fp.pose_from_points(batch.found.points)["pitch"]


def roll(batch: FaceBatch) -> np.ndarray:
    """In-plane head tilt: the angle of the eye line (image y down, so > 0 is clockwise on screen).
    Unit: degrees.
    Fails on: strong yaw (the far eye's point drifts), closed or hidden eyes."""
    return fp.pose_from_points(batch.found.points)["roll"]


def mouth_width(batch: FaceBatch) -> np.ndarray:
    """Mouth corner to mouth corner (MTCNN's points), a smile or open mouth widens it.
    Unit: eye distances (about 1.0 neutral on ArcFace-framed faces).
    Fails on: yaw shortens both spans unequally; MTCNN's mouth corners are coarse on 64 px faces."""
    return fp.mouth_width(batch.found.points)


def mouth_opening(batch: FaceBatch) -> np.ndarray:
    """Lips apart: mean gap between upper and lower inner lip (dlib points 61-67, 62-66, 63-65); MTCNN's five
    points have no lips, so this one needs dlib68.
    Unit: eye distances (0 closed, about 0.3-0.6 wide open).
    Fails on: dlib often keeps the lips together on small or blurred mouths; beards, teeth-only smiles."""
    return lm68.mouth_opening68(batch.landmarks)


def face_scale(batch: FaceBatch) -> np.ndarray:
    """Face size: mean of the eye distance and the eye-to-mouth distance (five points) over the image width.
    Unit: image widths.
    Fails on: shrinks by about cos(yaw) and cos(pitch) with the head's turn, not only with distance."""
    return fp.face_scale(batch.found.points, batch.images.shape[2])


def face_x(batch: FaceBatch) -> np.ndarray:
    """Face position left-right: mean x of the five points over the image width (0.5 centred).
    Unit: image widths.
    Fails on: yaw moves the nose and mouth, so a turned head reads as slightly shifted."""
    return fp.face_position(batch.found.points, *batch.images.shape[1:3])[0]


def face_y(batch: FaceBatch) -> np.ndarray:
    """Face position up-down: mean y of the five points over the image height (0.5 centred, > 0.5 lower).
    Unit: image heights.
    Fails on: pitch and an open mouth move the points, so they read as a shift."""
    return fp.face_position(batch.found.points, *batch.images.shape[1:3])[1]


def brightness(batch: FaceBatch) -> np.ndarray:
    """Light on the face: mean grey level over MTCNN's face box (clipped to the image).
    Unit: grey level in [0, 1].
    Fails on: the box holds hair and background at its corners; skin tone and light level are not separated."""
    return np.array([illumination(img, box)[0] for img, box in zip(batch.images, batch.found.box, strict=True)])


def illumination_asymmetry(batch: FaceBatch) -> np.ndarray:
    """Side light: right half minus left half of the face box's mean grey, over the box's mean (> 0 lit from
    the image's right).
    Unit: share of the face's mean grey level (0 even light).
    Fails on: yaw puts more cheek and background in one half; asymmetric hair or a hand reads as side light."""
    lights = [illumination(img, box)[1] for img, box in zip(batch.images, batch.found.box, strict=True)]
    return np.array(lights)


def skin_tone(batch: FaceBatch) -> np.ndarray:
    """Skin lightness and colour: individual typology angle atan2(L* - 50, b*) of the median CIELAB colour of
    two cheek patches placed by the five points (higher = lighter; > 55 very light, < -30 dark).
    Unit: degrees (ITA).
    Fails on: coloured light and white balance, shadows, make-up or beard on the cheeks, masks over them (the demo
    samples' lowest and highest scores include teal and purple masks); a turned head puts the far patch on
    background."""
    pairs = zip(batch.images, batch.found.points, strict=True)
    return np.array([typology_angle(cheek_pixels(img, points)) for img, points in pairs])


def eye_aspect_ratio(batch: FaceBatch) -> np.ndarray:
    """Eyes open: Soukupova & Cech's eye aspect ratio (lid-to-lid over corner-to-corner), mean of both eyes.
    Unit: ratio (about 0.3 open, < 0.2 closed).
    Fails on: on 64 px faces an eye is 2-3 px high, so it is noisy (dlib's points err by ~0.5 px there);
    glasses, strong yaw."""
    return (lm68.eye_aspect(batch.landmarks, 36) + lm68.eye_aspect(batch.landmarks, 42)) / 2


def mouth_aspect_ratio(batch: FaceBatch) -> np.ndarray:
    """Mouth open for its width: inner lip gap (as mouth_opening) over the inner mouth width (points 60-64).
    Unit: ratio (0 closed, about 0.5+ wide open).
    Fails on: as mouth_opening; a wide smile lowers it while the lips part."""
    return lm68.mouth_aspect(batch.landmarks)


def brow_raise(batch: FaceBatch) -> np.ndarray:
    """Brows up: mean height of the ten brow points above their eye's centre, perpendicular to the eye line.
    Unit: eye distances (about 0.3-0.4 neutral).
    Fails on: head pitch changes it (head down raises it); bangs or hats over the brows; faces differ more
    than a raise moves it."""
    return lm68.brow_height(batch.landmarks)


SCORERS: dict[str, tuple[str, Callable[[FaceBatch], np.ndarray]]] = {
    "yaw": ("mtcnn", yaw),
    "pitch": ("mtcnn", pitch),
    "roll": ("mtcnn", roll),
    "mouth_width": ("mtcnn", mouth_width),
    "mouth_opening": ("dlib68", mouth_opening),
    "face_scale": ("mtcnn", face_scale),
    "face_x": ("mtcnn", face_x),
    "face_y": ("mtcnn", face_y),
    "brightness": ("mtcnn", brightness),
    "illumination_asymmetry": ("mtcnn", illumination_asymmetry),
    "skin_tone": ("mtcnn", skin_tone),
    "eye_aspect_ratio": ("dlib68", eye_aspect_ratio),
    "mouth_aspect_ratio": ("dlib68", mouth_aspect_ratio),
    "brow_raise": ("dlib68", brow_raise),
}


def describe(name: str, needs: str, fn: Callable) -> Predictor:
    """A Predictor from `fn`'s docstring: first paragraph = measures, then `Unit:` and `Fails on:` (lines joined)."""
    fields: dict[str, list[str]] = {"measures": [], "unit": [], "fails_on": []}
    current = "measures"
    for line in (inspect.getdoc(fn) or "").splitlines():
        for prefix, key in (("Unit:", "unit"), ("Fails on:", "fails_on")):
            if line.startswith(prefix):
                current, line = key, line[len(prefix) :]
        fields[current].append(line.strip())
    text = {key: " ".join(part for part in lines if part).rstrip(".") for key, lines in fields.items()}
    assert all(text.values()), f"predictor {name}'s docstring lacks a summary, Unit: or Fails on: ({text})"
    return Predictor(name=name, needs=needs, **text)


def predictor_table() -> dict[str, Predictor]:
    """Every shipped predictor, by name, in column order."""
    return {name: describe(name, needs, fn) for name, (needs, fn) in SCORERS.items()}


def check_names(names: Sequence[str], key: str = "predictors") -> list[str]:
    """The asked names as a list; unknown or repeated names raise a one-line ConfigError naming `key`."""
    names = list(names)
    unknown = [n for n in names if n not in SCORERS]
    if unknown:
        raise ConfigError(f"{key}: unknown predictor(s) {unknown}; known: {', '.join(SCORERS)}")
    if len(set(names)) != len(names):
        raise ConfigError(f"{key}: predictor names repeat: {names}")
    return names


def needs_of(names: Sequence[str]) -> set[str]:
    """The detectors the named predictors need; dlib68 predictors need MTCNN's box too."""
    needs = {SCORERS[n][0] for n in check_names(names)}
    return needs | ({"mtcnn"} if "dlib68" in needs else set())


def load_attribute_models(
    names: Sequence[str],
    mtcnn_path: str | Path | None = None,
    dlib68_path: str | Path | None = None,
    device: str = "cpu",
) -> AttributeModels:
    """Load what the named predictors need (paths default to the fetched models in resources/models)."""
    needs = needs_of(names)
    models = AttributeModels()
    if "mtcnn" in needs:
        from facelatent.detect.mtcnn import MTCNN

        models.mtcnn = MTCNN(device=device, weights=mtcnn_path)
    if "dlib68" in needs:
        from facelatent.detect.dlib68 import Dlib68

        models.dlib68 = Dlib68(predictor=dlib68_path)
    return models


def check_images(images: np.ndarray) -> None:
    """uint8 [N, H, W, 3] with H, W >= MIN_SIDE, or a ValueError saying what is wrong."""
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
        raise ValueError(f"images must be a uint8 numpy array, got {getattr(images, 'dtype', type(images))}")
    if images.ndim != 4 or images.shape[3] != 3 or min(images.shape[1:3]) < MIN_SIDE:
        raise ValueError(f"images must be [N, H, W, 3] RGB with H, W >= {MIN_SIDE}, got shape {images.shape}")


def detect_batch(images: np.ndarray, needs: set[str], models: AttributeModels) -> FaceBatch:
    """Run MTCNN once over the batch and dlib68 once per found face, as far as `needs` asks."""
    n = len(images)
    found = FacePoints(np.zeros(n), np.full((n, 5, 2), np.nan), np.full((n, 4), np.nan))
    landmarks = np.full((n, NUM_LANDMARKS, 2), np.nan)
    if "mtcnn" in needs:
        if models.mtcnn is None:
            raise ValueError("an asked predictor needs MTCNN, which these AttributeModels do not hold")
        found = best_detections(models.mtcnn, list(images))
    if "dlib68" in needs:
        if models.dlib68 is None:
            raise ValueError("an asked predictor needs dlib68, which these AttributeModels do not hold")
        landmarks = landmarks_for(models.dlib68, images, found.box)
    return FaceBatch(images, found, landmarks)


def score_images(images: np.ndarray, names: Sequence[str], models: AttributeModels) -> pd.DataFrame:
    """N rows, one float64 column per name in order; NaN in every face-dependent column where no face is found
    (and wherever a score is not finite)."""
    check_images(images)
    names = check_names(names)
    batch = detect_batch(images, needs_of(names), models)
    no_face = batch.found.confidence <= 0
    columns = {}
    for name in names:
        needs, fn = SCORERS[name]
        column = np.array(fn(batch), np.float64)
        assert column.shape == (len(images),), f"predictor {name} returned shape {column.shape}"
        column[~np.isfinite(column)] = np.nan  # a degenerate shape (zero eye or mouth width) is no score either
        columns[name] = np.where(no_face, np.nan, column) if needs != "image" else column
    return pd.DataFrame(columns, columns=names)
