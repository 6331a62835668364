"""MTCNN face detector in PyTorch that reproduces the `mtcnn==1.0.0` package (TensorFlow).

Same stages, thresholds, resampling and box arithmetic as the original, so `detect_faces`
returns the original's boxes and keypoints. `detect` runs each stage over a whole list of
images: P-Net per pyramid level over batches of similar-size images (padded; each image's own
size is masked), R-Net and O-Net over all boxes together (in fixed-size passes).
The original pads a batch to its largest image and shares one pyramid; here every image keeps
its own size and pyramid, so a batched result equals the single-image one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from facelatent.checkpoints import read_safetensors_checkpoint
from facelatent.detect.mtcnn_nets import MTCNNNets, convert_mtcnn_weights
from facelatent.detect.mtcnn_ops import (
    area_resize_width_major,
    crop_and_resize,
    nms_keep,
    normalize_pixels,
    normalized_boxes,
    place_landmarks,
    pnet_candidates,
    pyramid_scales,
    refine_boxes,
    scaled_size,
    sort_and_nms,
    square_boxes,
)
from facelatent.errors import InputFileError

__all__ = ["MTCNN", "MTCNNConfig", "convert_mtcnn_weights", "load_mtcnn_nets"]

# Column layout of the raw rows: box, score, 5 landmark x, 5 landmark y.
RAW_COLUMNS = ["x1", "y1", "x2", "y2", "confidence"] + [f"lm{i}_x" for i in range(5)] + [f"lm{i}_y" for i in range(5)]
_KEYPOINTS = ["left_eye", "right_eye", "nose", "mouth_left", "mouth_right"]
_KEYPOINT_ORDER = ["nose", "mouth_right", "right_eye", "left_eye", "mouth_left"]  # the package's dict order
_PNET_MIN_INPUT = 12  # P-Net's receptive field; a smaller pyramid level has no output cell


@dataclass(frozen=True)
class MTCNNConfig:
    """Detection settings; the defaults are mtcnn==1.0.0's."""

    min_face_size: float = 20
    scale_factor: float = 0.709
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.8)
    nms_pnet_scale: float = 0.5  # within one pyramid level
    nms_pnet: float = 0.7  # across levels
    nms_rnet: float = 0.7
    nms_onet: float = 0.7  # overlap over the smaller box ("min")
    chunk_pixels: int = 2_000_000  # P-Net takes images in parts of at most this many pixels
    box_batch: int = 256  # R-Net / O-Net crops per forward pass


def load_mtcnn_nets(weights: str | Path | None = None) -> MTCNNNets:
    """Build the three nets from a `kind="mtcnn"` safetensors checkpoint (default: the fetched one)."""
    from facelatent.paths import model_path

    path = Path(weights) if weights is not None else model_path("mtcnn")
    ckpt = read_safetensors_checkpoint(path)
    if ckpt.kind != "mtcnn":
        raise InputFileError(path, f"checkpoint kind is '{ckpt.kind}', expected 'mtcnn'")
    nets = MTCNNNets()
    try:
        nets.load_state_dict(ckpt.state_dict, strict=True)
    except RuntimeError as exc:
        raise InputFileError(path, f"weights do not fit the MTCNN nets ({str(exc).splitlines()[0]})") from exc
    return nets.eval().requires_grad_(False)


def as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Check one input image: RGB uint8 HxWx3; greyscale HxW (or HxWx1) becomes RGB."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got dtype {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be HxWx3 RGB or HxW greyscale, got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image is empty, shape {image.shape}")
    return image


@dataclass
class _Inputs:
    """The images of one `detect` call, uint8, packed without padding, and a [H,W,3] view of each."""

    images: list[torch.Tensor]
    pixels: torch.Tensor  # [sum H*W, 3] uint8
    starts: torch.Tensor  # [B] first pixel row of each image
    sizes: torch.Tensor  # [B,2] (H, W)

    @classmethod
    def from_uint8(cls, images: list[np.ndarray], device: torch.device) -> "_Inputs":
        pixels = torch.from_numpy(np.concatenate([img.reshape(-1, 3) for img in images], axis=0)).to(device)
        sizes = torch.tensor([img.shape[:2] for img in images], dtype=torch.long, device=device)
        counts = sizes[:, 0] * sizes[:, 1]
        starts = torch.cumsum(counts, 0) - counts
        views = [
            pixels[start : start + h * w].view(h, w, 3)
            for start, (h, w) in zip(starts.tolist(), sizes.tolist(), strict=True)
        ]
        return cls(views, pixels, starts, sizes)


