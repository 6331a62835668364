"""StyleGAN2 generator (config-f, skip ToRGB) with NVlabs state-dict names, for inference.

An official `G_ema` state dict (stylegan2-ada-pytorch or the stylegan3 repository's
`networks_stylegan2`) loads with `strict=True`. The module tree is the NVlabs one:
`mapping.fc{i}`, `mapping.w_avg`, `synthesis.b{res}.{const,conv0,conv1,torgb}`.

Differences from the original, on purpose:
- the mapping never updates `w_avg` (this is an inference backend, in train mode too);
- fp16 blocks run in fp16 only on CUDA; on CPU every block runs in fp32;
- `synthesis(..., noise=...)` accepts per-sample noise maps that replace the `noise_const` buffers;
- `fused_modconv=None` picks the faster path for the batch and device, not the training flag.

`G.mapping(...)`/`G.synthesis(...)` are methods (the GeneratorBase interface); the NVlabs
sub-networks are `G.mapping_network` and `G.synthesis_network`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from facelatent.generators import ops
from facelatent.generators.base import NVlabsGenerator, assert_shape, truncate

NoiseOverride = Sequence[torch.Tensor] | Mapping[str, torch.Tensor] | None

# Defaults differ between the two NVlabs repositories; a stylegan3-repo kwargs layout is
# recognised by its flattened synthesis kwargs or by `fused_modconv_default`.
ADA_SYNTHESIS_DEFAULTS = dict(channel_base=32768, channel_max=512, num_fp16_res=0, conv_clamp=None)
SG3REPO_SYNTHESIS_DEFAULTS = dict(channel_base=32768, channel_max=512, num_fp16_res=4, conv_clamp=256)
SYNTHESIS_KEYS = {
    "channel_base",
    "channel_max",
    "num_fp16_res",
    "conv_clamp",
    "architecture",
    "resample_filter",
    "fp16_channels_last",
    "fused_modconv_default",
    "use_noise",
    "kernel_size",
    "activation",
    "channels_last",
}


class FullyConnectedLayer(nn.Module):
    """Dense layer with equalised learning rate: weight x lr_mult/sqrt(in), bias x lr_mult."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        activation: str = "linear",
        lr_multiplier: float = 1.0,
        bias_init: float = 0.0,
    ):
        super().__init__()
        self.activation = activation
        self.weight = nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], np.float32(bias_init) / lr_multiplier))
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias.to(x.dtype)
        if self.bias_gain != 1:
            b = b * self.bias_gain
        if self.activation == "linear":
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return ops.bias_act(x.matmul(w.t()), b, act=self.activation, gain=ops.SQRT2)


