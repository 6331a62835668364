"""FFHQ face alignment (NVlabs ffhq-dataset `recreate_aligned_images`), from 68 or 5 landmarks.

Coordinates: points are (x, y) in pixel-index units, the convention of dlib and MTCNN, where the
centre of pixel (i, j) sits at x = i, y = j. The aligner itself works in "edge" units (x + 0.5), as
NVlabs does when it hands `quad + 0.5` to PIL.

Deviations from the NVlabs script, all small:
* The padding blur uses OpenCV `sepFilter2D` with scipy's Gaussian kernel (radius
  int(4 sigma + 0.5), border 'reflect' = cv2 BORDER_REFLECT) accumulated in float32, where
  `scipy.ndimage.gaussian_filter` accumulates in float64; the blurred values agree to ~1e-4
  (of 0..255) before rounding to uint8 (see tests/test_align.py).
* `transform_size` defaults to 4 * output_size (NVlabs: 4096 for a 1024 output, the same
  ratio); the final Lanczos downsample sets the quality, so small outputs need no 4096 warp.
* Greyscale (and RGBA) input is converted to RGB first; the NVlabs padding code needs 3 channels.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

# The constants of the FFHQ oriented square (download_ffhq.py).
EYE_SCALE = 2.0  # half-side >= 2.0 x eye-to-eye distance
MOUTH_SCALE = 1.8  # half-side >= 1.8 x eye-to-mouth distance
CENTRE_SHIFT = 0.1  # centre = eye midpoint + 0.1 x eye-to-mouth vector

# iBUG-68 index groups used by the aligner.
EYE_A = slice(36, 42)  # image-left eye (subject's right)
EYE_B = slice(42, 48)  # image-right eye
MOUTH_A, MOUTH_B = 48, 54  # outer-mouth corners 0 and 6
NOSE_TIP = 30


def _rot90(v: np.ndarray) -> np.ndarray:
    """(x, y) -> (-y, x): NVlabs' `flipud(v) * [-1, 1]`."""
    return np.array([-v[1], v[0]], dtype=np.float64)


def ffhq_quad(eye_left, eye_right, mouth_left, mouth_right, rotate_level: bool = True) -> tuple[np.ndarray, float]:
    """The FFHQ crop square [4,2] (TL, BL, BR, TR for an upright face) and its side length.

    `eye_left`/`mouth_left` are the *image-left* points (the subject's right), as in NVlabs.
    """
    eye_l, eye_r, mouth_l, mouth_r = (
        np.asarray(p, dtype=np.float64).reshape(2) for p in (eye_left, eye_right, mouth_left, mouth_right)
    )
    eye_avg = (eye_l + eye_r) * 0.5
    eye_to_eye = eye_r - eye_l
    eye_to_mouth = (mouth_l + mouth_r) * 0.5 - eye_avg
    if rotate_level:
        x = eye_to_eye - _rot90(eye_to_mouth)
        norm = np.hypot(*x)
        if not norm > 0:
            raise ValueError("ffhq_quad: degenerate landmarks (eyes swapped or coincident?)")
        x = x / norm
    else:
        x = np.array([1.0, 0.0])
    x = x * max(np.hypot(*eye_to_eye) * EYE_SCALE, np.hypot(*eye_to_mouth) * MOUTH_SCALE)
    y = _rot90(x)
    c = eye_avg + eye_to_mouth * CENTRE_SHIFT
    quad = np.stack([c - x - y, c - x + y, c + x + y, c + x - y])
    return quad, float(np.hypot(*x) * 2)


def _check_points(points, n: int, what: str) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64)
    if pts.shape != (n, 2):
        raise ValueError(f"{what}: expected an array of shape [{n}, 2], got {list(pts.shape)}")
    return pts


def ffhq_quad_from_68(landmarks, rotate_level: bool = True) -> tuple[np.ndarray, float]:
    """FFHQ square from dlib/iBUG 68 points: eye means 36-41 / 42-47, mouth corners 48 / 54."""
    lm = _check_points(landmarks, 68, "ffhq_quad_from_68")
    return ffhq_quad(lm[EYE_A].mean(0), lm[EYE_B].mean(0), lm[MOUTH_A], lm[MOUTH_B], rotate_level)


def ffhq_quad_from_5(points, rotate_level: bool = True) -> tuple[np.ndarray, float]:
    """FFHQ square from 5 points in MTCNN order: left_eye, right_eye, nose, mouth_left, mouth_right.

    MTCNN's `left_eye`/`mouth_left` are the image-left ones (smaller x on an upright face), which
    is what NVlabs calls left; the nose is unused (Idiap synthetics does the same).
    """
    p = _check_points(points, 5, "ffhq_quad_from_5")
    return ffhq_quad(p[0], p[1], p[3], p[4], rotate_level)


