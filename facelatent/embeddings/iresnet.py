"""insightface arcface_torch IResNet-18/34/50/100/200 with the original state-dict key names.

Loads `backbone.pth` files (arcface_torch, Idiap/bob IResNet checkpoints) strictly. Input: RGB
112x112 mapped to [-1, 1]; output: the 512-d `features` (BatchNorm1d) vector, not normalised.
Structure (arcface_torch `backbones/iresnet.py`): conv3x3 -> BN -> PReLU stem; four stages of
IBasicBlock (BN, conv3x3, BN, PReLU, conv3x3 with the stage's stride 2, BN; plus a 1x1-conv+BN
downsample on each stage's first block); BN2d -> flatten -> (dropout) -> Linear(512*7*7) -> BN1d.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from facelatent.embeddings.base import Embedder, assert_shape
from facelatent.embeddings.spec import IRESNET_LAYERS

STAGE_WIDTHS = (64, 128, 256, 512)
BN_EPS = 1e-5


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


class IBasicBlock(nn.Module):
    """Pre-activation-style residual unit; the stride sits on the second conv."""

    def __init__(self, in_channels: int, channels: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels, eps=BN_EPS)
        self.conv1 = conv3x3(in_channels, channels)
        self.bn2 = nn.BatchNorm2d(channels, eps=BN_EPS)
        self.prelu = nn.PReLU(channels)
        self.conv2 = conv3x3(channels, channels, stride)
        self.bn3 = nn.BatchNorm2d(channels, eps=BN_EPS)
        self.downsample = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False), nn.BatchNorm2d(channels, eps=BN_EPS)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        identity = x if self.downsample is None else self.downsample(x)
        return out + identity


def make_stage(in_channels: int, channels: int, blocks: int) -> nn.Sequential:
    units = [IBasicBlock(in_channels, channels, stride=2)]
    units += [IBasicBlock(channels, channels) for _ in range(blocks - 1)]
    return nn.Sequential(*units)


class IResNetEmbedder(Embedder):
    """arcface_torch IResNet; `layers` = blocks per stage (e.g. [3, 4, 14, 3] for iresnet50)."""

    kind = "iresnet"

    def __init__(
        self,
        layers: list[int] | tuple[int, ...] = (3, 4, 14, 3),
        num_features: int = 512,
        image_size: int = 112,
        widths: list[int] | tuple[int, ...] = (64, *STAGE_WIDTHS),
    ):
        super().__init__()
        assert len(layers) == 4 and image_size % 16 == 0 and len(widths) == 5, (layers, image_size, widths)
        self.layers = list(layers)
        self.widths = list(widths)  # stem and four stages; arcface_torch's are fixed, narrower ones are stand-ins
        self.embedding_dim = num_features
        self.input_size = (image_size, image_size)
        self.conv1 = conv3x3(3, widths[0])
        self.bn1 = nn.BatchNorm2d(widths[0], eps=BN_EPS)
        self.prelu = nn.PReLU(widths[0])
        for i, blocks in enumerate(self.layers):
            self.add_module(f"layer{i + 1}", make_stage(widths[i], widths[i + 1], blocks))
        self.bn2 = nn.BatchNorm2d(widths[4], eps=BN_EPS)
        spatial = image_size // 16
        self.fc = nn.Linear(widths[4] * spatial * spatial, num_features)
        self.features = nn.BatchNorm1d(num_features, eps=BN_EPS)

    @property
    def arch(self) -> str:
        depth = {tuple(v): k for k, v in IRESNET_LAYERS.items()}.get(tuple(self.layers))
        return f"iresnet{depth}" if depth else f"iresnet{self.layers}"

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        return (images / 255.0 - 0.5) / 0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert_shape(x, [None, 3, *self.input_size], "x")
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.bn2(x), 1)  # dropout is the identity at inference
        return self.features(self.fc(x))


def infer_iresnet_layers(state: dict[str, torch.Tensor]) -> list[int] | None:
    """Blocks per stage from `layer{s}.{i}.conv1.weight` keys; None if the keys are not IResNet's."""
    counts = [0, 0, 0, 0]
    for key in state:
        match = re.fullmatch(r"layer([1-4])\.(\d+)\.conv1\.weight", key)
        if match:
            stage, index = int(match.group(1)) - 1, int(match.group(2))
            counts[stage] = max(counts[stage], index + 1)
    return counts if all(counts) else None


def iresnet_kwargs(state: dict[str, torch.Tensor]) -> dict:
    """Constructor kwargs matching a state dict (layers, widths, feature size, input size from the fc width)."""
    layers = infer_iresnet_layers(state)
    assert layers is not None, "no layer{1..4}.{i}.conv1.weight keys"
    stem = int(state["conv1.weight"].shape[0])
    widths = [stem] + [int(state[f"layer{s}.0.conv1.weight"].shape[0]) for s in range(1, 5)]
    fc = state["fc.weight"]
    spatial = int(round((fc.shape[1] / widths[4]) ** 0.5))
    kwargs = dict(layers=layers, num_features=int(fc.shape[0]), image_size=16 * spatial)
    if widths != [64, *STAGE_WIDTHS]:  # arcface_torch's own checkpoints keep their plain kwargs
        kwargs["widths"] = widths
    return kwargs
