"""Convolutions whose weight takes no gradient (a frozen generator, filter taps) that keep only the weight for
the backward pass. Autograd's own convolution node also keeps its input, which only the weight gradient reads:
one whole activation per conv, held until backward, for nothing (about 1 GB of a 1024 px projection step)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

Pair = tuple[int, int]


def _pair(value: int | Pair | list[int]) -> Pair:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


class _FrozenWeightConv(torch.autograd.Function):
    @staticmethod
    def forward(x, weight, stride, padding, groups, transposed):  # noqa: ANN001, ANN205 - autograd signature
        conv = F.conv_transpose2d if transposed else F.conv2d
        return conv(x, weight, stride=stride, padding=padding, groups=groups)

    @staticmethod
    def setup_context(ctx, inputs, output):  # noqa: ANN001, ANN205 - apart from forward, as torch.func requires
        x, weight, ctx.stride, ctx.padding, ctx.groups, ctx.transposed = inputs
        ctx.save_for_backward(weight)
        ctx.input_shape = x.shape

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        (weight,) = ctx.saved_tensors
        # the input's gradient reads only its shape: a zero-stride stand-in, as torch.nn.grad.conv2d_input does
        stand_in = grad.new_empty(1).expand(ctx.input_shape)
        grad_input = torch.ops.aten.convolution_backward(
            grad, stand_in, weight, None, ctx.stride, ctx.padding, (1, 1), ctx.transposed, (0, 0), ctx.groups,
            (True, False, False),
        )[0]  # fmt: skip
        return grad_input, None, None, None, None, None


def conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    stride: int | Pair = 1,
    padding: int | Pair = 0,
    groups: int = 1,
    transposed: bool = False,
) -> torch.Tensor:
    """`F.conv2d` (or `F.conv_transpose2d`), the same numbers forward and backward; when only the input takes a
    gradient, the graph keeps the weight alone."""
    stride, padding = _pair(stride), _pair(padding)
    if torch.is_grad_enabled() and x.requires_grad and not weight.requires_grad:
        return _FrozenWeightConv.apply(x, weight, stride, padding, groups, transposed)
    return _FrozenWeightConv.forward(x, weight, stride, padding, groups, transposed)  # torch's own autograd node


class _BiasLeakyReLU(torch.autograd.Function):
    """(x + b) -> leaky ReLU -> x gain -> clamp, keeping only the output for backward: its sign and range tell
    which slope and which clamp applied (gain > 0, slope > 0). Autograd's ops keep the pre-activation as well."""

    @staticmethod
    def forward(x, b, alpha, gain, clamp):  # noqa: ANN001, ANN205 - autograd signature
        y = x if b is None else x + b.reshape([1, -1] + [1] * (x.ndim - 2))
        y = F.leaky_relu(y, alpha) * gain
        return y if clamp is None else y.clamp(-clamp, clamp)

    @staticmethod
    def setup_context(ctx, inputs, output):  # noqa: ANN001, ANN205
        _, b, ctx.alpha, ctx.gain, ctx.clamp = inputs
        ctx.has_bias = b is not None
        ctx.save_for_backward(output)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        (y,) = ctx.saved_tensors
        if ctx.clamp is not None:  # inside the range (a pre-activation exactly at the bound counts as clamped)
            grad = grad * (y.abs() < ctx.clamp)
        # the slope from the output's sign: what autograd runs for an in-place leaky ReLU
        grad = torch.ops.aten.leaky_relu_backward(grad * ctx.gain, y, ctx.alpha, True)
        grad_b = grad.sum_to_size([1, y.shape[1]] + [1] * (y.ndim - 2)).reshape(-1) if ctx.has_bias else None
        return grad, grad_b, None, None, None


def bias_leaky_relu(
    x: torch.Tensor, b: torch.Tensor | None, alpha: float, gain: float, clamp: float | None
) -> torch.Tensor:
    """StyleGAN's bias + leaky ReLU + gain (+ clamp) under autograd, with one saved tensor instead of two."""
    assert alpha > 0 and gain > 0, "the output's sign must tell the slope"
    return _BiasLeakyReLU.apply(x, b, alpha, gain, clamp)