def five_points_from_68(landmarks) -> np.ndarray:
    """[5,2] MTCNN-order points from 68: eye means, nose tip (30), mouth corners 48 / 54."""
    lm = _check_points(landmarks, 68, "five_points_from_68")
    return np.stack([lm[EYE_A].mean(0), lm[EYE_B].mean(0), lm[NOSE_TIP], lm[MOUTH_A], lm[MOUTH_B]])


# ---------------------------------------------------------------------------------------------
# Point mapping between the source image and the aligned output.


def quad_to_affine(quad, output_size: int) -> np.ndarray:
    """2x3 matrix mapping source pixel-index coords to aligned-output pixel-index coords.

    Exact for the NVlabs pipeline when no shrink happens (qsize < 4 * output_size); with the
    shrink step NVlabs divides the quad by k in index units, which moves the crop by
    (k - 1) / 2 source pixels, i.e. less than 0.25 output pixels.
    """
    q = np.asarray(quad, dtype=np.float64).reshape(4, 2)
    ax, ay = q[3] - q[0], q[1] - q[0]  # output x and y axes (one side each) in source units
    if not np.allclose(q[2] - q[1], ax, atol=1e-6 * np.abs(q).max() + 1e-9):
        raise ValueError("quad_to_affine: the quad is not a parallelogram")
    basis = np.stack([ax, ay], axis=1) / output_size  # output edge units -> source
    inv = np.linalg.inv(basis)
    # edge units: output_edge = inv @ ((p + 0.5) - (q0 + 0.5)); output index = output_edge - 0.5
    offset = -inv @ q[0] - 0.5
    return np.concatenate([inv, offset[:, None]], axis=1)


def points_to_aligned(points, quad, output_size: int) -> np.ndarray:
    """Map source points [N,2] (pixel-index coords) into the aligned output."""
    M = quad_to_affine(quad, output_size)
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return pts @ M[:, :2].T + M[:, 2]


# ---------------------------------------------------------------------------------------------
# The image pipeline, one NVlabs step per function.


def _as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise ValueError(f"align_face: expected a uint8 image, got dtype {img.dtype}")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        return np.repeat(img[:, :, None], 3, axis=2)
    if img.ndim == 3 and img.shape[2] in (3, 4):
        return np.ascontiguousarray(img[:, :, :3])
    raise ValueError(f"align_face: expected an HxW or HxWx{{1,3,4}} image, got shape {list(img.shape)}")


def _shrink(
    img: Image.Image, quad: np.ndarray, qsize: float, output_size: int
) -> tuple[Image.Image, np.ndarray, float]:
    """Lanczos pre-shrink by an integer factor when the face is >= 4x the output size."""
    shrink = int(np.floor(qsize / output_size * 0.5))
    if shrink <= 1:
        return img, quad, qsize
    rsize = (int(np.rint(float(img.size[0]) / shrink)), int(np.rint(float(img.size[1]) / shrink)))
    return img.resize(rsize, Image.Resampling.LANCZOS), quad / shrink, qsize / shrink


def _quad_bounds(quad: np.ndarray) -> tuple[int, int, int, int]:
    return (
        int(np.floor(min(quad[:, 0]))),
        int(np.floor(min(quad[:, 1]))),
        int(np.ceil(max(quad[:, 0]))),
        int(np.ceil(max(quad[:, 1]))),
    )


def _crop(img: Image.Image, quad: np.ndarray, border: int) -> tuple[Image.Image, np.ndarray]:
    """Cut the quad's bounding box plus a border (clamped to the image)."""
    b = _quad_bounds(quad)
    box = (
        max(b[0] - border, 0),
        max(b[1] - border, 0),
        min(b[2] + border, img.size[0]),
        min(b[3] + border, img.size[1]),
    )
    if box[2] - box[0] < img.size[0] or box[3] - box[1] < img.size[1]:
        return img.crop(box), quad - np.array(box[:2], dtype=np.float64)
    return img, quad


def pad_amounts(quad: np.ndarray, width: int, height: int, border: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom): how far the quad's box plus border sticks out of the image."""
    b = _quad_bounds(quad)
    return (
        max(-b[0] + border, 0),
        max(-b[1] + border, 0),
        max(b[2] - width + border, 0),
        max(b[3] - height + border, 0),
    )


