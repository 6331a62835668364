"""A plain photo folder: nested good images plus the bad inputs the align stage must survive.

`CASES` documents every file: its kind and the number of faces pictured; hidden entries and
non-images are there to be skipped by the indexer.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from facelatent.demo_data.faces import Box, paste_face, render_faces, smooth_background, write_png
from facelatent.demo_data.planted import DIRECTION_NAMES, PlantedSpace, identity_bases

SCORE_STD = 0.5  # faces carry no labels: scores ~ N(0, 0.5^2) on every direction

# path -> (case, face boxes (x, y, size) in a 640x480 frame, what a robust align stage should do)
CASES: dict[str, tuple[str, tuple[tuple[int, int, int], ...], str]] = {
    "people/alice/portrait_01.jpg": ("ok", ((224, 120, 192),), "align 1 face"),
    "people/alice/portrait_02.PNG": ("ok_uppercase_ext", ((200, 140, 200),), "align 1 face"),
    "people/bob/holiday.jpeg": ("ok", ((260, 100, 180),), "align 1 face"),
    "people/bob/scan.bmp": ("ok_bmp", ((230, 130, 190),), "align 1 face"),
    "people/carol/selfie.webp": ("ok_webp", ((210, 110, 220),), "align 1 face"),
    "misc/grey_face.png": ("greyscale", ((220, 130, 192),), "align 1 face (convert L -> RGB)"),
    "misc/cmyk_face.jpg": ("cmyk_jpeg", ((220, 130, 192),), "align 1 face (convert CMYK -> RGB)"),
    "misc/deep16_face.png": ("png_16bit_rgb", ((220, 130, 192),), "align 1 face (scale 16 -> 8 bit)"),
    "misc/two_faces.jpg": ("two_faces", ((60, 120, 220), (420, 200, 110)), "align the larger face or both"),
    "misc/no_face.png": ("no_face", (), "reject: no face"),
    "broken/empty.jpg": ("zero_bytes", (), "reject: empty file"),
    "broken/truncated.png": ("truncated_png", ((220, 130, 192),), "reject: truncated file"),
}
SKIPPED = ("people/.DS_Store", "people/bob/notes.txt", ".hidden/secret.jpg", "people/._portrait_01.jpg")


def _scene(rng: np.random.Generator, faces: list[np.ndarray], boxes) -> np.ndarray:
    canvas = smooth_background(rng, 480, 640, 3)
    for face, (x, y, s) in zip(faces, boxes, strict=True):
        paste_face(canvas, face, Box(x, y, s))
    return canvas


def _no_face(rng: np.random.Generator) -> np.ndarray:
    """Smooth coloured noise: texture without any face."""
    small = rng.uniform(0, 255, size=(24, 32, 3)).astype(np.float32)
    return cv2.resize(small, (640, 480), interpolation=cv2.INTER_CUBIC).clip(0, 255).astype(np.uint8)


def _save(path: Path, case: str, image: np.ndarray) -> None:
    """Write one case in its format."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if case == "zero_bytes":
        path.write_bytes(b"")
    elif case == "truncated_png":
        write_png(path, image)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif case == "png_16bit_rgb":
        write_png(path, image.astype(np.uint16) * 257)
    elif case == "greyscale":
        Image.fromarray(image).convert("L").save(path)
    elif case == "cmyk_jpeg":
        Image.fromarray(image).convert("CMYK").save(path, quality=90)
    elif path.suffix.lower() in (".jpg", ".jpeg"):
        Image.fromarray(image).save(path, quality=90)
    elif path.suffix.lower() == ".webp":
        Image.fromarray(image).save(path, quality=90)
    else:
        Image.fromarray(image).save(path)


def write_folder(root: Path, G, rng: np.random.Generator, space: PlantedSpace) -> tuple[list[dict], np.ndarray]:
    """Write the photo folder; return one record per file (case, faces, boxes) and the face latents."""
    n_faces = sum(len(boxes) for _, boxes, _ in CASES.values())
    names = list(DIRECTION_NAMES)
    scores = SCORE_STD * rng.standard_normal((n_faces, len(names)))
    z = space.latents(identity_bases(rng, n_faces, space.z_dim), names, scores)
    faces = list(render_faces(G, z))
    records = []
    for rel, (case, boxes, expect) in CASES.items():
        these = [faces.pop(0) for _ in boxes]
        image = _no_face(rng) if case == "no_face" else _scene(rng, these, boxes)
        _save(root / rel, case, image)
        records.append(
            dict(
                path=rel,
                case=case,
                n_faces=len(boxes),
                expected=expect,
                boxes=";".join(f"{x},{y},{s},{s}" for x, y, s in boxes),
            )
        )
    for rel in SKIPPED:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"not an image\n")
    return records, z
