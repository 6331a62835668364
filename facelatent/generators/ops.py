"""Low-level StyleGAN ops in plain PyTorch (the reference path of the NVlabs custom CUDA ops).

Everything here is a small pure function of tensors: FIR filter setup and design,
`upfirdn2d` (upsample, pad, FIR filter, downsample), `bias_act`, the resampling convolution,
the StyleGAN2 modulated convolution (fused grouped form and non-fused form) and the
StyleGAN3 filtered leaky ReLU. The same code runs on CPU and CUDA; there are no custom kernels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from facelatent.generators.base import assert_shape
from facelatent.generators.frozen_conv import bias_leaky_relu, conv2d

Padding = tuple[int, int, int, int]  # (x_before, x_after, y_before, y_after)

SQRT2 = math.sqrt(2.0)


# ---------------------------------------------------------------------------- filters


def setup_filter(taps: Sequence[float] | torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    """Normalised FIR filter: short 1-D taps become their 2-D outer product, >= 8 taps stay separable."""
    f = torch.as_tensor(taps, dtype=torch.float32)
    if f.ndim == 0:
        f = f[None]
    if f.ndim == 1 and f.numel() < 8:  # short filters run faster as one 2-D conv
        f = torch.outer(f, f)
    f = f / f.sum()
    return f * (gain ** (f.ndim / 2))


def kaiser_beta_for(numtaps: int, width_normalised: float) -> float:
    """Kaiser window beta for a transition width given as a fraction of Nyquist (Kaiser's formulas)."""
    atten = 2.285 * (numtaps - 1) * math.pi * width_normalised + 7.95
    if atten > 50:
        return 0.1102 * (atten - 8.7)
    if atten > 21:
        return 0.5842 * (atten - 21) ** 0.4 + 0.07886 * (atten - 21)
    return 0.0


def firwin_lowpass(numtaps: int, cutoff: float, width: float, fs: float) -> np.ndarray:
    """Kaiser-windowed sinc low-pass with unit DC gain (what scipy.signal.firwin returns for these args)."""
    nyq = fs / 2
    beta = kaiser_beta_for(numtaps, width / nyq)
    m = np.arange(numtaps) - (numtaps - 1) / 2
    h = (cutoff / nyq) * np.sinc((cutoff / nyq) * m) * np.kaiser(numtaps, beta)
    return h / h.sum()


def jinc_lowpass(numtaps: int, cutoff: float, width: float, fs: float) -> np.ndarray:
    """Radially symmetric (jinc) low-pass under a separable Kaiser window, unit DC gain."""
    x = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
    r = torch.from_numpy(np.hypot(*np.meshgrid(x, x)))
    f = (torch.special.bessel_j1(2 * cutoff * math.pi * r) / (math.pi * r)).numpy()
    window = np.kaiser(numtaps, kaiser_beta_for(numtaps, width / (fs / 2)))
    f = f * np.outer(window, window)
    return f / f.sum()


def design_lowpass_filter(
    numtaps: int, cutoff: float, width: float, fs: float, radial: bool = False
) -> torch.Tensor | None:
    """StyleGAN3 resampling filter: None (identity) for one tap, else separable Kaiser or radial jinc."""
    assert numtaps >= 1
    if numtaps == 1:
        return None
    taps = jinc_lowpass(numtaps, cutoff, width, fs) if radial else firwin_lowpass(numtaps, cutoff, width, fs)
    return torch.as_tensor(taps, dtype=torch.float32)


# ---------------------------------------------------------------------------- upfirdn2d


def _zero_stuff(x: torch.Tensor, up: int) -> torch.Tensor:
    """Upsample by inserting up-1 zeros after each pixel."""
    if up == 1:
        return x
    n, c, h, w = x.shape
    x = x.reshape(n, c, h, 1, w, 1)
    x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
    return x.reshape(n, c, h * up, w * up)


def _pad_or_crop(x: torch.Tensor, padding: Padding) -> torch.Tensor:
    """Zero-pad positive amounts, crop negative ones."""
    px0, px1, py0, py1 = padding
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    return x[:, :, max(-py0, 0) : x.shape[2] - max(-py1, 0), max(-px0, 0) : x.shape[3] - max(-px1, 0)]


def fir_matrix(length: int, f: torch.Tensor, up: int, down: int, pad0: int, pad1: int) -> torch.Tensor:
    """[length, out] matrix doing 1-D zero-insertion upsampling, padding, convolution with `f` and decimation.

    out[k] = sum_i x[i] * f[T-1 + k*down - pad0 - i*up] (zero outside the taps), exactly the
    sequence `upfirdn2d` performs along one axis, folded into one matrix for a fast matmul.
    """
    taps = f.shape[0]
    full = length * up + pad0 + pad1 - taps + 1
    assert full >= 1, "filter longer than the padded signal"
    k = torch.arange(0, full, down, device=f.device)
    i = torch.arange(length, device=f.device)
    idx = taps - 1 + k[None, :] - pad0 - i[:, None] * up
    valid = (idx >= 0) & (idx < taps)
    return torch.where(valid, f[idx.clamp(0, taps - 1)], torch.zeros((), dtype=f.dtype, device=f.device))


def _upfirdn_separable(x: torch.Tensor, f: torch.Tensor, up: int, down: int, padding: Padding) -> torch.Tensor:
    """Separable case as two matmuls (width, then height)."""
    px0, px1, py0, py1 = padding
    f = f.to(x.dtype)
    x = x @ fir_matrix(x.shape[3], f, up, down, px0, px1)
    return fir_matrix(x.shape[2], f, up, down, py0, py1).t() @ x


def _matrix_is_cheaper(x: torch.Tensor, f: torch.Tensor) -> bool:
    """A dense FIR matrix costs L_in MACs per output against `taps` for a depthwise conv, but BLAS runs
    about 15x faster than depthwise convs on CPU: use it for short signals only."""
    return f.ndim == 1 and max(x.shape[2], x.shape[3]) <= 16 * f.shape[0]


def _depthwise_fir(x: torch.Tensor, f: torch.Tensor, down: int, padding: Padding) -> torch.Tensor:
    """Per-channel true convolution with `f` (2-D, or 1-D applied along W then H), strided by `down`."""
    px0, px1, py0, py1 = padding
    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:  # let the conv pad: saves a copy
        pad_y, pad_x = py0, px0
    else:
        x, pad_y, pad_x = _pad_or_crop(x, padding), 0, 0
    channels = x.shape[1]
    f = f.to(x.dtype).flip(list(range(f.ndim)))
    if f.ndim == 2:
        return conv2d(x, f[None, None].repeat(channels, 1, 1, 1), stride=down, padding=(pad_y, pad_x), groups=channels)
    x = conv2d(x, f.view(1, 1, 1, -1).repeat(channels, 1, 1, 1), stride=(1, down), padding=(0, pad_x), groups=channels)
    return conv2d(
        x, f.view(1, 1, -1, 1).repeat(channels, 1, 1, 1), stride=(down, 1), padding=(pad_y, 0), groups=channels
    )


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    up: int = 1,
    down: int = 1,
    padding: Padding = (0, 0, 0, 0),
    gain: float = 1.0,
) -> torch.Tensor:
    """Upsample (zero insertion), pad, convolve with FIR `f` (1-D separable or 2-D), keep every `down`th pixel.

    Same result as the NVlabs reference `upfirdn2d` (up to float summation order); the work is
    routed to a FIR matrix product for short separable signals and to strided depthwise convs otherwise.
    """
    assert x.ndim == 4
    if f is None:
        x = _pad_or_crop(_zero_stuff(x, up), padding)
        x = x * gain if gain != 1 else x
        return x[:, :, ::down, ::down] if down > 1 else x
    f = f * (gain ** (f.ndim / 2))
    if _matrix_is_cheaper(x, f):
        return _upfirdn_separable(x, f, up, down, padding)
    return _depthwise_fir(_zero_stuff(x, up), f, down, padding)


