"""StyleGAN3 generator (configs T and R) with NVlabs state-dict names, for inference.

Module tree as in NVlabs `networks_stylegan3`: `mapping.fc{i}`, `mapping.w_avg`,
`synthesis.input.{weight,transform,freqs,phases,affine.*}` and one
`synthesis.L{i}_{size}_{channels}` per layer with `weight, bias, magnitude_ema,
up_filter, down_filter, affine.*` (a filter that is the identity is absent).
The filtered leaky ReLU runs the plain-PyTorch reference path. There are no noise inputs;
`noise_mode` is accepted and ignored. `magnitude_ema` and `w_avg` are never updated.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from facelatent.generators import ops
from facelatent.generators.base import NVlabsGenerator, assert_shape
from facelatent.generators.stylegan2 import FullyConnectedLayer, MappingNetwork

LAYER_KEYS = {
    "conv_kernel",
    "filter_size",
    "lrelu_upsampling",
    "use_radial_filters",
    "conv_clamp",
    "magnitude_ema_beta",
}
SYNTHESIS_KEYS = {
    "channel_base",
    "channel_max",
    "num_layers",
    "num_critical",
    "first_cutoff",
    "first_stopband",
    "last_stopband_rel",
    "margin_size",
    "output_scale",
    "num_fp16_res",
} | LAYER_KEYS


def modulated_conv2d_sg3(
    x: torch.Tensor, w: torch.Tensor, s: torch.Tensor, demodulate: bool, padding: int, input_gain: torch.Tensor | None
) -> torch.Tensor:
    """StyleGAN3 modulated conv: pre-normalised weight and styles, demod, input gain, one grouped conv."""
    batch = x.shape[0]
    out_channels, in_channels, kh, kw = w.shape
    assert_shape(x, [batch, in_channels, None, None], "x")
    assert_shape(s, [batch, in_channels], "styles")
    if demodulate:  # keeps fp16 in range; demodulation cancels both scalings
        w = w * w.square().mean([1, 2, 3], keepdim=True).rsqrt()
        s = s * s.square().mean().rsqrt()
    wm, dcoefs = ops.modulate_weight(w, s, demodulate)
    if dcoefs is not None:
        wm = wm * dcoefs.reshape(batch, -1, 1, 1, 1)
    if input_gain is not None:
        wm = wm * input_gain.expand(batch, in_channels).reshape(batch, 1, -1, 1, 1)
    return ops.grouped_conv(x, wm, padding=padding)


class SynthesisInput(nn.Module):
    """Fourier features on a fixed grid, rotated/translated per sample by an affine of w."""

    def __init__(self, w_dim: int, channels: int, size: int, sampling_rate: float, bandwidth: float):
        super().__init__()
        self.w_dim, self.channels = w_dim, channels
        self.size = int(size)
        self.sampling_rate, self.bandwidth = float(sampling_rate), float(bandwidth)
        freqs = torch.randn([channels, 2])  # uniform on a disc after the radial remap below
        radii = freqs.square().sum(dim=1, keepdim=True).sqrt()
        freqs = freqs / (radii * radii.square().exp().pow(0.25)) * bandwidth
        phases = torch.rand([channels]) - 0.5
        self.weight = nn.Parameter(torch.randn([channels, channels]))
        self.affine = FullyConnectedLayer(w_dim, 4, bias_init=0)
        with torch.no_grad():  # starts as the identity transform: weight 0, bias (1, 0, 0, 0)
            self.affine.weight.zero_()
            self.affine.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0]))
        self.register_buffer("transform", torch.eye(3, 3))
        self.register_buffer("freqs", freqs)
        self.register_buffer("phases", phases)

    def sample_transforms(self, w: torch.Tensor) -> torch.Tensor:
        """Per-sample [B,3,3]: rotation then translation from affine(w), then the user transform."""
        t = self.affine(w)
        t = t / t[:, :2].norm(dim=1, keepdim=True)
        batch = w.shape[0]
        m_r = torch.eye(3, device=w.device).unsqueeze(0).repeat([batch, 1, 1])
        m_r[:, 0, 0] = t[:, 0]
        m_r[:, 0, 1] = -t[:, 1]
        m_r[:, 1, 0] = t[:, 1]
        m_r[:, 1, 1] = t[:, 0]
        m_t = torch.eye(3, device=w.device).unsqueeze(0).repeat([batch, 1, 1])
        m_t[:, 0, 2] = -t[:, 2]
        m_t[:, 1, 2] = -t[:, 3]
        return m_r @ m_t @ self.transform.unsqueeze(0)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        transforms = self.sample_transforms(w)
        freqs = self.freqs.unsqueeze(0)
        phases = self.phases.unsqueeze(0) + (freqs @ transforms[:, :2, 2:]).squeeze(2)
        freqs = freqs @ transforms[:, :2, :2]
        # Fade out frequencies that the user transform pushes beyond the band.
        amplitudes = (1 - (freqs.norm(dim=2) - self.bandwidth) / (self.sampling_rate / 2 - self.bandwidth)).clamp(0, 1)
        theta = torch.eye(2, 3, device=w.device)
        theta[0, 0] = 0.5 * self.size / self.sampling_rate
        theta[1, 1] = 0.5 * self.size / self.sampling_rate
        grids = nn.functional.affine_grid(theta.unsqueeze(0), [1, 1, self.size, self.size], align_corners=False)
        x = (grids.unsqueeze(3) @ freqs.permute(0, 2, 1).unsqueeze(1).unsqueeze(2)).squeeze(3)
        x = x + phases.unsqueeze(1).unsqueeze(2)
        x = torch.sin(x * (np.pi * 2)) * amplitudes.unsqueeze(1).unsqueeze(2)
        x = x @ (self.weight / np.sqrt(self.channels)).t()
        x = x.permute(0, 3, 1, 2)
        assert_shape(x, [w.shape[0], self.channels, self.size, self.size], "input")
        return x


def layer_padding(
    in_size: int, out_size: int, conv_kernel: int, up: int, down: int, up_taps: int, down_taps: int
) -> tuple[int, int, int, int]:
    """Padding so that the output lands on the symmetric sample grid (paper appendix C.3)."""
    total = (out_size - 1) * down + 1 - (in_size + conv_kernel - 1) * up + up_taps + down_taps - 2
    lo = (total + up) // 2
    return (lo, total - lo, lo, total - lo)


class SynthesisLayer(nn.Module):
    """Modulated conv, then bias + upsample + lrelu + clamp + downsample (filtered lrelu)."""

    def __init__(
        self,
        w_dim: int,
        is_torgb: bool,
        is_critically_sampled: bool,
        use_fp16: bool,
        in_channels: int,
        out_channels: int,
        in_size: int,
        out_size: int,
        in_sampling_rate: int,
        out_sampling_rate: int,
        in_cutoff: float,
        out_cutoff: float,
        in_half_width: float,
        out_half_width: float,
        conv_kernel: int = 3,
        filter_size: int = 6,
        lrelu_upsampling: int = 2,
        use_radial_filters: bool = False,
        conv_clamp: float | None = 256,
        magnitude_ema_beta: float = 0.999,
    ):
        super().__init__()
        self.is_torgb, self.use_fp16 = is_torgb, use_fp16
        self.in_channels, self.out_channels = in_channels, out_channels
        self.in_size, self.out_size = int(in_size), int(out_size)
        self.conv_kernel = 1 if is_torgb else conv_kernel
        self.conv_clamp = conv_clamp
        tmp_rate = max(in_sampling_rate, out_sampling_rate) * (1 if is_torgb else lrelu_upsampling)
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, self.conv_kernel, self.conv_kernel]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.register_buffer("magnitude_ema", torch.ones([]))
        self.up_factor = int(np.rint(tmp_rate / in_sampling_rate))
        self.down_factor = int(np.rint(tmp_rate / out_sampling_rate))
        assert in_sampling_rate * self.up_factor == tmp_rate and out_sampling_rate * self.down_factor == tmp_rate
        up_taps = filter_size * self.up_factor if self.up_factor > 1 and not is_torgb else 1
        down_taps = filter_size * self.down_factor if self.down_factor > 1 and not is_torgb else 1
        self.register_buffer("up_filter", ops.design_lowpass_filter(up_taps, in_cutoff, in_half_width * 2, tmp_rate))
        self.register_buffer(
            "down_filter",
            ops.design_lowpass_filter(
                down_taps,
                out_cutoff,
                out_half_width * 2,
                tmp_rate,
                radial=use_radial_filters and not is_critically_sampled,
            ),
        )
        self.padding = layer_padding(
            self.in_size, self.out_size, self.conv_kernel, self.up_factor, self.down_factor, up_taps, down_taps
        )

    def forward(self, x: torch.Tensor, w: torch.Tensor, force_fp32: bool = False) -> torch.Tensor:
        assert_shape(x, [None, self.in_channels, self.in_size, self.in_size], "x")
        assert_shape(w, [x.shape[0], None], "w")
        styles = self.affine(w)
        if self.is_torgb:
            styles = styles * (1 / math.sqrt(self.in_channels * self.conv_kernel**2))
        use_fp16 = self.use_fp16 and not force_fp32 and x.device.type == "cuda"
        dtype = torch.float16 if use_fp16 else torch.float32
        x = modulated_conv2d_sg3(
            x.to(dtype),
            self.weight,
            styles,
            demodulate=not self.is_torgb,
            padding=self.conv_kernel - 1,
            input_gain=self.magnitude_ema.rsqrt(),
        )
        x = ops.filtered_lrelu(
            x,
            self.up_filter,
            self.down_filter,
            self.bias.to(x.dtype),
            up=self.up_factor,
            down=self.down_factor,
            padding=self.padding,
            gain=1.0 if self.is_torgb else ops.SQRT2,
            slope=1.0 if self.is_torgb else 0.2,
            clamp=self.conv_clamp,
        )
        assert_shape(x, [None, self.out_channels, self.out_size, self.out_size], "layer out")
        return x


def layer_schedule(
    img_resolution: int,
    img_channels: int,
    channel_base: int,
    channel_max: int,
    num_layers: int,
    num_critical: int,
    first_cutoff: float,
    first_stopband: float,
    last_stopband_rel: float,
    margin_size: int,
) -> dict[str, np.ndarray]:
    """Per-layer cutoffs, stopbands, sampling rates, half widths, sizes and channels (float64 like NVlabs)."""
    last_cutoff = img_resolution / 2
    last_stopband = last_cutoff * last_stopband_rel
    exponents = np.minimum(np.arange(num_layers + 1) / (num_layers - num_critical), 1)
    cutoffs = first_cutoff * (last_cutoff / first_cutoff) ** exponents
    stopbands = first_stopband * (last_stopband / first_stopband) ** exponents
    rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, img_resolution))))
    half_widths = np.maximum(stopbands, rates / 2) - cutoffs
    sizes = rates + margin_size * 2
    sizes[-2:] = img_resolution
    channels = np.rint(np.minimum((channel_base / 2) / cutoffs, channel_max))
    channels[-1] = img_channels
    return dict(cutoffs=cutoffs, rates=rates, half_widths=half_widths, sizes=sizes, channels=channels)


class SynthesisNetwork(nn.Module):
    """Fourier input, num_layers filtered layers and a ToRGB layer; output x output_scale."""

    def __init__(
        self,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        channel_base: int = 32768,
        channel_max: int = 512,
        num_layers: int = 14,
        num_critical: int = 2,
        first_cutoff: float = 2,
        first_stopband: float = 2**2.1,
        last_stopband_rel: float = 2**0.3,
        margin_size: int = 10,
        output_scale: float = 0.25,
        num_fp16_res: int = 4,
        **layer_kwargs,
    ):
        super().__init__()
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.num_ws = num_layers + 2
        self.output_scale = output_scale
        p = layer_schedule(
            img_resolution,
            img_channels,
            channel_base,
            channel_max,
            num_layers,
            num_critical,
            first_cutoff,
            first_stopband,
            last_stopband_rel,
            margin_size,
        )
        self.input = SynthesisInput(w_dim, int(p["channels"][0]), int(p["sizes"][0]), p["rates"][0], p["cutoffs"][0])
        self.layer_names: list[str] = []
        for idx in range(num_layers + 1):
            prev = max(idx - 1, 0)
            layer = SynthesisLayer(
                w_dim,
                is_torgb=idx == num_layers,
                is_critically_sampled=idx >= num_layers - num_critical,
                use_fp16=bool(p["rates"][idx] * 2**num_fp16_res > img_resolution),
                in_channels=int(p["channels"][prev]),
                out_channels=int(p["channels"][idx]),
                in_size=int(p["sizes"][prev]),
                out_size=int(p["sizes"][idx]),
                in_sampling_rate=int(p["rates"][prev]),
                out_sampling_rate=int(p["rates"][idx]),
                in_cutoff=p["cutoffs"][prev],
                out_cutoff=p["cutoffs"][idx],
                in_half_width=p["half_widths"][prev],
                out_half_width=p["half_widths"][idx],
                **layer_kwargs,
            )
            name = f"L{idx}_{layer.out_size}_{layer.out_channels}"
            setattr(self, name, layer)
            self.layer_names.append(name)

    def forward(self, ws: torch.Tensor, force_fp32: bool = False) -> torch.Tensor:
        assert_shape(ws, [None, self.num_ws, self.w_dim], "ws")
        ws_list = ws.to(torch.float32).unbind(dim=1)
        x = self.input(ws_list[0])
        for name, w in zip(self.layer_names, ws_list[1:], strict=False):
            x = getattr(self, name)(x, w, force_fp32=force_fp32)
        if self.output_scale != 1:
            x = x * self.output_scale
        assert_shape(x, [None, self.img_channels, self.img_resolution, self.img_resolution], "img")
        return x.to(torch.float32)


def check_kwargs(flat: dict) -> None:
    unknown = sorted(set(flat) - SYNTHESIS_KEYS)
    if unknown:
        raise TypeError(f"unknown StyleGAN3 generator kwargs: {unknown}")


class StyleGAN3Generator(NVlabsGenerator):
    """NVlabs StyleGAN3 `Generator` (T: 3x3 convs; R: conv_kernel=1, use_radial_filters=True)."""

    kind = "stylegan3"

    def __init__(
        self,
        z_dim: int,
        c_dim: int = 0,
        w_dim: int = 512,
        img_resolution: int = 1024,
        img_channels: int = 3,
        mapping_kwargs: dict | None = None,
        **synthesis_kwargs,
    ):
        super().__init__()
        check_kwargs(synthesis_kwargs)
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        # Straight into _modules: `synthesis`/`mapping` are GeneratorBase method names (see stylegan2.py).
        self._modules["synthesis"] = SynthesisNetwork(w_dim, img_resolution, img_channels, **synthesis_kwargs)
        self.num_ws = self.synthesis_network.num_ws
        mapping_kwargs = {"num_layers": 2, "w_avg_beta": 0.998, **(mapping_kwargs or {})}
        self._modules["mapping"] = MappingNetwork(z_dim, c_dim, w_dim, self.num_ws, **mapping_kwargs)

    def noise_buffer_names(self) -> list[str]:
        """StyleGAN3 has no noise inputs."""
        return []

    def mapping(self, z, c=None, truncation_psi: float = 1.0, truncation_cutoff: int | None = None):
        return self.mapping_network(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)

    def synthesis(self, ws, noise_mode: str = "const", force_fp32: bool = False, noise=None, fused_modconv=None):
        """ws [B, num_ws, w_dim] -> images [B, C, R, R]; `noise_mode`, `noise` and `fused_modconv`
        are accepted for interface parity (StyleGAN3 has no noise inputs and always runs fused)."""
        assert noise_mode in ("random", "const", "none"), noise_mode
        if noise is not None and len(noise) > 0:
            raise ValueError("StyleGAN3 has no noise inputs")
        return self.synthesis_network(ws, force_fp32=force_fp32)
