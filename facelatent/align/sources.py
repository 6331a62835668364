"""Where `align_shard` takes each dataset's landmarks from; light enough for the Snakefile to import."""

from __future__ import annotations

from collections.abc import Mapping

from facelatent.datasets.ffhq import DEFAULT_KIND, is_in_the_wild
from facelatent.errors import ConfigError

# `align.landmarks`: the face detectors of the kinds that detect faces, and the rule input holding each one's weights
DETECTORS = ("mtcnn", "dlib68")
DEFAULT_DETECTOR = "mtcnn"
# where a dataset's landmarks come from: a 68-point file per image, the row's manifest points, a detector, or nowhere
LANDMARK_SOURCES = ("landmarks68", "manifest68", *DETECTORS, "none")


def check_detector(landmarks: str) -> str:
    """`align.landmarks` must name one of DETECTORS (the schema's enum, for callers that skip the schema)."""
    if landmarks not in DETECTORS:
        raise ConfigError(
            f"config key 'align.landmarks': unknown detector '{landmarks}' (known: {', '.join(DETECTORS)})"
        )
    return landmarks


def landmark_source(kind: str, options: Mapping | None = None, landmarks: str = DEFAULT_DETECTOR) -> str:
    """Where align_shard takes a dataset's landmarks from, given its `kind`, its `options` (FFHQ's `options.kind`)
    and `align.landmarks` (the detector of the kinds that detect faces)."""
    check_detector(landmarks)
    if kind == "ckplus":
        return "landmarks68"
    if kind == "ffhq":
        # aligned images and thumbnails are only resized; in-the-wild photos are aligned from the manifest's points
        return "manifest68" if is_in_the_wild((options or {}).get("kind", DEFAULT_KIND)) else "none"
    if kind in ("multipie", "folder"):
        return landmarks
    raise ConfigError(f"config key 'datasets.*.kind': unknown dataset kind '{kind}'")