class MappingNetwork(nn.Module):
    """z (and optional label c) -> w broadcast to num_ws, with truncation towards `w_avg`."""

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        num_ws: int,
        num_layers: int = 8,
        embed_features: int | None = None,
        layer_features: int | None = None,
        activation: str = "lrelu",
        lr_multiplier: float = 0.01,
        w_avg_beta: float | None = 0.995,
        **training_only_kwargs,
    ):
        super().__init__()
        unknown = sorted(set(training_only_kwargs) - {"freeze_layers", "freeze_embed"})
        if unknown:
            raise TypeError(f"unknown mapping kwargs: {unknown}")
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta  # kept for reference; inference never updates w_avg
        embed_features = (w_dim if embed_features is None else embed_features) if c_dim > 0 else 0
        layer_features = w_dim if layer_features is None else layer_features
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for idx in range(num_layers):
            setattr(
                self,
                f"fc{idx}",
                FullyConnectedLayer(
                    features[idx], features[idx + 1], activation=activation, lr_multiplier=lr_multiplier
                ),
            )
        self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
    ) -> torch.Tensor:
        parts = []
        if self.z_dim > 0:
            assert_shape(z, [None, self.z_dim], "z")
            parts.append(ops.normalize_2nd_moment(z.to(torch.float32)))
        if self.c_dim > 0:
            assert c is not None, "this generator is conditional: pass c"
            assert_shape(c, [None, self.c_dim], "c")
            parts.append(ops.normalize_2nd_moment(self.embed(c.to(torch.float32))))
        x = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)
        ws = x.unsqueeze(1).repeat([1, self.num_ws, 1])
        return truncate(ws, self.w_avg, truncation_psi, truncation_cutoff)


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (optionally 2x up), noise, bias, lrelu x sqrt(2), clamp."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        kernel_size: int = 3,
        up: int = 1,
        use_noise: bool = True,
        resample_filter: Sequence[float] = (1, 3, 3, 1),
        conv_clamp: float | None = None,
        **unused,
    ):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.resolution, self.up, self.use_noise = resolution, up, use_noise
        self.conv_clamp = conv_clamp
        self.padding = kernel_size // 2
        self.register_buffer("resample_filter", ops.setup_filter(resample_filter))
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))

    def layer_noise(
        self, batch: int, device: torch.device, noise_mode: str, override: torch.Tensor | None
    ) -> torch.Tensor | None:
        """The noise added after the conv: override or buffer (const) or fresh randn, times strength."""
        if not self.use_noise or noise_mode == "none":
            return None
        if override is not None:
            return override * self.noise_strength
        if noise_mode == "random":
            return torch.randn([batch, 1, self.resolution, self.resolution], device=device) * self.noise_strength
        return self.noise_const * self.noise_strength

    def forward(
        self,
        x: torch.Tensor,
        w: torch.Tensor,
        noise_mode: str = "const",
        fused_modconv: bool = True,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        assert noise_mode in ("random", "const", "none"), noise_mode
        assert_shape(x, [None, self.in_channels, self.resolution // self.up, self.resolution // self.up], "x")
        styles = self.affine(w)
        noise = self.layer_noise(x.shape[0], x.device, noise_mode, noise)
        x = ops.modulated_conv2d(
            x,
            self.weight,
            styles,
            noise=noise,
            up=self.up,
            padding=self.padding,
            resample_filter=self.resample_filter,
            fused_modconv=fused_modconv,
        )
        return ops.bias_act(x, self.bias.to(x.dtype), act="lrelu", gain=ops.SQRT2, clamp=self.conv_clamp)


class ToRGBLayer(nn.Module):
    """Modulated 1x1 conv without demodulation (styles x 1/sqrt(C_in)), bias, clamp."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        kernel_size: int = 1,
        conv_clamp: float | None = None,
        **unused,
    ):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size * kernel_size)

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused_modconv: bool = True) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = ops.modulated_conv2d(x, self.weight, styles, demodulate=False, fused_modconv=fused_modconv)
        return ops.bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp)


class SynthesisBlock(nn.Module):
    """One resolution: const input (4x4) or conv0 (2x up), conv1, ToRGB added to the upsampled image."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        img_channels: int,
        is_last: bool,
        architecture: str = "skip",
        resample_filter: Sequence[float] = (1, 3, 3, 1),
        conv_clamp: float | None = None,
        use_fp16: bool = False,
        **layer_kwargs,
    ):
        super().__init__()
        if architecture not in ("skip", "orig"):
            raise ValueError(f"StyleGAN2 architecture '{architecture}' is not supported (skip, orig)")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.resolution, self.img_channels = resolution, img_channels
        self.is_last, self.architecture, self.use_fp16 = is_last, architecture, use_fp16
        self.register_buffer("resample_filter", ops.setup_filter(resample_filter))
        layer_kwargs = {k: v for k, v in layer_kwargs.items() if k not in ("fp16_channels_last", "channels_last")}
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(
                in_channels,
                out_channels,
                w_dim,
                resolution,
                up=2,
                resample_filter=resample_filter,
                conv_clamp=conv_clamp,
                **layer_kwargs,
            )
        self.conv1 = SynthesisLayer(
            out_channels, out_channels, w_dim, resolution, conv_clamp=conv_clamp, **layer_kwargs
        )
        self.num_conv = 1 if in_channels == 0 else 2
        self.has_torgb = is_last or architecture == "skip"
        self.num_torgb = int(self.has_torgb)
        if self.has_torgb:
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)

    def conv_layers(self) -> list[SynthesisLayer]:
        return [self.conv1] if self.in_channels == 0 else [self.conv0, self.conv1]

    def forward(
        self,
        x: torch.Tensor | None,
        img: torch.Tensor | None,
        ws: torch.Tensor,
        dtype: torch.dtype,
        fused_modconv: bool,
        noise_mode: str = "const",
        noises: Sequence[torch.Tensor | None] = (None, None),
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        assert_shape(ws, [None, self.num_conv + self.num_torgb, None], "block ws")
        w_iter = iter(ws.unbind(dim=1))
        if self.in_channels == 0:
            x = self.const.to(dtype).unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
        else:
            assert_shape(x, [None, self.in_channels, self.resolution // 2, self.resolution // 2], "block x")
            x = x.to(dtype)
        for layer, noise in zip(self.conv_layers(), noises, strict=False):
            x = layer(x, next(w_iter), noise_mode=noise_mode, fused_modconv=fused_modconv, noise=noise)
        if img is not None:
            img = ops.upsample2d(img, self.resample_filter)
        if self.has_torgb:
            y = self.torgb(x, next(w_iter), fused_modconv=fused_modconv).to(torch.float32)
            img = img + y if img is not None else y
        return x, img


class SynthesisNetwork(nn.Module):
    """Blocks b4 ... b{R}; each ToRGB shares its w with the next block's conv0."""

    def __init__(
        self,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        channel_base: int = 32768,
        channel_max: int = 512,
        num_fp16_res: int = 0,
        **block_kwargs,
    ):
        super().__init__()
        assert img_resolution >= 4 and img_resolution & (img_resolution - 1) == 0, img_resolution
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        log2 = int(np.log2(img_resolution))
        self.block_resolutions = [2**i for i in range(2, log2 + 1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}
        fp16_resolution = max(2 ** (log2 + 1 - num_fp16_res), 8)
        # Only tells training from inference in NVlabs; we always pick by speed (resolve_fused).
        self.fused_modconv_default = block_kwargs.pop("fused_modconv_default", None)
        self.num_ws = 0
        for res in self.block_resolutions:
            block = SynthesisBlock(
                channels[res // 2] if res > 4 else 0,
                channels[res],
                w_dim,
                res,
                img_channels,
                is_last=res == img_resolution,
                use_fp16=res >= fp16_resolution,
                **block_kwargs,
            )
            self.num_ws += block.num_conv + (block.num_torgb if res == img_resolution else 0)
            setattr(self, f"b{res}", block)

    def blocks(self) -> list[SynthesisBlock]:
        return [getattr(self, f"b{res}") for res in self.block_resolutions]

    def noise_layers(self) -> list[tuple[str, SynthesisLayer]]:
        """(buffer name relative to this network, layer) in `named_buffers()` order."""
        return [
            (f"b{block.resolution}.{name}.noise_const", layer)
            for block in self.blocks()
            for name, layer in zip(
                ["conv1"] if block.in_channels == 0 else ["conv0", "conv1"], block.conv_layers(), strict=True
            )
            if layer.use_noise
        ]

    def noise_by_block(self, noise: Sequence[torch.Tensor | None] | None) -> dict[int, list[torch.Tensor | None]]:
        """Group a `noise_layers()`-ordered list of overrides per block resolution, checking shapes."""
        layers = self.noise_layers()
        noise = [None] * len(layers) if noise is None else list(noise)
        if len(noise) != len(layers):
            raise ValueError(f"expected {len(layers)} noise maps (noise_buffer_names order), got {len(noise)}")
        by_block: dict[int, list[torch.Tensor | None]] = {}
        for (name, layer), value in zip(layers, noise, strict=False):
            if value is not None and (
                value.ndim not in (2, 4)
                or value.shape[-2:] != (layer.resolution,) * 2
                or (value.ndim == 4 and value.shape[1] != 1)
            ):
                raise ValueError(
                    f"noise for {name}: expected [B,1,{layer.resolution},{layer.resolution}] "
                    f"or [{layer.resolution},{layer.resolution}], got {list(value.shape)}"
                )
            by_block.setdefault(int(name.split(".")[0][1:]), []).append(value)
        return by_block

    @staticmethod
    def resolve_fused(fused_modconv: bool | None, dtype: torch.dtype, batch: int, device_type: str) -> bool:
        """None -> the faster path: non-fused on CPU (oneDNN runs the per-sample grouped/transposed
        convs up to 2x slower, bench/generator.py), the NVlabs rule on CUDA (fused unless fp16 batches)."""
        if fused_modconv is not None:
            return bool(fused_modconv)
        return device_type == "cuda" and (dtype == torch.float32 or batch == 1)

    def forward(
        self,
        ws: torch.Tensor,
        noise_mode: str = "const",
        force_fp32: bool = False,
        noise: Sequence[torch.Tensor | None] | None = None,
        fused_modconv: bool | None = None,
    ) -> torch.Tensor:
        assert_shape(ws, [None, self.num_ws, self.w_dim], "ws")
        if noise is not None and noise_mode == "none":
            raise ValueError("noise maps were given but noise_mode is 'none'")
        ws = ws.to(torch.float32)
        noises = self.noise_by_block(noise)
        x = img = None
        w_idx = 0
        for block in self.blocks():
            use_fp16 = block.use_fp16 and not force_fp32 and ws.device.type == "cuda"
            dtype = torch.float16 if use_fp16 else torch.float32
            block_ws = ws.narrow(1, w_idx, block.num_conv + block.num_torgb)
            fused = self.resolve_fused(fused_modconv, dtype, ws.shape[0], ws.device.type)
            x, img = block(
                x, img, block_ws, dtype, fused, noise_mode=noise_mode, noises=noises.get(block.resolution, [None, None])
            )
            w_idx += block.num_conv
        assert_shape(img, [None, self.img_channels, self.img_resolution, self.img_resolution], "img")
        return img


def split_generator_kwargs(synthesis_kwargs: dict | None, flat: dict) -> dict:
    """Merge ada-style `synthesis_kwargs` and stylegan3-repo flattened kwargs, with that repo's defaults."""
    unknown = sorted(set(flat) - SYNTHESIS_KEYS)
    if unknown:
        raise TypeError(f"unknown StyleGAN2 generator kwargs: {unknown}")
    defaults = SG3REPO_SYNTHESIS_DEFAULTS if flat else ADA_SYNTHESIS_DEFAULTS
    merged = {**defaults, **(synthesis_kwargs or {}), **flat}
    unknown = sorted(set(merged) - SYNTHESIS_KEYS)
    if unknown:
        raise TypeError(f"unknown StyleGAN2 synthesis kwargs: {unknown}")
    return merged


class StyleGAN2Generator(NVlabsGenerator):
    """NVlabs StyleGAN2 `Generator` with the narrow facelatent interface."""

    kind = "stylegan2"

    def __init__(
        self,
        z_dim: int,
        c_dim: int = 0,
        w_dim: int = 512,
        img_resolution: int = 1024,
        img_channels: int = 3,
        mapping_kwargs: dict | None = None,
        synthesis_kwargs: dict | None = None,
        **flat_synthesis_kwargs,
    ):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.synthesis_kwargs = split_generator_kwargs(synthesis_kwargs, flat_synthesis_kwargs)
        # NVlabs names: `synthesis.*`, `mapping.*`. Registered straight into _modules because the
        # GeneratorBase methods `synthesis()`/`mapping()` own those attribute names; synthesis
        # first, as in NVlabs, so named_buffers() order matches too.
        self._modules["synthesis"] = SynthesisNetwork(w_dim, img_resolution, img_channels, **self.synthesis_kwargs)
        self.num_ws = self.synthesis_network.num_ws
        self._modules["mapping"] = MappingNetwork(z_dim, c_dim, w_dim, self.num_ws, **(mapping_kwargs or {}))

    def noise_buffer_names(self) -> list[str]:
        """Names of the `noise_const` buffers, in `named_buffers()` order (the order of a noise list)."""
        return ["synthesis." + name for name, _ in self.synthesis_network.noise_layers()]

    def mapping(self, z, c=None, truncation_psi: float = 1.0, truncation_cutoff: int | None = None):
        return self.mapping_network(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)

    def noise_list(self, noise: NoiseOverride) -> list[torch.Tensor | None] | None:
        """A noise override as a list in `noise_buffer_names()` order (dict keys must be those names)."""
        if noise is None or not isinstance(noise, Mapping):
            return None if noise is None else list(noise)
        names = self.noise_buffer_names()
        unknown = sorted(set(noise) - set(names))
        if unknown:
            raise KeyError(f"unknown noise buffer names {unknown}; see noise_buffer_names(G)")
        return [noise.get(name) for name in names]

    def synthesis(
        self,
        ws,
        noise_mode: str = "const",
        force_fp32: bool = False,
        noise: NoiseOverride = None,
        fused_modconv: bool | None = None,
    ):
        """ws [B, num_ws, w_dim] -> images [B, C, R, R] (fp32; fp16 blocks only on CUDA without force_fp32).

        `noise`: per-layer maps [B,1,r,r] (or [r,r]) that replace the `noise_const` buffers (or the
        random draw) before the `noise_strength` scaling: a list in `noise_buffer_names()` order,
        i.e. `named_buffers()` order, or a dict keyed by those names (absent layers keep their own
        noise). `noise_mode='none'` refuses overrides. `fused_modconv`: True = grouped conv,
        False = shared conv with input/output scaling, None = the faster one for this batch and
        device (`SynthesisNetwork.resolve_fused`); the two agree to ~1e-5.
        """
        return self.synthesis_network(
            ws, noise_mode=noise_mode, force_fp32=force_fp32, noise=self.noise_list(noise), fused_modconv=fused_modconv
        )


def noise_buffer_names(G: nn.Module) -> list[str]:
    """The per-layer noise buffer names of a generator (empty for backends without noise inputs)."""
    names = getattr(G, "noise_buffer_names", None)
    return list(names()) if callable(names) else []
