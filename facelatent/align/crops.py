"""Differentiable face crops for the FR loss: fixed FFHQ->ArcFace box, 5-point similarity warp.

Pixel convention everywhere: (x, y) in pixel-index units, centre of pixel (i, j) at x = i, y = j,
the convention of cv2.warpAffine, insightface and MTCNN.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from facelatent.generators.base import assert_shape as _assert_shape

# insightface `arcface_dst` for 112x112 (DATASETS.md section 4.1), image-left to image-right:
# eye, eye, nose tip, mouth corner, mouth corner.
ARCFACE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)

# Idiap synthetics FIXED_2_POINTS crop (ALGORITHMS.md section 1.2): FFHQ-1024 eyes are assumed at
# x 380 / 650, y 480; output eye targets per variant (image-left eye x, y; image-right eye x).
FFHQ_EYES_1024 = ((380.0, 480.0), (650.0, 480.0))
ARCFACE_BOX_TARGETS = {
    "arcface": ((38.2946, 51.6963), (73.5318, 51.5014)),
    "iresnet_bob": ((38.2946, 51.6), (73.5318, 51.6)),
}


# ---------------------------------------------------------------------------------------------
# Fixed 2-point crop (FFHQ-aligned generator output -> ArcFace 112).


def ffhq_to_arcface_box_float(resolution: int = 1024, variant: str = "arcface") -> tuple[float, float, float, float]:
    """Unrounded (top, bottom, left, right) of the fixed crop on a `resolution` FFHQ image."""
    if variant not in ARCFACE_BOX_TARGETS:
        raise ValueError(f"ffhq_to_arcface_box: unknown variant '{variant}' (known: {', '.join(ARCFACE_BOX_TARGETS)})")
    (in_lx, in_y), (in_rx, _) = FFHQ_EYES_1024
    (out_lx, out_ly), (out_rx, _) = ARCFACE_BOX_TARGETS[variant]
    r = resolution / 1024.0
    k = (out_rx - out_lx) / (in_rx - in_lx)
    left, top = in_lx - out_lx / k, in_y - out_ly / k
    side = 112.0 / k
    return top * r, (top + side) * r, left * r, (left + side) * r


def ffhq_to_arcface_box(resolution: int = 1024, variant: str = "arcface") -> tuple[int, int, int, int]:
    """(top, bottom, left, right) slice bounds of the fixed FFHQ->ArcFace crop.

    1024: rows 83:942, cols 86:944 (variant "iresnet_bob": rows 84:942). Other resolutions scale
    the unrounded 1024 box by resolution/1024 and then truncate each bound to int, as synthetics
    does with its ffhq256/ffhq128 eye constants (256 -> rows 20:235, cols 21:236).
    """
    return tuple(int(v) for v in ffhq_to_arcface_box_float(resolution, variant))  # type: ignore[return-value]


def crop_ffhq_to_arcface(images: torch.Tensor, out_size: int = 112, variant: str = "arcface") -> torch.Tensor:
    """[B,C,R,R] FFHQ-aligned images -> [B,C,out,out]: fixed box + antialiased bicubic resize."""
    _assert_shape(images, [None, None, None, None], "crop_ffhq_to_arcface images")
    _assert_shape(images, [None, None, images.shape[3], images.shape[3]], "crop_ffhq_to_arcface images (square)")
    top, bottom, left, right = ffhq_to_arcface_box(images.shape[2], variant)
    crop = images[:, :, top:bottom, left:right]
    out = F.interpolate(crop, size=(out_size, out_size), mode="bicubic", antialias=True, align_corners=False)
    _assert_shape(out, [images.shape[0], images.shape[1], out_size, out_size], "crop_ffhq_to_arcface output")
    return out


# ---------------------------------------------------------------------------------------------
# 5-point similarity (ArcFace norm_crop).


def arcface_template(size: int = 112) -> np.ndarray:
    """insightface's 5-point template for a size x size crop ([5,2] float64).

    Multiples of 112 scale the 112 template; multiples of 128 scale it by size/128 and shift x
    by 8 * size/128 (insightface `estimate_norm`). Other sizes scale by size/112.
    """
    if size % 112 == 0:
        return ARCFACE_112 * (size / 112.0)
    if size % 128 == 0:
        return ARCFACE_112 * (size / 128.0) + np.array([8.0 * size / 128.0, 0.0])
    return ARCFACE_112 * (size / 112.0)


def similarity_transform_5pt(src, dst):
    """Least-squares similarity (rotation, uniform scale, translation; no reflection) src -> dst.

    Closed form of Umeyama's estimate over matrices [[a, -b], [b, a]]. numpy [N,2] pairs give a
    numpy 2x3; torch tensors [..., N, 2] give [..., 2, 3] and are differentiable.
    """
    is_torch = isinstance(src, torch.Tensor) or isinstance(dst, torch.Tensor)
    if is_torch:
        src_t = torch.as_tensor(src)
        dst_t = torch.as_tensor(dst, dtype=src_t.dtype, device=src_t.device)
        return _similarity(src_t, dst_t, torch.stack)
    return _similarity(np.asarray(src, dtype=np.float64), np.asarray(dst, dtype=np.float64), np.stack)


def _similarity(src, dst, stack):
    if src.shape[-1] != 2 or src.shape[-2] < 2:
        raise ValueError(f"similarity_transform_5pt: expected points [..., N>=2, 2], got {list(src.shape)}")
    n = src.shape[-2]
    ms, md = src.sum(-2) / n, dst.sum(-2) / n  # [..., 2]
    a, b = src - ms[..., None, :], dst - md[..., None, :]
    var = (a * a).sum(-1).sum(-1)
    ca = ((a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1]).sum(-1)) / var  # s cos
    sa = ((a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]).sum(-1)) / var  # s sin
    tx = md[..., 0] - (ca * ms[..., 0] - sa * ms[..., 1])
    ty = md[..., 1] - (sa * ms[..., 0] + ca * ms[..., 1])
    row0 = stack([ca, -sa, tx], -1)
    row1 = stack([sa, ca, ty], -1)
    return stack([row0, row1], -2)


def _pixel_to_norm(width: int, height: int, like: torch.Tensor) -> torch.Tensor:
    """3x3 mapping pixel-index coords to grid_sample's align_corners=False coords in [-1, 1]."""
    return torch.tensor(
        [[2.0 / width, 0.0, 1.0 / width - 1.0], [0.0, 2.0 / height, 1.0 / height - 1.0], [0.0, 0.0, 1.0]],
        dtype=like.dtype,
        device=like.device,
    )