def _parts(sizes: list[tuple[int, int]], budget: int) -> list[list[int]]:
    """Image indices, same sizes next to each other, cut into parts of at most `budget` pixels
    (at least one image each): P-Net works one part at a time to bound its memory."""
    order = sorted(range(len(sizes)), key=lambda i: (sizes[i][0] * sizes[i][1], sizes[i]), reverse=True)
    parts: list[list[int]] = []
    total = 0
    for i in order:
        pixels = sizes[i][0] * sizes[i][1]
        if not parts or total + pixels > budget:
            parts.append([])
            total = 0
        parts[-1].append(i)
        total += pixels
    return parts


def _batches(members: list[int], level_sizes: dict[int, tuple[int, int]], min_fill: float = 0.75) -> list[list[int]]:
    """Members (largest first) grouped for one P-Net call each: an image joins the current batch
    while padding to the batch's largest size leaves at least `min_fill` of it real pixels."""
    groups: list[list[int]] = []
    for i in members:
        if groups:
            trial = groups[-1] + [i]
            h_max = max(level_sizes[j][0] for j in trial)
            w_max = max(level_sizes[j][1] for j in trial)
            used = sum(level_sizes[j][0] * level_sizes[j][1] for j in trial)
            if used >= min_fill * h_max * w_max * len(trial):
                groups[-1] = trial
                continue
        groups.append([i])
    return groups


def _same_size_runs(members: list[int], inputs: _Inputs) -> list[list[int]]:
    """Positions in `members`, split into runs of consecutive images of one source size."""
    runs: list[list[int]] = []
    for pos, i in enumerate(members):
        if runs and inputs.images[members[runs[-1][0]]].shape == inputs.images[i].shape:
            runs[-1].append(pos)
        else:
            runs.append([pos])
    return runs


def _pyramid_level(
    inputs: _Inputs,
    members: list[int],
    level_sizes: dict[int, tuple[int, int]],
    stacks: dict[tuple[int, ...], torch.Tensor],
) -> torch.Tensor:
    """Area-resize each member image to its size at this level; pad into one [M,3,h,w] batch.

    Images of one size are resized together from a width-major stack [W,H,n,3], kept in `stacks`
    for the next levels (a chunk of same-size images is the same at every level).
    """
    runs = _same_size_runs(members, inputs)
    resized = []
    for run in runs:
        key = tuple(members[p] for p in run)
        if key not in stacks:  # one transposed copy per image: faster than a strided permute of a stack
            stacks[key] = normalize_pixels(torch.stack([inputs.images[i].transpose(0, 1) for i in key], dim=2))
        resized.append(area_resize_width_major(stacks[key], level_sizes[key[0]]))
    if len(runs) == 1:
        return resized[0]
    h_max = max(level_sizes[i][0] for i in members)
    w_max = max(level_sizes[i][1] for i in members)
    out = resized[0].new_zeros((len(members), 3, h_max, w_max)).contiguous(memory_format=torch.channels_last)
    for run, images in zip(runs, resized, strict=True):
        out[run[0] : run[-1] + 1, :, : images.shape[2], : images.shape[3]] = images
    return out


