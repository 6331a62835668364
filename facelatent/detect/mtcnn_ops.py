"""Numeric building blocks of MTCNN, written to reproduce `mtcnn==1.0.0` (TensorFlow) exactly.

The resampling ops replay TensorFlow's CPU kernels in float32, in the same order of operations:
`tf.image.resize(..., AREA)` and `tf.image.crop_and_resize(..., 'bilinear')`. The box arithmetic
is float64 numpy, with the float32 steps where the original mixed TF tensors into numpy.
"""

from __future__ import annotations

import numpy as np
import torch

# ---------------------------------------------------------------------------------------------
# image pyramid and area resize


def pyramid_scales(
    height: int, width: int, min_face_size: float, scale_factor: float, min_size: int = 12
) -> np.ndarray:
    """Scales of the image pyramid: min_size/min_face_size * scale_factor**k, as mtcnn counts them."""
    min_dim = min(width, height)
    count = round(-((np.log(min_dim / min_size) / np.log(scale_factor)) + 1))
    return (min_size / min_face_size) * scale_factor ** np.arange(max(count, 0))


def scaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """Pyramid level size: the float64 product truncated, as TF's int32 cast of the size does."""
    size = np.asarray([height, width]) * scale
    return int(size[0]), int(size[1])


def _area_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per output index: input indices [out, K] and float32 weights [out, K] of TF's ResizeArea.

    Mirrors the kernel: scale = in/out in float32, cell [o*scale, (o+1)*scale), partial first and
    last pixels weighted by their overlap, indices clamped into the image. Unused taps weigh 0.
    """
    scale = np.float32(in_size) / np.float32(out_size)
    pos = np.arange(out_size, dtype=np.float32)
    lo = pos * scale
    hi = (pos + np.float32(1)) * scale
    start = np.floor(lo).astype(np.int64)
    end = np.ceil(hi).astype(np.int64)
    taps = int((end - start).max())
    idx = start[:, None] + np.arange(taps)[None, :]
    i = idx.astype(np.float32)
    i1 = i + np.float32(1)
    w_before = np.where(i1 > hi[:, None], scale, i1 - lo[:, None])  # i starts before the cell
    w_inside = np.where(i1 > hi[:, None], hi[:, None] - i, np.float32(1))
    weights = np.where(i < lo[:, None], w_before, w_inside).astype(np.float32)
    weights[idx >= end[:, None]] = 0
    return np.clip(idx, 0, in_size - 1), weights


def _weighted_tap_sum(x: torch.Tensor, idx: np.ndarray, weights: np.ndarray) -> torch.Tensor:
    """sum_k weights[o,k] * x[idx[o,k]] along dim 0, accumulated tap by tap like TF."""
    idx_t = torch.as_tensor(idx, device=x.device)
    w_t = torch.as_tensor(weights, device=x.device).reshape(*weights.shape, *([1] * (x.ndim - 1)))
    total = x.index_select(0, idx_t[:, 0]).mul_(w_t[:, 0])
    tap = torch.empty_like(total)
    for k in range(1, idx.shape[1]):
        torch.index_select(x, 0, idx_t[:, k], out=tap)
        total.add_(tap.mul_(w_t[:, k]))
    return total


def width_major(images: torch.Tensor) -> torch.Tensor:
    """[N,H,W,C] channels-last -> contiguous [W,H,N,C], the layout `area_resize_width_major` reads."""
    return images.permute(2, 1, 0, 3).contiguous()


def area_resize_width_major(src: torch.Tensor, out_hw: tuple[int, int]) -> torch.Tensor:
    """TF `resize(..., method=AREA)` of width-major float32 images [W,H,N,C] -> [N,C,h,w] channels-last.

    TF sums each row's pixels across x first, then the rows weighted by y, then scales by
    1/(sy*sx); the same order here keeps the result bit-identical. Each pass gathers along the
    leading axis, so every tap copies whole contiguous slices.
    """
    assert src.ndim == 4 and src.dtype == torch.float32, (src.shape, src.dtype)
    in_w, in_h = src.shape[0], src.shape[1]
    out_h, out_w = out_hw
    idx_x, w_x = _area_taps(in_w, out_w)
    idx_y, w_y = _area_taps(in_h, out_h)
    sy = np.float32(in_h) / np.float32(out_h)
    sx = np.float32(in_w) / np.float32(out_w)
    norm = np.float32(1.0 / np.float64(np.float32(sy * sx)))
    rows = _weighted_tap_sum(src, idx_x, w_x)  # [w,H,N,C]
    cells = _weighted_tap_sum(rows.transpose(0, 1).contiguous(), idx_y, w_y)  # [h,w,N,C]
    return cells.mul_(float(norm)).permute(2, 0, 1, 3).contiguous().permute(0, 3, 1, 2)  # channels-last


def area_resize(images: torch.Tensor, out_hw: tuple[int, int]) -> torch.Tensor:
    """TF `resize(..., method=AREA)` of float32 images [N,C,H,W] -> [N,C,h,w] float32."""
    assert images.ndim == 4 and images.dtype == torch.float32, (images.shape, images.dtype)
    return area_resize_width_major(width_major(images.permute(0, 2, 3, 1)), out_hw).contiguous()


# ---------------------------------------------------------------------------------------------
# crop and resize


def normalized_boxes(boxes_xyxy: np.ndarray, heights: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Pixel boxes -> TF crop boxes [y1/H, x1/W, y2/H, x2/W], float64 division then float32."""
    scale = np.stack([heights, widths, heights, widths], axis=1).astype(np.float64)
    return (boxes_xyxy[:, [1, 0, 3, 2]] / scale).astype(np.float32)