def _to_3x3(M: torch.Tensor) -> torch.Tensor:
    bottom = torch.zeros(M.shape[:-2] + (1, 3), dtype=M.dtype, device=M.device)
    bottom[..., 0, 2] = 1.0
    return torch.cat([M, bottom], dim=-2)


def warp_affine_torch(images: torch.Tensor, M: torch.Tensor, out_size: int | Sequence[int]) -> torch.Tensor:
    """cv2.warpAffine(img, M, dsize) for a batch: M [B,2,3] maps source pixels to output pixels.

    Bilinear, zero border, differentiable in images and M. `out_size` is an int or (H, W).
    """
    _assert_shape(images, [None, None, None, None], "warp_affine_torch images")
    B, C, H, W = images.shape
    oh, ow = (out_size, out_size) if isinstance(out_size, int) else (int(out_size[0]), int(out_size[1]))
    M = torch.as_tensor(M, dtype=images.dtype, device=images.device)
    if M.ndim == 2:
        M = M.expand(B, 2, 3)
    _assert_shape(M, [B, 2, 3], "warp_affine_torch M")
    # output grid coords -> output pixels -> source pixels (inverse of M) -> source grid coords
    out_from_norm = torch.linalg.inv(_pixel_to_norm(ow, oh, images))
    theta = _pixel_to_norm(W, H, images) @ torch.linalg.inv(_to_3x3(M)) @ out_from_norm
    grid = F.affine_grid(theta[:, :2, :], [B, C, oh, ow], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def norm_crop_5pt(images: torch.Tensor, points: torch.Tensor, size: int = 112) -> torch.Tensor:
    """insightface `norm_crop` for a batch: each image warped by its own 5-point similarity.

    `points` [B,5,2] in MTCNN order (image-left eye first). Unlike synthetics (which reuses the
    first image's landmarks for the whole batch), every item uses its own points.
    """
    _assert_shape(points, [images.shape[0], 5, 2], "norm_crop_5pt points")
    template = torch.as_tensor(arcface_template(size), dtype=images.dtype, device=images.device)
    M = similarity_transform_5pt(points.to(images.dtype), template.expand_as(points))
    return warp_affine_torch(images, M, size)