def gaussian_blur_hw(img: np.ndarray, sigma: float) -> np.ndarray:
    """scipy `gaussian_filter(img, [sigma, sigma, 0])` semantics on an HxWxC float32 array.

    Same kernel (radius int(4 sigma + 0.5), normalised exp(-x^2 / 2 sigma^2)) and the same
    half-sample-symmetric border; cv2 accumulates in float32 where scipy uses float64.
    """
    radius = int(4.0 * float(sigma) + 0.5)
    if sigma <= 0 or radius == 0:
        return img.copy()
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 / (float(sigma) ** 2) * x * x)
    kernel = (kernel / kernel.sum()).astype(np.float32)
    out = cv2.sepFilter2D(img, cv2.CV_32F, kernel, kernel, borderType=cv2.BORDER_REFLECT)
    return out.reshape(img.shape)


def _pad_blend(img: Image.Image, pad: tuple[int, int, int, int], qsize: float) -> Image.Image:
    """Reflect-pad, then fade the padding towards a blurred copy and the median colour."""
    pl, pt, pr, pb = pad
    arr = np.pad(np.asarray(img, dtype=np.float32), ((pt, pb), (pl, pr), (0, 0)), mode="reflect")
    h, w, _ = arr.shape
    y, x, _ = np.ogrid[:h, :w, :1]
    x, y = x.astype(np.float32), y.astype(np.float32)
    # mask: <= 0 inside, rising to 1 at the outer edge of the padding
    mask = np.maximum(
        1.0 - np.minimum(x / np.float32(pl), (w - 1 - x) / np.float32(pr)),
        1.0 - np.minimum(y / np.float32(pt), (h - 1 - y) / np.float32(pb)),
    )
    blur = gaussian_blur_hw(arr, qsize * 0.02)
    arr += (blur - arr) * np.clip(mask * 3.0 + 1.0, 0.0, 1.0)
    arr += (np.median(arr, axis=(0, 1)) - arr) * np.clip(mask, 0.0, 1.0)
    return Image.fromarray(np.uint8(np.clip(np.rint(arr), 0, 255)), "RGB")


def align_face(
    image: np.ndarray,
    quad,
    qsize: float,
    output_size: int = 1024,
    transform_size: int | None = None,
    enable_padding: bool = True,
) -> np.ndarray:
    """FFHQ-align one image: shrink, crop, blur-pad, quad warp, Lanczos downsample.

    `image` is RGB uint8 HxWx3 (greyscale/RGBA are converted). `transform_size` None means
    4 * output_size (NVlabs' 4096 for 1024). Returns RGB uint8 [output_size, output_size, 3].
    """
    if transform_size is None:
        transform_size = 4 * output_size
    quad = np.asarray(quad, dtype=np.float64).reshape(4, 2).copy()
    img = Image.fromarray(_as_rgb_uint8(image), "RGB")
    img, quad, qsize = _shrink(img, quad, float(qsize), output_size)
    border = max(int(np.rint(qsize * 0.1)), 3)
    img, quad = _crop(img, quad, border)
    pad = pad_amounts(quad, img.size[0], img.size[1], border)
    if enable_padding and max(pad) > border - 4:
        pad = tuple(int(p) for p in np.maximum(pad, int(np.rint(qsize * 0.3))))
        img = _pad_blend(img, pad, qsize)
        quad = quad + np.array(pad[:2], dtype=np.float64)
    img = img.transform(
        (transform_size, transform_size), Image.Transform.QUAD, tuple((quad + 0.5).flatten()), Image.Resampling.BILINEAR
    )
    if output_size < transform_size:
        img = img.resize((output_size, output_size), Image.Resampling.LANCZOS)
    out = np.asarray(img)
    assert out.shape == (output_size, output_size, 3), out.shape
    return out


def align_face_68(image: np.ndarray, landmarks, output_size: int = 1024, **kwargs) -> np.ndarray:
    """`align_face` with the square from 68 landmarks."""
    quad, qsize = ffhq_quad_from_68(landmarks, rotate_level=kwargs.pop("rotate_level", True))
    return align_face(image, quad, qsize, output_size, **kwargs)


def align_face_5(image: np.ndarray, points, output_size: int = 1024, **kwargs) -> np.ndarray:
    """`align_face` with the square from 5 MTCNN-order points."""
    quad, qsize = ffhq_quad_from_5(points, rotate_level=kwargs.pop("rotate_level", True))
    return align_face(image, quad, qsize, output_size, **kwargs)
