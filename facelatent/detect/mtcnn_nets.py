"""MTCNN P/R/O-Net in plain PyTorch, plus the converter from the `mtcnn==1.0.0` Keras weights.

Layer layouts follow the Keras models of `mtcnn==1.0.0` (valid convolutions, per-channel PReLU,
TF 'same' max pooling). The dense layers after the flatten take torch's C,H,W order; the
converter permutes the Keras kernels, which were trained on a W,H,C flatten, to match.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facelatent.errors import InputFileError

# Keras weight order of each network, as `model.get_weights()` lists them (layer creation order).
_KERAS_ORDER: dict[str, list[tuple[str, str]]] = {
    "pnet": [
        ("conv1", "conv"),
        ("prelu1", "prelu"),
        ("conv2", "conv"),
        ("prelu2", "prelu"),
        ("conv3", "conv"),
        ("prelu3", "prelu"),
        ("conv4_1", "conv"),
        ("conv4_2", "conv"),
    ],
    "rnet": [
        ("conv1", "conv"),
        ("prelu1", "prelu"),
        ("conv2", "conv"),
        ("prelu2", "prelu"),
        ("conv3", "conv"),
        ("prelu3", "prelu"),
        ("fc4", "dense_flat"),
        ("prelu4", "prelu"),
        ("fc5_1", "dense"),
        ("fc5_2", "dense"),
    ],
    "onet": [
        ("conv1", "conv"),
        ("prelu1", "prelu"),
        ("conv2", "conv"),
        ("prelu2", "prelu"),
        ("conv3", "conv"),
        ("prelu3", "prelu"),
        ("conv4", "conv"),
        ("prelu4", "prelu"),
        ("fc5", "dense_flat"),
        ("prelu5", "prelu"),
        ("fc6_1", "dense"),
        ("fc6_2", "dense"),
        ("fc6_3", "dense"),
    ],
}


# R-Net (64 ch) and O-Net (128 ch) both end their conv stack on a 3x3 map.
_FLAT_SIDE = 3


def max_pool_same(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """Max pooling with TensorFlow 'same' padding: the pad goes mostly after, and is never picked."""
    before, after, ceil_fits = [], [], True
    for size in x.shape[-2:]:
        out = -(-size // stride)
        total = max((out - 1) * stride + kernel - size, 0)
        before.append(total // 2)
        after.append(total - total // 2)
        ceil_fits &= total // 2 == 0 and -(-(size - kernel) // stride) + 1 == out
    if ceil_fits:  # torch's ceil mode gives the same windows without a padded copy
        return F.max_pool2d(x, kernel, stride, ceil_mode=True)
    padded = F.pad(x, [before[1], after[1], before[0], after[0]], value=float("-inf"))
    return F.max_pool2d(padded, kernel, stride)


class PNet(nn.Module):
    """Proposal net: fully convolutional, a 12x12 window per output cell at stride 2."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, 3)
        self.prelu1 = nn.PReLU(10)
        self.conv2 = nn.Conv2d(10, 16, 3)
        self.prelu2 = nn.PReLU(16)
        self.conv3 = nn.Conv2d(16, 32, 3)
        self.prelu3 = nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 4, 1)
        self.conv4_2 = nn.Conv2d(32, 2, 1)

    def forward(self, x: torch.Tensor, valid_hw: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x [N,3,H,W] -> (box offsets [N,4,h,w], face probability [N,h,w]).

        `valid_hw` [N,2] gives each image's own size when images of several sizes are padded
        into one batch; the pooling then sees exactly what it would see for that image alone.
        """
        assert x.ndim == 4 and x.shape[1] == 3, x.shape
        y = self.prelu1(self.conv1(x))
        if valid_hw is not None:
            y = y.masked_fill(~_valid_mask(y, valid_hw - 2), float("-inf"))
        y = max_pool_same(y, 2, 2)
        if valid_hw is not None:
            y = y.masked_fill(~_valid_mask(y, torch.div(valid_hw - 1, 2, rounding_mode="floor")), 0.0)
        y = self.prelu2(self.conv2(y))
        y = self.prelu3(self.conv3(y))
        reg = self.conv4_1(y)
        prob = torch.softmax(self.conv4_2(y), dim=1)[:, 1]
        return reg, prob


def _valid_mask(x: torch.Tensor, valid_hw: torch.Tensor) -> torch.Tensor:
    """[N,1,H,W] bool: True inside each image's top-left valid_hw region."""
    rows = torch.arange(x.shape[-2], device=x.device)
    cols = torch.arange(x.shape[-1], device=x.device)
    inside_r = rows[None, :] < valid_hw[:, 0:1]
    inside_c = cols[None, :] < valid_hw[:, 1:2]
    return (inside_r[:, :, None] & inside_c[:, None, :])[:, None]


class RNet(nn.Module):
    """Refinement net on 24x24 crops."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 28, 3)
        self.prelu1 = nn.PReLU(28)
        self.conv2 = nn.Conv2d(28, 48, 3)
        self.prelu2 = nn.PReLU(48)
        self.conv3 = nn.Conv2d(48, 64, 2)
        self.prelu3 = nn.PReLU(64)
        self.fc4 = nn.Linear(576, 128)
        self.prelu4 = nn.PReLU(128)
        self.fc5_1 = nn.Linear(128, 4)
        self.fc5_2 = nn.Linear(128, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [N,3,24,24] -> (box offsets [N,4], face probability [N])."""
        assert x.ndim == 4 and x.shape[1:] == (3, 24, 24), x.shape
        y = max_pool_same(self.prelu1(self.conv1(x)), 3, 2)
        y = F.max_pool2d(self.prelu2(self.conv2(y)), 3, 2)
        y = self.prelu3(self.conv3(y))
        y = self.prelu4(self.fc4(y.flatten(1)))
        return self.fc5_1(y), torch.softmax(self.fc5_2(y), dim=1)[:, 1]


class ONet(nn.Module):
    """Output net on 48x48 crops: box offsets, 5 landmarks, face probability."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3)
        self.prelu1 = nn.PReLU(32)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.prelu2 = nn.PReLU(64)
        self.conv3 = nn.Conv2d(64, 64, 3)
        self.prelu3 = nn.PReLU(64)
        self.conv4 = nn.Conv2d(64, 128, 2)
        self.prelu4 = nn.PReLU(128)
        self.fc5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.fc6_1 = nn.Linear(256, 4)
        self.fc6_2 = nn.Linear(256, 10)
        self.fc6_3 = nn.Linear(256, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x [N,3,48,48] -> (box offsets [N,4], landmarks [N,10] (5 x then 5 y), probability [N])."""
        assert x.ndim == 4 and x.shape[1:] == (3, 48, 48), x.shape
        y = max_pool_same(self.prelu1(self.conv1(x)), 3, 2)
        y = F.max_pool2d(self.prelu2(self.conv2(y)), 3, 2)
        y = max_pool_same(self.prelu3(self.conv3(y)), 2, 2)
        y = self.prelu4(self.conv4(y))
        y = self.prelu5(self.fc5(y.flatten(1)))
        return self.fc6_1(y), self.fc6_2(y), torch.softmax(self.fc6_3(y), dim=1)[:, 1]


class MTCNNNets(nn.Module):
    """The three networks under one state dict: `pnet.*`, `rnet.*`, `onet.*`."""

    def __init__(self):
        super().__init__()
        self.pnet = PNet()
        self.rnet = RNet()
        self.onet = ONet()


def _keras_to_torch(kind: str, arrays: list[np.ndarray]) -> list[np.ndarray]:
    """One Keras layer's arrays -> the torch module's (weight, bias) or (weight,)."""
    if kind == "prelu":
        return [arrays[0].reshape(-1)]  # (1,1,C) shared over H,W -> per-channel (C,)
    kernel, bias = arrays
    if kind == "conv":
        return [kernel.transpose(3, 2, 0, 1), bias]  # (kh,kw,in,out) -> (out,in,kh,kw)
    if kind == "dense_flat":
        # Keras permutes to (W,H,C) before its flatten; torch flattens (C,H,W).
        channels = kernel.shape[0] // (_FLAT_SIDE * _FLAT_SIDE)
        kernel = kernel.reshape(_FLAT_SIDE, _FLAT_SIDE, channels, -1).transpose(2, 1, 0, 3).reshape(kernel.shape)
    return [kernel.T, bias]  # (in,out) -> (out,in)


def convert_mtcnn_weights(weights_dir: Path) -> dict[str, torch.Tensor]:
    """Read `pnet.lz4`, `rnet.lz4`, `onet.lz4` (mtcnn==1.0.0, Keras layout) -> our state dict."""
    import joblib  # only the one-off conversion needs it

    weights_dir = Path(weights_dir)
    template = MTCNNNets().state_dict()
    state: dict[str, torch.Tensor] = {}
    for net, layers in _KERAS_ORDER.items():
        path = weights_dir / f"{net}.lz4"
        if not path.exists():
            raise InputFileError(path, "MTCNN weight file is missing")
        # joblib unpickles; acceptable here only because the file comes from the sha256-pinned
        # mtcnn==1.0.0 wheel and is converted once to safetensors.
        arrays = list(joblib.load(path))
        for name, kind in layers:
            count = 1 if kind == "prelu" else 2
            if len(arrays) < count:
                raise InputFileError(path, f"too few arrays for layer {name}")
            converted = _keras_to_torch(kind, [np.asarray(a, dtype=np.float32) for a in arrays[:count]])
            arrays = arrays[count:]
            for suffix, value in zip(("weight", "bias"), converted, strict=False):
                key = f"{net}.{name}.{suffix}"
                tensor = torch.from_numpy(np.ascontiguousarray(value))
                if key not in template or template[key].shape != tensor.shape:
                    raise InputFileError(
                        path,
                        f"array for {key} has shape {tuple(tensor.shape)}, "
                        f"expected {tuple(template[key].shape) if key in template else 'none'}",
                    )
                state[key] = tensor
        if arrays:
            raise InputFileError(path, f"{len(arrays)} unexpected extra arrays")
    return state