def _sample_axis(lo: torch.Tensor, hi: torch.Tensor, size: torch.Tensor, crop: int):
    """TF crop_and_resize sample positions along one axis, float32: (floor, ceil, lerp, inside)."""
    extent = (size - 1).to(torch.float32)
    step = (hi - lo) * extent / float(crop - 1)
    grid = torch.arange(crop, device=lo.device, dtype=torch.float32)
    pos = (lo * extent)[:, None] + grid[None, :] * step[:, None]
    inside = (pos >= 0) & (pos <= extent[:, None])
    safe = torch.where(inside, pos, torch.zeros_like(pos))
    low = torch.floor(safe)
    return low.long(), torch.ceil(safe).long(), safe - low, inside


def normalize_pixels(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 -> float32 (v - 127.5) / 128, MTCNN's input scaling; exact in float32."""
    return (pixels.float() - 127.5) / 128


def pack_images(images: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """[H,W,C] images of any sizes -> (pixels [sum H*W, C], start row of each image [B], sizes [B,2])."""
    sizes = torch.tensor([img.shape[:2] for img in images], dtype=torch.long)
    counts = sizes[:, 0] * sizes[:, 1]
    starts = torch.cumsum(counts, 0) - counts
    pixels = torch.cat([img.reshape(-1, img.shape[2]) for img in images], dim=0)
    return pixels, starts.to(pixels.device), sizes.to(pixels.device)


def crop_and_resize(
    pixels: torch.Tensor,
    starts: torch.Tensor,
    sizes_hw: torch.Tensor,
    boxes: torch.Tensor,
    box_image: torch.Tensor,
    crop: int,
) -> torch.Tensor:
    """Bilinear crops like `tf.image.crop_and_resize`, all boxes of all images at once.

    Images come packed by `pack_images` (no padding), float32 or uint8 (then normalised by
    `normalize_pixels` as they are read, which gives the same values); boxes [N,4] float32 normalised
    (y1,x1,y2,x2) as TF takes them; box_image [N] long. Samples outside an image read 0,
    TF's extrapolation value. Returns [N,C,crop,crop] (channels-last memory).
    """
    assert pixels.ndim == 2 and boxes.ndim == 2 and boxes.shape[1] == 4, (pixels.shape, boxes.shape)
    n, channels = boxes.shape[0], pixels.shape[1]
    if n == 0:
        return pixels.new_zeros((0, channels, crop, crop))
    hw = sizes_hw[box_image]
    y0, y1, ly, in_y = _sample_axis(boxes[:, 0], boxes[:, 2], hw[:, 0], crop)
    x0, x1, lx, in_x = _sample_axis(boxes[:, 1], boxes[:, 3], hw[:, 1], crop)
    base = starts[box_image][:, None, None]
    width = hw[:, 1][:, None, None]

    def pick(rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        values = pixels[base + rows[:, :, None] * width + cols[:, None, :]]  # [N,crop,crop,C]
        return normalize_pixels(values) if values.dtype == torch.uint8 else values

    lx = lx[:, None, :, None]
    top_left, top_right = pick(y0, x0), pick(y0, x1)
    bottom_left, bottom_right = pick(y1, x0), pick(y1, x1)
    top = top_left + (top_right - top_left) * lx
    bottom = bottom_left + (bottom_right - bottom_left) * lx
    out = top + (bottom - top) * ly[:, :, None, None]
    inside = (in_y[:, :, None] & in_x[:, None, :])[..., None]
    out = torch.where(inside, out, torch.zeros_like(out))
    return out.permute(0, 3, 1, 2)  # NCHW view, channels-last in memory


# ---------------------------------------------------------------------------------------------
# boxes


def descending_order(scores: np.ndarray) -> np.ndarray:
    """mtcnn's sort: numpy's default argsort, reversed (ties come out as numpy leaves them)."""
    return np.argsort(scores)[::-1]


def pnet_candidates(reg: np.ndarray, prob: np.ndarray, threshold: float, scale: float) -> np.ndarray:
    """One image's P-Net maps (reg [4,h,w] float32, prob [h,w]) -> rows [x1,y1,x2,y2,score].

    Cell (y, x) spans pixels 2x+1 .. 2x+12 of the scaled image; offsets are relative to its
    11-pixel width, as mtcnn==1.0.0 computes it. Rows are sorted by score, then unscaled.
    """
    ys, xs = np.where(prob > threshold)
    offsets = reg[:, ys, xs].astype(np.float64)
    left, top = xs * 2 + 1, ys * 2 + 1
    right, bottom = xs * 2 + 12, ys * 2 + 12
    rows = np.stack(
        [
            left + offsets[0] * 11,
            top + offsets[1] * 11,
            right + offsets[2] * 11,
            bottom + offsets[3] * 11,
            prob[ys, xs].astype(np.float64),
        ],
        axis=1,
    )
    rows = rows[descending_order(rows[:, 4])]
    rows[:, 0:4] = rows[:, 0:4] / scale
    return rows


def _pairwise_overlap(boxes: np.ndarray, rows: slice, method: str) -> np.ndarray:
    """Overlap of boxes[rows] (axis 0) with all boxes (axis 1): IoU ('union') or over the smaller ('min')."""
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    part = boxes[rows]
    w = np.maximum(0, np.minimum(part[:, None, 2], boxes[None, :, 2]) - np.maximum(part[:, None, 0], boxes[None, :, 0]))
    h = np.maximum(0, np.minimum(part[:, None, 3], boxes[None, :, 3]) - np.maximum(part[:, None, 1], boxes[None, :, 1]))
    inter = h * w
    if method == "union":
        denom = area[rows, None] + area[None, :] - inter
    elif method == "min":
        denom = np.minimum(area[rows, None], area[None, :])
    else:
        raise ValueError(f"unknown overlap method {method!r}")
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / denom


def nms_keep(boxes: np.ndarray, threshold: float, method: str = "union", chunk: int = 2048) -> np.ndarray:
    """mtcnn==1.0.0's NMS on boxes already in rank order: keep a box unless ANY higher-ranked box
    (kept or not) overlaps it by more than `threshold`. Returns the kept indices, in order.

    Worked in row chunks so that thousands of P-Net proposals need no full N x N matrix.
    """
    n = boxes.shape[0]
    suppressed = np.zeros(n, dtype=bool)
    for start in range(0, n, chunk):
        rows = slice(start, min(start + chunk, n))
        over = _pairwise_overlap(boxes, rows, method) > threshold
        ranks = np.arange(rows.start, rows.stop)[:, None]
        suppressed |= (over & (ranks < np.arange(n)[None, :])).any(axis=0)
    return np.flatnonzero(~suppressed)


def sort_and_nms(rows: np.ndarray, threshold: float, method: str = "union") -> np.ndarray:
    """Sort rows (x1,y1,x2,y2,score,...) by score, descending, then NMS them."""
    rows = rows[descending_order(rows[:, 4])]
    return rows[nms_keep(rows[:, 0:4], threshold, method)]


def square_boxes(rows: np.ndarray) -> np.ndarray:
    """Grow each box's short side to its long side about the same centre (no rounding)."""
    rows = rows.copy()
    w = rows[:, 2] - rows[:, 0]
    h = rows[:, 3] - rows[:, 1]
    side = np.maximum(w, h)
    rows[:, 0] = rows[:, 0] + w * 0.5 - side * 0.5
    rows[:, 1] = rows[:, 1] + h * 0.5 - side * 0.5
    rows[:, 2] = rows[:, 0] + side
    rows[:, 3] = rows[:, 1] + side
    return rows


def refine_boxes(rows: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Shift box corners by offsets x (w+1, h+1); the product is float32 as in the TF original."""
    rows = rows.copy()
    w = rows[:, 2] - rows[:, 0] + 1
    h = rows[:, 3] - rows[:, 1] + 1
    sizes = np.stack([w, h, w, h], axis=1).astype(np.float32)
    rows[:, 0:4] += (offsets.astype(np.float32) * sizes).astype(np.float64)
    return rows


def place_landmarks(rows: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """O-Net landmarks (5 x then 5 y, in box units) -> pixels, stored as float32 like the original."""
    w = rows[:, 2:3] - rows[:, 0:1] + 1
    h = rows[:, 3:4] - rows[:, 1:2] + 1
    xs = w * landmarks[:, 0:5] + rows[:, 0:1] - 1
    ys = h * landmarks[:, 5:10] + rows[:, 1:2] - 1
    return np.concatenate([xs, ys], axis=1).astype(np.float32).astype(np.float64)
