"""Convolutions and bias + leaky ReLU that keep less for backward (projection memory, issue 22): the same
numbers as PyTorch's own ops, forward and backward, bit for bit, with fewer tensors held by the graph."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from facelatent.generators.frozen_conv import bias_leaky_relu, conv2d

CONVS = [  # x shape, weight shape, stride, padding, groups, transposed
    ((2, 8, 17, 17), (16, 8, 3, 3), (1, 1), (1, 1), 1, False),
    ((2, 8, 20, 19), (8, 1, 1, 5), (2, 1), (0, 2), 8, False),  # a strided depthwise FIR pass
    ((1, 8, 9, 9), (8, 16, 3, 3), (2, 2), (0, 0), 1, True),  # StyleGAN2's upsampling conv
    ((2, 8, 9, 9), (8, 4, 3, 3), (2, 2), (1, 1), 2, True),
]


def saved_tensors(fn) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """fn's result and the tensors its graph keeps for backward."""
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        out = fn()
    return out, saved


def saved_tensor_count(fn) -> int:
    return len(saved_tensors(fn)[1])


@pytest.mark.parametrize(("x_shape", "w_shape", "stride", "padding", "groups", "transposed"), CONVS)
def test_conv_equals_torch_and_keeps_only_the_weight(x_shape, w_shape, stride, padding, groups, transposed):
    torch.manual_seed(0)
    x, weight = torch.randn(x_shape, requires_grad=True), torch.randn(w_shape)
    torch_conv = F.conv_transpose2d if transposed else F.conv2d
    expected = torch_conv(x, weight, stride=stride, padding=padding, groups=groups)
    ours = conv2d(x, weight, stride, padding, groups, transposed)
    grad = torch.randn_like(expected)
    assert torch.equal(ours, expected)
    assert torch.equal(torch.autograd.grad(ours, x, grad)[0], torch.autograd.grad(expected, x, grad)[0])
    assert saved_tensor_count(lambda: torch_conv(x, weight, stride=stride, padding=padding, groups=groups)) == 2
    assert saved_tensor_count(lambda: conv2d(x, weight, stride, padding, groups, transposed)) == 1


def test_conv_with_a_trained_weight_is_torchs_own():
    x, weight = torch.randn(1, 4, 6, 6, requires_grad=True), torch.randn(4, 4, 3, 3, requires_grad=True)
    out = conv2d(x, weight, padding=1)
    assert out.grad_fn.name() == "ConvolutionBackward0"
    assert torch.autograd.grad(out.sum(), weight)[0].abs().sum() > 0


@pytest.mark.parametrize("clamp", [None, 0.5])
@pytest.mark.parametrize("shape", [(2, 8, 5, 5), (3, 16)])
def test_bias_leaky_relu_equals_torch_and_keeps_only_its_output(clamp, shape):
    torch.manual_seed(1)
    x, b = torch.randn(shape, requires_grad=True), torch.randn(shape[1], requires_grad=True)

    def reference():
        y = F.leaky_relu(x + b.reshape([1, -1] + [1] * (x.ndim - 2)), 0.2) * 2**0.5
        return y if clamp is None else y.clamp(-clamp, clamp)

    expected, ours = reference(), bias_leaky_relu(x, b, 0.2, 2**0.5, clamp)
    grad = torch.randn_like(expected)
    assert torch.equal(ours, expected)
    mine, theirs = torch.autograd.grad(ours, (x, b), grad), torch.autograd.grad(expected, (x, b), grad)
    assert torch.equal(mine[0], theirs[0]) and torch.equal(mine[1], theirs[1])
    # ours keeps only its output, which the next layer keeps anyway; torch's ops keep their inputs besides
    out, kept = saved_tensors(lambda: bias_leaky_relu(x, b, 0.2, 2**0.5, clamp))
    assert [t.data_ptr() for t in kept] == [out.data_ptr()]
    out, kept = saved_tensors(reference)
    assert len(kept) == (1 if clamp is None else 2) and out.data_ptr() not in [t.data_ptr() for t in kept]