def _stage_pnet(nets: MTCNNNets, inputs: _Inputs, cfg: MTCNNConfig) -> list[np.ndarray]:
    """P-Net over every pyramid level of every image -> per image, squared rows [n,5]."""
    sizes = [(int(h), int(w)) for h, w in inputs.sizes.tolist()]
    scales = [pyramid_scales(h, w, cfg.min_face_size, cfg.scale_factor) for h, w in sizes]
    per_image: list[list[np.ndarray]] = [[] for _ in sizes]
    for part in _parts(sizes, cfg.chunk_pixels):
        stacks: dict[tuple[int, ...], torch.Tensor] = {}
        for level in range(max(len(scales[i]) for i in part)):
            level_sizes = {i: scaled_size(*sizes[i], scales[i][level]) for i in part if level < len(scales[i])}
            members = [i for i in part if i in level_sizes and min(level_sizes[i]) >= _PNET_MIN_INPUT]
            for group in _batches(members, level_sizes):
                batch = _pyramid_level(inputs, group, level_sizes, stacks)
                for i, rows in zip(
                    group, _pnet_level(nets, batch, group, level_sizes, scales, level, cfg), strict=True
                ):
                    per_image[i].append(rows)
    out = []
    for parts in per_image:
        rows = np.concatenate(parts, axis=0) if parts else np.empty((0, 5))
        out.append(square_boxes(sort_and_nms(rows, cfg.nms_pnet)))
    return out