def upsample2d(x: torch.Tensor, f: torch.Tensor, up: int = 2) -> torch.Tensor:
    """Upsample by `up` with a 2-D FIR filter so that the output is exactly `up` times larger."""
    fw = f.shape[-1]
    fh = f.shape[0]
    padding = ((fw + up - 1) // 2, (fw - up) // 2, (fh + up - 1) // 2, (fh - up) // 2)
    return upfirdn2d(x, f, up=up, padding=padding, gain=up * up)


# ---------------------------------------------------------------------------- bias + activation


def no_autograd(*tensors: torch.Tensor | None) -> bool:
    """True when no graph is being recorded for these tensors, so fresh results may be updated in place."""
    return not torch.is_grad_enabled() or not any(t is not None and t.requires_grad for t in tensors)


def bias_act(
    x: torch.Tensor,
    b: torch.Tensor | None = None,
    act: str = "linear",
    alpha: float = 0.2,
    gain: float = 1.0,
    clamp: float | None = None,
) -> torch.Tensor:
    """x + b (per channel, dim 1), then linear or leaky ReLU, then times `gain`, then clamp to +-clamp.

    Without autograd the steps after the first new tensor run in place (one buffer, less memory traffic).
    """
    assert act in ("linear", "lrelu"), act
    inplace_ok = no_autograd(x, b)
    if act == "lrelu" and not inplace_ok and alpha > 0 and gain > 0:
        return bias_leaky_relu(x, b, alpha, gain, clamp if clamp is not None and clamp >= 0 else None)
    fresh = False  # True once x is our own tensor, never the caller's
    if b is not None:
        assert_shape(b, [x.shape[1]], "bias")
        x, fresh = x + b.reshape([1, -1] + [1] * (x.ndim - 2)), True
    if act == "lrelu":
        x, fresh = (F.leaky_relu_(x, alpha) if fresh and inplace_ok else F.leaky_relu(x, alpha)), True
    if gain != 1:
        x, fresh = (x.mul_(gain) if fresh and inplace_ok else x * gain), True
    if clamp is not None and clamp >= 0:
        x = x.clamp_(-clamp, clamp) if fresh and inplace_ok else x.clamp(-clamp, clamp)
    return x


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """x / RMS(x) along `dim` (the z normalisation of the mapping network)."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


# ---------------------------------------------------------------------------- convolutions


def conv2d_resample(
    x: torch.Tensor, w: torch.Tensor, f: torch.Tensor | None = None, up: int = 1, padding: int = 0, groups: int = 1
) -> torch.Tensor:
    """Cross-correlation with `w`; with up > 1, a stride-`up` transposed conv followed by the FIR `f`.

    Padding is given with respect to the upsampled image, as in NVlabs `conv2d_resample`.
    """
    out_channels, in_per_group, kh, kw = w.shape
    if up == 1:
        return conv2d(x, w, padding=padding, groups=groups)
    assert f is not None
    fw, fh = f.shape[-1], f.shape[0]
    px0 = padding + (fw + up - 1) // 2 - (kw - 1)
    px1 = padding + (fw - up) // 2 - (kw - up)
    py0 = padding + (fh + up - 1) // 2 - (kh - 1)
    py1 = padding + (fh - up) // 2 - (kh - up)
    # The transposed conv wants [in, out/groups, kh, kw] per group; the weight is not flipped.
    if groups == 1:
        w = w.transpose(0, 1)
    else:
        w = w.reshape(groups, out_channels // groups, in_per_group, kh, kw).transpose(1, 2)
        w = w.reshape(groups * in_per_group, out_channels // groups, kh, kw)
    pxt = max(min(-px0, -px1), 0)
    pyt = max(min(-py0, -py1), 0)
    x = conv2d(x, w, stride=up, padding=(pyt, pxt), groups=groups, transposed=True)
    return upfirdn2d(x, f, padding=(px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt), gain=up * up)


def modulate_weight(
    weight: torch.Tensor, styles: torch.Tensor, demodulate: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-sample weights [N,O,I,k,k] = weight x style, and the demodulation coefficients [N,O] (or None)."""
    w = weight.unsqueeze(0) * styles.reshape(styles.shape[0], 1, -1, 1, 1)
    dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt() if demodulate else None
    return w, dcoefs


def demod_coefficients(weight: torch.Tensor, styles: torch.Tensor) -> torch.Tensor:
    """[N,O] = rsqrt(sum_i,k (w_oik s_ni)^2 + 1e-8) as one matmul, without per-sample weights."""
    return (styles.square() @ weight.square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()


def grouped_conv(
    x: torch.Tensor, w: torch.Tensor, f: torch.Tensor | None = None, up: int = 1, padding: int = 0
) -> torch.Tensor:
    """Run per-sample weights [N,O,I,k,k] as one grouped convolution with groups = N."""
    batch, out_channels, in_channels, kh, kw = w.shape
    x = x.reshape(1, -1, *x.shape[2:])
    w = w.reshape(-1, in_channels, kh, kw)
    x = conv2d_resample(x, w.to(x.dtype), f=f, up=up, padding=padding, groups=batch)
    return x.reshape(batch, -1, *x.shape[2:])


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    noise: torch.Tensor | None = None,
    up: int = 1,
    padding: int = 0,
    resample_filter: torch.Tensor | None = None,
    demodulate: bool = True,
    fused_modconv: bool = True,
) -> torch.Tensor:
    """StyleGAN2 modulated convolution (+ optional noise add), fused or non-fused.

    Fused: per-sample demodulated weights through one grouped conv. Non-fused: scale the input
    by the styles, run the shared weight, then scale the output by the demod coefficients.
    """
    batch = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape
    assert_shape(x, [batch, in_channels, None, None], "x")
    assert_shape(styles, [batch, in_channels], "styles")
    if x.dtype == torch.float16 and demodulate:  # pre-normalise so that fp16 cannot overflow
        weight = weight * (
            1 / math.sqrt(in_channels * kh * kw) / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True)
        )
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)
    if not fused_modconv:
        x = x * styles.to(x.dtype).reshape(batch, -1, 1, 1)
        x = conv2d_resample(x, weight.to(x.dtype), f=resample_filter, up=up, padding=padding)
        inplace_ok = no_autograd(x, styles, noise)
        if demodulate:
            dcoefs = demod_coefficients(weight, styles).to(x.dtype).reshape(batch, -1, 1, 1)
            x = x.mul_(dcoefs) if inplace_ok else x * dcoefs
        if noise is not None:
            x = x.add_(noise.to(x.dtype)) if inplace_ok else x + noise.to(x.dtype)
        return x
    w, dcoefs = modulate_weight(weight, styles, demodulate)
    if dcoefs is not None:
        w = w * dcoefs.reshape(batch, -1, 1, 1, 1)
    x = grouped_conv(x, w, f=resample_filter, up=up, padding=padding)
    if noise is not None:
        x = x + noise.to(x.dtype)
    return x


# ---------------------------------------------------------------------------- StyleGAN3


def filtered_lrelu(
    x: torch.Tensor,
    fu: torch.Tensor | None,
    fd: torch.Tensor | None,
    b: torch.Tensor | None,
    up: int = 1,
    down: int = 1,
    padding: Padding = (0, 0, 0, 0),
    gain: float = SQRT2,
    slope: float = 0.2,
    clamp: float | None = None,
) -> torch.Tensor:
    """Bias, upsample with `fu`, leaky ReLU x gain, clamp, downsample with `fd` (the NVlabs reference order)."""
    x = bias_act(x, b)
    x = upfirdn2d(x, fu, up=up, padding=padding, gain=up * up)
    x = bias_act(x, act="lrelu", alpha=slope, gain=gain, clamp=clamp)
    return upfirdn2d(x, fd, down=down)
