"""AdaFace IR-18/34/50/101 backbones (mk-minchul/AdaFace `net.py`) with the original key names.

AdaFace `.ckpt` files are Lightning checkpoints: `state_dict` keys are `model.<backbone key>` plus
`head.*` (the margin head's class centres), which inference does not use and we drop by name.
Input: BGR (channels flipped from RGB), (x / 255 - 0.5) / 0.5, 112x112. Output: the first element
of the original's `(x / |x|, |x|)` tuple, i.e. the unit-length 512-d embedding.
Structure: input_layer = conv3x3 -> BN -> PReLU; body = BasicBlockIR units (res_layer = BN, conv3x3,
BN, PReLU, conv3x3 with stride, BN; shortcut = 1x1-conv+BN when channels change, else a stride-s
1x1 max pool); output_layer = BN2d, Dropout, Flatten, Linear(512*7*7, 512), BatchNorm1d(affine=False).
"""

from __future__ import annotations

import re

import torch
from torch import nn

from facelatent.embeddings.base import Embedder, assert_shape
from facelatent.embeddings.spec import ADAFACE_ALIASES
from facelatent.errors import InputFileError

ADAFACE_UNITS: dict[int, list[int]] = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 14, 3], 100: [3, 13, 30, 3]}
STAGE_WIDTHS = (64, 128, 256, 512)


class BasicBlockIR(nn.Module):
    def __init__(self, in_channels: int, depth: int, stride: int):
        super().__init__()
        if in_channels == depth:
            self.shortcut_layer = nn.MaxPool2d(1, stride)  # parameter-free subsampling
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(in_channels, depth, 1, stride, bias=False), nn.BatchNorm2d(depth)
            )
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.Conv2d(in_channels, depth, 3, 1, 1, bias=False),
            nn.BatchNorm2d(depth),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, 3, stride, 1, bias=False),
            nn.BatchNorm2d(depth),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


def adaface_units(units: list[int]) -> list[tuple[int, int, int]]:
    """(in_channels, depth, stride) for every unit: each stage starts with a stride-2 unit."""
    out, in_channels = [], 64
    for depth, count in zip(STAGE_WIDTHS, units, strict=False):
        out.append((in_channels, depth, 2))
        out += [(depth, depth, 1)] * (count - 1)
        in_channels = depth
    return out


class AdaFaceEmbedder(Embedder):
    """AdaFace IR backbone; `num_layers` in {18, 34, 50, 100} (101 is accepted as AdaFace's name for 100)."""

    kind = "adaface"

    def __init__(self, num_layers: int = 50, embedding_dim: int = 512, image_size: int = 112):
        super().__init__()
        num_layers = ADAFACE_ALIASES.get(num_layers, num_layers)
        assert num_layers in ADAFACE_UNITS, f"AdaFace IR depth {num_layers} is not supported"
        assert image_size in (112, 224), image_size
        self.num_layers = num_layers
        self.embedding_dim = embedding_dim
        self.input_size = (image_size, image_size)
        self.input_layer = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64))
        self.body = nn.Sequential(*(BasicBlockIR(*unit) for unit in adaface_units(ADAFACE_UNITS[num_layers])))
        spatial = image_size // 16
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(512),
            nn.Dropout(0.4),  # identity at inference; kept so the Linear/BN indices match the original
            nn.Flatten(),
            nn.Linear(512 * spatial * spatial, embedding_dim),
            nn.BatchNorm1d(embedding_dim, affine=False),
        )

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        return (images.flip(1) / 255.0 - 0.5) / 0.5  # RGB -> BGR

    def forward_with_norm(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The original's output: (unit-length embedding, its norm [B, 1])."""
        assert_shape(x, [None, 3, *self.input_size], "x")
        x = self.output_layer(self.body(self.input_layer(x)))
        norm = torch.linalg.vector_norm(x, dim=1, keepdim=True)
        return x / norm, norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_norm(x)[0]


def adaface_backbone_state(state: dict[str, torch.Tensor], path) -> dict[str, torch.Tensor]:
    """Strip the Lightning `model.` prefix and drop the `head.` entries; any other prefix is an error.

    A state dict without `model.` keys is taken to be a bare backbone state dict.
    """
    if not any(k.startswith("model.") for k in state):
        return dict(state)
    unknown = [k for k in state if not k.startswith(("model.", "head."))]
    if unknown:
        raise InputFileError(path, f"AdaFace checkpoint key '{unknown[0]}' is neither model.* nor head.*")
    return {k[len("model.") :]: v for k, v in state.items() if k.startswith("model.")}


def infer_adaface_layers(state: dict[str, torch.Tensor]) -> int | None:
    """Depth (18/34/50/100) from the number of units per width in `body.{i}.res_layer.1.weight`."""
    depths: dict[int, int] = {}
    for key, value in state.items():
        match = re.fullmatch(r"body\.(\d+)\.res_layer\.1\.weight", key)
        if match:
            depths[int(match.group(1))] = int(value.shape[0])
    if not depths:
        return None
    units = [sum(1 for d in depths.values() if d == width) for width in STAGE_WIDTHS]
    return next((n for n, u in ADAFACE_UNITS.items() if u == units), None)
