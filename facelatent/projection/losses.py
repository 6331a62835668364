"""Per-image projection losses: LPIPS with the NVlabs VGG16, FaceNet features, pixel MSE / L1.

Every loss takes `synth` and `target` as float [B, C, H, W] on the 0..255 scale and returns
a per-image vector [B], so a batched projection equals B independent ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import torch
import torch.nn.functional as F

from facelatent.errors import ConfigError, InputFileError

LossFn = Callable[[torch.Tensor], torch.Tensor]  # synth [B,C,H,W] 0..255 -> [B]

VGG16_HELP = (
    "the LPIPS loss needs NVlabs' vgg16.pt (TorchScript); download it yourself from the NVlabs "
    "stylegan2-ada-pytorch release (metrics/vgg16.pt), put it at this path or set "
    "`projection.vgg16_path` in the config, or use `loss: mse`"
)


def downsample_to_256(images: torch.Tensor) -> torch.Tensor:
    """NVlabs: area-downsample to 256 only when larger."""
    if images.shape[2] > 256:
        return F.interpolate(images, size=(256, 256), mode="area")
    return images


def load_vgg16(path: str | Path | None, device: torch.device | str = "cpu") -> torch.jit.ScriptModule:
    """Load the NVlabs `vgg16.pt` TorchScript feature network (TorchScript, not a pickle of Python code)."""
    if path is None:
        raise InputFileError("vgg16.pt", "no path configured; " + VGG16_HELP)
    path = Path(path)
    if not path.exists():
        raise InputFileError(path, "file not found; " + VGG16_HELP)
    try:
        net = torch.jit.load(str(path), map_location=device).eval()
    except RuntimeError as exc:
        raise InputFileError(path, f"not a TorchScript file ({str(exc).splitlines()[0]})") from exc
    for p in net.parameters():  # the projector never needs VGG weight gradients
        p.requires_grad_(False)
    return net


def lpips_vgg16_loss(vgg16: torch.nn.Module, target: torch.Tensor) -> LossFn:
    """NVlabs projector distance: squared L2 between `vgg16(x, resize_images=False, return_lpips=True)` features."""
    with torch.no_grad():
        target_features = vgg16(downsample_to_256(target), resize_images=False, return_lpips=True)

    def loss(synth: torch.Tensor) -> torch.Tensor:
        features = vgg16(downsample_to_256(synth), resize_images=False, return_lpips=True)
        return (target_features - features).square().flatten(1).sum(1)

    return loss


LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, as cv2's RGB2GRAY makes the grey fixtures and CK+ crops


def grey_targets(target: torch.Tensor) -> torch.Tensor:
    """[B] bool: RGB targets whose three channels are equal (grey photos such as CK+ stored as RGB)."""
    if target.shape[1] != 3:
        return torch.zeros(target.shape[0], dtype=torch.bool, device=target.device)
    return (target[:, :1] == target[:, 1:]).flatten(1).all(1)


def as_grey_where(synth: torch.Tensor, grey: torch.Tensor) -> torch.Tensor:
    """synth [B, 3, H, W] with the rows flagged in `grey` [B] replaced by their luma on all three channels.

    A grey photo says nothing about colour: comparing the render's luma leaves hue to the latent's
    other evidence instead of pulling it towards an off-manifold grey face.
    """
    if synth.shape[1] != 3 or not bool(grey.any()):
        return synth
    weights = torch.tensor(LUMA, dtype=synth.dtype, device=synth.device).reshape(1, 3, 1, 1)
    luma = (synth * weights).sum(1, keepdim=True).expand_as(synth)
    return torch.where(grey.reshape(-1, 1, 1, 1), luma, synth)


def pixel_residual(synth: torch.Tensor, target: torch.Tensor, grey: torch.Tensor) -> torch.Tensor:
    """(synth - target) / 255, with the `grey` targets ([B] bool, see `grey_targets`) compared against the
    render's luma, except that a target pixel saturated at 0 or 255 only penalises synth on the wrong side:
    a uint8 target is a clipped render, so any synth value beyond the clip point matches it."""
    residual = as_grey_where(synth, grey) - target
    residual = torch.where(target >= 255, residual.clamp(max=0), residual)
    residual = torch.where(target <= 0, residual.clamp(min=0), residual)
    return residual / 255.0


def mse_loss(target: torch.Tensor) -> LossFn:
    """Mean squared `pixel_residual` (the [0, 1] scale, clip-aware), per image."""
    grey = grey_targets(target)  # once per target, not at every optimiser step

    def loss(synth: torch.Tensor) -> torch.Tensor:
        return pixel_residual(synth, target, grey).square().flatten(1).mean(1)

    return loss


def l1_loss(target: torch.Tensor) -> LossFn:
    """Mean absolute `pixel_residual` (the [0, 1] scale, clip-aware), per image."""
    grey = grey_targets(target)

    def loss(synth: torch.Tensor) -> torch.Tensor:
        return pixel_residual(synth, target, grey).abs().flatten(1).mean(1)

    return loss


def load_facenet(path: str | Path | None, device: torch.device | str = "cpu") -> torch.nn.Module:
    """The offline FaceNet (CASIA) embedder that the perceptual `facenet` loss reads features from.

    `path`: its weights file, as the rule declares it (never looked up by name)."""
    from facelatent.embeddings import load_embedder

    if path is None:
        raise ConfigError(
            "the 'facenet' projection loss needs the FaceNet weights file "
            "(resources/models/facenet_casia.safetensors, from `facelatent fetch-models`)"
        )
    return load_embedder("facenet_casia", device=device, weights=path)


def facenet_feature_loss(target: torch.Tensor, net: torch.nn.Module) -> LossFn:
    """LPIPS-style distance on unit-normalised intermediate FaceNet features (offline, differentiable)."""
    if not hasattr(net, "features"):
        raise NotImplementedError("this FaceNet build has no `features()` method for a perceptual loss")

    def feats(x: torch.Tensor) -> list[torch.Tensor]:
        x = F.interpolate(x, size=net.input_size, mode="bilinear", align_corners=False, antialias=True)
        return [f / (f.square().sum(1, keepdim=True).sqrt() + 1e-8) for f in net.features(x)]

    with torch.no_grad():
        target_feats = feats(target)

    def loss(synth: torch.Tensor) -> torch.Tensor:
        return sum((a - b).square().sum(1).mean((1, 2)) for a, b in zip(feats(synth), target_feats, strict=True))

    return loss


def build_loss(
    spec: str | Mapping[str, float],
    target: torch.Tensor,
    vgg16_path: str | Path | None = None,
    device: torch.device | str = "cpu",
    networks: dict[str, torch.nn.Module] | None = None,
    facenet_path: str | Path | None = None,
) -> LossFn:
    """`spec` is a name (`lpips_vgg16`, `mse`, `l1`, `facenet`) or a {name: weight} mapping for a weighted sum.

    `vgg16_path`, `facenet_path`: the feature networks' weight files, needed by the losses that use them.

    `networks`: a dict that keeps the loaded feature networks, so that losses for several target
    chunks share one copy (filled on first use).
    """
    weights = {spec: 1.0} if isinstance(spec, str) else dict(spec)
    networks = {} if networks is None else networks
    parts: list[tuple[float, LossFn]] = []
    for name, weight in weights.items():
        if name == "lpips_vgg16":
            if "vgg16" not in networks:
                networks["vgg16"] = load_vgg16(vgg16_path, device)
            parts.append((weight, lpips_vgg16_loss(networks["vgg16"], target)))
        elif name == "mse":
            parts.append((weight, mse_loss(target)))
        elif name == "l1":
            parts.append((weight, l1_loss(target)))
        elif name == "facenet":
            if "facenet" not in networks:
                networks["facenet"] = load_facenet(facenet_path, device)
            parts.append((weight, facenet_feature_loss(target, networks["facenet"])))
        else:
            raise ValueError(f"unknown loss '{name}' (known: lpips_vgg16, mse, l1, facenet)")

    def total(synth: torch.Tensor) -> torch.Tensor:
        return sum(w * fn(synth) for w, fn in parts)

    return total