def _pnet_level(
    nets: MTCNNNets,
    batch: torch.Tensor,
    members: list[int],
    level_sizes: dict[int, tuple[int, int]],
    scales: list[np.ndarray],
    level: int,
    cfg: MTCNNConfig,
) -> list[np.ndarray]:
    """P-Net on a batch of one pyramid level -> per image, candidates after the level's NMS."""
    valid = None
    if len({level_sizes[i] for i in members}) > 1:  # padded: tell P-Net each image's own size
        valid = torch.tensor([level_sizes[i] for i in members], dtype=torch.long, device=batch.device)
    reg, prob = nets.pnet(batch, valid)
    reg, prob = reg.cpu().numpy(), prob.cpu().numpy()
    out = []
    for pos, i in enumerate(members):
        oh, ow = ((v - 1) // 2 - 4 for v in level_sizes[i])
        rows = pnet_candidates(reg[pos, :, :oh, :ow], prob[pos, :oh, :ow], cfg.thresholds[0], scales[i][level])
        out.append(rows[nms_keep(rows[:, 0:4], cfg.nms_pnet_scale)])
    return out


def _run_on_crops(
    net: torch.nn.Module, inputs: _Inputs, rows: list[np.ndarray], crop: int, box_batch: int
) -> tuple[list[np.ndarray], np.ndarray]:
    """Crop every image's boxes and run `net` on them, `box_batch` crops per pass
    -> (the net's outputs as numpy, the owning image of each box)."""
    owner = np.concatenate([np.full(len(r), i, dtype=np.int64) for i, r in enumerate(rows)])
    boxes = np.concatenate(rows, axis=0)
    hw = inputs.sizes.cpu().numpy()[owner]
    device = inputs.pixels.device
    norm = torch.as_tensor(normalized_boxes(boxes[:, 0:4], hw[:, 0], hw[:, 1]), device=device)
    owner_t = torch.as_tensor(owner, device=device)
    outputs = []
    for start in range(0, len(boxes), box_batch):
        part = slice(start, start + box_batch)
        crops = crop_and_resize(inputs.pixels, inputs.starts, inputs.sizes, norm[part], owner_t[part], crop)
        outputs.append([t.cpu().numpy() for t in net(crops)])
    return [np.concatenate(column, axis=0) for column in zip(*outputs, strict=False)], owner


def _split(rows: np.ndarray, owner: np.ndarray, count: int) -> list[np.ndarray]:
    """Rows of all images -> one array per image, order kept."""
    return [rows[owner == i] for i in range(count)]


def _stage_rnet(nets: MTCNNNets, inputs: _Inputs, rows: list[np.ndarray], cfg: MTCNNConfig) -> list[np.ndarray]:
    """R-Net over all P-Net boxes at once -> per image, squared rows [n,5]."""
    if sum(len(r) for r in rows) == 0:
        return rows
    (offsets, prob), owner = _run_on_crops(nets.rnet, inputs, rows, 24, cfg.box_batch)
    boxes = np.concatenate(rows, axis=0)
    boxes[:, 4] = prob
    boxes = refine_boxes(boxes, offsets)
    keep = boxes[:, 4] > cfg.thresholds[1]
    return [square_boxes(sort_and_nms(r, cfg.nms_rnet)) for r in _split(boxes[keep], owner[keep], len(rows))]


def _stage_onet(nets: MTCNNNets, inputs: _Inputs, rows: list[np.ndarray], cfg: MTCNNConfig) -> list[np.ndarray]:
    """O-Net over all R-Net boxes at once -> per image, rows [n,15] (see RAW_COLUMNS)."""
    if sum(len(r) for r in rows) == 0:
        return [np.empty((0, len(RAW_COLUMNS))) for _ in rows]
    (offsets, landmarks, prob), owner = _run_on_crops(nets.onet, inputs, rows, 48, cfg.box_batch)
    boxes = np.concatenate(rows, axis=0)
    points = place_landmarks(boxes, landmarks)  # relative to the boxes O-Net saw
    boxes[:, 4] = prob
    boxes = np.concatenate([refine_boxes(boxes, offsets), points], axis=1)
    keep = boxes[:, 4] > cfg.thresholds[2]
    return [sort_and_nms(r, cfg.nms_onet, "min") for r in _split(boxes[keep], owner[keep], len(rows))]


def rows_to_faces(rows: np.ndarray, height: int, width: int) -> list[dict]:
    """Raw rows -> mtcnn's dicts: box [x, y, w, h] clipped into the image then rounded,
    confidence, keypoints rounded (not clipped), as `detect_faces` of mtcnn==1.0.0 returns them."""
    faces = []
    for row in rows:
        x1, x2 = (min(max(v, 0), width - 1) for v in (row[0], row[2]))
        y1, y2 = (min(max(v, 0), height - 1) for v in (row[1], row[3]))
        box = np.round(np.asarray([x1, y1, x2 - x1, y2 - y1])).astype(int).tolist()
        points = np.round(row[5:15]).astype(int)
        named = {name: [int(points[k]), int(points[k + 5])] for k, name in enumerate(_KEYPOINTS)}
        faces.append(
            {"box": box, "confidence": float(row[4]), "keypoints": {name: named[name] for name in _KEYPOINT_ORDER}}
        )
    return faces


class MTCNN:
    """Face detector with the interface of `mtcnn.MTCNN().detect_faces` (RGB uint8 in)."""

    def __init__(
        self,
        device: str | torch.device = "cpu",
        weights: str | Path | None = None,
        min_face_size: float = MTCNNConfig.min_face_size,
        scale_factor: float = MTCNNConfig.scale_factor,
        thresholds: tuple[float, float, float] = MTCNNConfig.thresholds,
    ):
        if not 0 < scale_factor < 1:
            raise ValueError(f"scale_factor must be in (0, 1), got {scale_factor}")
        if min_face_size <= 0 or len(thresholds) != 3:
            raise ValueError("min_face_size must be > 0 and thresholds must have 3 values")
        self.device = torch.device(device)
        self.config = MTCNNConfig(
            min_face_size=min_face_size, scale_factor=scale_factor, thresholds=tuple(float(t) for t in thresholds)
        )
        # channels-last: several times faster for these thin convolutions and poolings on CPU
        self.nets = load_mtcnn_nets(weights).to(self.device, memory_format=torch.channels_last)

    def detect_faces(self, image: np.ndarray) -> list[dict]:
        """One RGB uint8 HxWx3 (or greyscale HxW) image -> list of {box, confidence, keypoints}."""
        return self.detect([image])[0]

    def detect(self, images: list[np.ndarray]) -> list[list[dict]]:
        """Many images, each stage run once over all of them -> one face list per image."""
        images = [as_rgb_uint8(img) for img in images]
        raw = self.detect_raw(images)
        return [rows_to_faces(rows, img.shape[0], img.shape[1]) for rows, img in zip(raw, images, strict=True)]

    @torch.inference_mode()
    def detect_raw(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Unrounded, unclipped rows per image, float64 [n,15]: x1,y1,x2,y2, confidence,
        5 landmark x then 5 y (left_eye, right_eye, nose, mouth_left, mouth_right)."""
        images = [as_rgb_uint8(img) for img in images]
        if not images:
            return []
        inputs = _Inputs.from_uint8(images, self.device)
        rows = _stage_pnet(self.nets, inputs, self.config)
        rows = _stage_rnet(self.nets, inputs, rows, self.config)
        return _stage_onet(self.nets, inputs, rows, self.config)
