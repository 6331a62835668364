"""FFHQ fixture: a "remote" tree of files plus an `ffhq-dataset-v2.json` manifest (DATASETS.md §3).

The remote side (`ffhq_remote/`) is what a downloader fetches through the manifest's `file://`
URLs. Aligned images are the DCGAN face upscaled to 1024 (the face fills the frame the way DCGAN
faces fill theirs); thumbnails are their Lanczos downsample to 128; in-the-wild images show the
face pasted into a 640x480 scene, with 68 landmarks, face_rect and the FFHQ quad.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from facelatent.align import ffhq_quad_from_68, template_landmarks_for_box
from facelatent.demo_data.faces import (
    Box,
    face_anchors,
    paste_face,
    render_faces,
    smooth_background,
    write_png,
    write_text,
)
from facelatent.demo_data.planted import DIRECTION_NAMES, PlantedSpace, identity_bases

INDEX_ORDER = (0, 1000, 60000, 1, 2, 1001, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)
SCORE_STD = 0.5
FIXTURE_LICENSE = (
    "Fixture data written by facelatent.demo_data for tests.\n"
    "Synthetic images from a DCGAN face generator; no real photographs.\n"
)
KIND_DIRS = {"image": "images1024x1024", "thumbnail": "thumbnails128x128", "in_the_wild": "in-the-wild-images"}


def ffhq_indices(n: int) -> list[int]:
    """Always 0, 1000 (folder 01000/) and 60000 (validation), then small indices; sorted."""
    if not 3 <= n <= len(INDEX_ORDER):
        raise ValueError(f"FFHQ fixture size must be 3..{len(INDEX_ORDER)}, got {n}")
    return sorted(INDEX_ORDER[:n])


def file_path(kind: str, index: int) -> str:
    """`images1024x1024/01000/01234.png`: folder = index rounded down to a thousand."""
    return f"{KIND_DIRS[kind]}/{index - index % 1000:05d}/{index:05d}.png"


def describe_file(remote: Path, rel: str) -> dict:
    """The manifest fields of one file: url, path, size, md5, [W, H], md5 of the decoded pixels."""
    path = remote / rel
    data = path.read_bytes()
    with Image.open(path) as img:
        pixels = np.array(img)
        width, height = img.size
    return dict(
        file_url=path.resolve().as_uri(),
        file_path=rel,
        file_size=len(data),
        file_md5=hashlib.md5(data).hexdigest(),
        pixel_size=[width, height],
        pixel_md5=hashlib.md5(np.ascontiguousarray(pixels).tobytes()).hexdigest(),
    )


def entry_metadata(index: int) -> dict:
    """The `metadata` section of manifest entry `index` (Flickr-style fields; the scale rehearsal's too)."""
    return dict(
        photo_url=f"https://www.flickr.com/photos/fixture_user_{index % 7}/{100000 + index}/",
        photo_title=f"IMG_{index:04d}.JPG",
        author=f"Fixture Author {index % 7}",
        country="",
        license="Attribution License",
        license_url="https://creativecommons.org/licenses/by/2.0/",
        date_uploaded="2010-01-01",
        date_crawled="2018-10-10",
    )


def _points(a: np.ndarray) -> list[list[float]]:
    return [[round(float(x), 3), round(float(y), 3)] for x, y in a]


def _write_entry(remote: Path, rng: np.random.Generator, index: int, face: np.ndarray, anchor: np.ndarray) -> dict:
    """Write the three files of one index; return its manifest entry."""
    big = cv2.resize(face, (1024, 1024), interpolation=cv2.INTER_CUBIC)
    write_png(remote / file_path("image", index), big)
    thumb = np.array(Image.fromarray(big).resize((128, 128), Image.Resampling.LANCZOS))
    write_png(remote / file_path("thumbnail", index), thumb)
    size = int(rng.integers(200, 281))
    box = Box(int(rng.integers(40, 600 - size)), int(rng.integers(20, 460 - size)), size)
    write_png(remote / file_path("in_the_wild", index), paste_face(smooth_background(rng, 480, 640, 3), face, box))
    wild_lm = template_landmarks_for_box(box.x, box.y, size, size, anchors=anchor)
    quad, _ = ffhq_quad_from_68(wild_lm)
    return {
        "category": "validation" if index >= 60000 else "training",
        "metadata": entry_metadata(index),
        "image": {
            **describe_file(remote, file_path("image", index)),
            "face_landmarks": _points(template_landmarks_for_box(0, 0, 1024, 1024, anchors=anchor)),
        },
        "thumbnail": describe_file(remote, file_path("thumbnail", index)),
        "in_the_wild": {
            **describe_file(remote, file_path("in_the_wild", index)),
            "face_rect": [box.x, box.y, box.x + size, box.y + size],
            "face_landmarks": _points(wild_lm),
            "face_quad": _points(quad),
        },
    }


def write_ffhq(
    remote: Path,
    manifest: Path,
    G,
    rng: np.random.Generator,
    space: PlantedSpace,
    n_images: int,
    mtcnn_weights: str | Path | None = None,
) -> tuple[list[dict], np.ndarray]:
    """Write the remote tree and the manifest; return records (id, path, category, scores) and latents."""
    indices = ffhq_indices(n_images)
    names = list(DIRECTION_NAMES)
    scores = SCORE_STD * rng.standard_normal((len(indices), len(names)))
    z = space.latents(identity_bases(rng, len(indices), space.z_dim), names, scores)
    entries, records = {}, []
    faces = render_faces(G, z)
    for k, (index, face, anchor) in enumerate(
        zip(indices, faces, face_anchors(faces, mtcnn_weights=mtcnn_weights), strict=False)
    ):
        entries[str(index)] = _write_entry(remote, rng, index, face, anchor)
        records.append(
            dict(
                id=f"{index:05d}",
                path=file_path("image", index),
                index=index,
                category=entries[str(index)]["category"],
                **{f"s_{n}": float(v) for n, v in zip(names, scores[k], strict=False)},
            )
        )
    for folder in ("", *KIND_DIRS.values()):
        write_text(remote / folder / "LICENSE.txt", FIXTURE_LICENSE)
    write_text(manifest, json.dumps(entries, indent=1))
    return records, z
