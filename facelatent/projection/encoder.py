"""A convolutional encoder image -> w, trained on the generator's own samples, to start projection.

Projection from w_avg lands some images in a wrong basin, the more so when the photo carries less
information than the render (grey CK+ frames) or is framed differently (the aligner's landmark noise).
An encoder regressed on (render, w) pairs, with the renders randomly warped and greyed as the aligned
crops are, starts the optimiser near the right basin: the hybrid inversion of In-Domain GAN Inversion
(Zhu et al., 2020), here with a small network trained in minutes on the CPU.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from facelatent.errors import InputFileError
from facelatent.generators.base import GeneratorBase, assert_shape
from facelatent.projection.losses import LUMA
from facelatent.projection.refine import similarity_warp
from facelatent.store import atomic_path

FORMAT = "facelatent.projection.encoder"
log = logging.getLogger(__name__)


@dataclass
class EncoderConfig:
    """The `encoder` config section (see config/README.md)."""

    samples: int = 10000  # generator samples rendered once and reused every epoch
    steps: int = 1000  # Adam steps of `batch_size` samples
    batch_size: int = 128
    learning_rate: float = 1e-3  # decays by 0.9 every 200 steps
    warp_std: float = 0.03  # std of the random similarity warp (half-widths, radians, log-scale)
    grey_share: float = 0.3  # share of training renders shown as luma, as grey photos are
    heldout: int = 500  # samples kept out of training to report the fit
    seed: int = 0

    def __post_init__(self) -> None:
        if self.samples <= self.heldout or min(self.steps, self.batch_size, self.heldout) < 1:
            raise ValueError("encoder: need steps, batch_size, heldout >= 1 and samples > heldout")
        if not 0 <= self.grey_share <= 1 or self.warp_std < 0 or self.learning_rate <= 0:
            raise ValueError("encoder: grey_share in [0, 1], warp_std >= 0 and learning_rate > 0")


class LatentEncoder(nn.Module):
    """Stride-2 4x4 convolutions down to 4x4, then a linear map to the normalised latent (w - w_avg) / sigma."""

    def __init__(self, resolution: int, channels: int, w_dim: int, width: int = 32, max_width: int = 256):
        super().__init__()
        assert resolution >= 8 and resolution & (resolution - 1) == 0, (
            f"resolution must be a power of 2, got {resolution}"
        )
        self.resolution, self.channels, self.w_dim = resolution, channels, w_dim
        layers, c_in = [], channels
        for i in range(int(math.log2(resolution)) - 2):
            c_out = min(width * 2**i, max_width)
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1), nn.LeakyReLU(0.2)]
            c_in = c_out
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.head = nn.Linear(c_in * 16, w_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """[-1, 1] images [B, C, R, R] -> normalised latents [B, w_dim]."""
        assert_shape(images, [None, self.channels, self.resolution, self.resolution], "images")
        return self.head(self.features(images))


def augment(images: torch.Tensor, cfg: EncoderConfig, generator: torch.Generator) -> torch.Tensor:
    """Random similarity warps and, for a share of the batch, luma in every channel."""
    B = images.shape[0]
    if cfg.warp_std > 0:
        images = similarity_warp(images, torch.randn(B, 4, generator=generator) * cfg.warp_std)
    if cfg.grey_share > 0 and images.shape[1] == 3:
        grey = (torch.rand(B, generator=generator) < cfg.grey_share)[:, None, None, None]
        luma = (images * torch.tensor(LUMA, dtype=images.dtype).view(1, 3, 1, 1)).sum(1, keepdim=True).expand_as(images)
        images = torch.where(grey, luma, images)
    return images


@torch.no_grad()
def render_training_set(G: GeneratorBase, cfg: EncoderConfig, batch: int = 250) -> tuple[torch.Tensor, torch.Tensor]:
    """(w [N, w_dim], renders [N, C, R, R] in [-1, 1]) for N = cfg.samples latents w = mapping(z)."""
    device = G.w_avg.device
    z = torch.from_numpy(np.random.RandomState(cfg.seed).randn(cfg.samples, G.z_dim).astype(np.float32))
    ws, images = [], []
    for chunk in z.split(batch):
        w = G.mapping(chunk.to(device), None)[:, :1, :].float()
        ws.append(w[:, 0].cpu())
        images.append(G.synthesis(w.repeat(1, G.num_ws, 1), noise_mode="const").float().clamp(-1, 1).cpu())
    return torch.cat(ws), torch.cat(images)


def train_encoder(
    G: GeneratorBase, w_stats: tuple[torch.Tensor, float], cfg: EncoderConfig, progress: bool = True
) -> tuple[LatentEncoder, dict]:
    """Regress normalised latents on augmented renders; returns the encoder (CPU, eval) and held-out figures."""
    w_avg, w_std = w_stats
    sigma = float(w_std) / G.w_dim**0.5
    ws, images = render_training_set(G, cfg)
    targets = (ws - w_avg.reshape(1, -1).cpu()) / sigma
    n_train = cfg.samples - cfg.heldout
    torch.manual_seed(cfg.seed)
    encoder = LatentEncoder(G.img_resolution, G.img_channels, G.w_dim)
    optimizer = torch.optim.Adam(encoder.parameters(), lr=cfg.learning_rate)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=200, gamma=0.9)
    rng = torch.Generator().manual_seed(cfg.seed)
    bar = tqdm(range(cfg.steps), desc="train encoder", disable=not progress, dynamic_ncols=True, mininterval=2.0)
    for _ in bar:
        idx = torch.randint(0, n_train, (cfg.batch_size,), generator=rng)
        loss = F.mse_loss(encoder(augment(images[idx], cfg, rng)), targets[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
    encoder.eval()
    with torch.no_grad():
        predicted = encoder(images[n_train:])
    truth = targets[n_train:]
    metrics = {
        "heldout_mse": float(F.mse_loss(predicted, truth)),  # 1.0 = no better than w_avg
        "heldout_cosine_median": float(F.cosine_similarity(predicted, truth).median()),
        "final_train_loss": float(loss.detach()),
    }
    return encoder, metrics


def save_encoder(
    path: str | Path,
    encoder: LatentEncoder,
    cfg: EncoderConfig,
    w_stats: tuple[torch.Tensor, float],
    generator_info: dict,
    metrics: dict,
) -> None:
    """Write the checkpoint next to its name, then rename (no half-written file is ever taken for done)."""
    with atomic_path(path) as tmp:
        torch.save(
            {
                "format": FORMAT,
                "state_dict": encoder.state_dict(),
                "config": asdict(cfg),
                "resolution": encoder.resolution,
                "channels": encoder.channels,
                "w_dim": encoder.w_dim,
                "w_avg": w_stats[0].reshape(-1).cpu(),
                "w_std": float(w_stats[1]),
                "generator": {k: str(v) for k, v in generator_info.items()},
                "metrics": metrics,
            },
            tmp,
        )


class ConfiguredEncoder:
    """A trained encoder with its latent statistics: uint8 photos -> w [B, 1, w_dim]."""

    def __init__(self, network: LatentEncoder, w_avg: torch.Tensor, w_std: float):
        self.network, self.w_avg, self.sigma = network, w_avg.reshape(1, 1, -1), w_std / network.w_dim**0.5

    @torch.no_grad()
    def __call__(self, targets: torch.Tensor) -> torch.Tensor:
        assert targets.dtype == torch.uint8, f"targets must be uint8, got {targets.dtype}"
        u = self.network(targets.float().cpu() / 127.5 - 1)
        return self.w_avg + self.sigma * u[:, None, :]


def load_encoder(path: str | Path, G: GeneratorBase) -> ConfiguredEncoder:
    """Load an encoder checkpoint for G; a file for another resolution or latent width names itself."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means an unusable file
        raise InputFileError(path, f"not a readable encoder checkpoint ({type(exc).__name__})") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise InputFileError(path, "not a facelatent encoder checkpoint")
    wanted = (G.img_resolution, G.img_channels, G.w_dim)
    found = (ckpt["resolution"], ckpt["channels"], ckpt["w_dim"])
    if found != wanted:
        raise InputFileError(
            path,
            f"encoder for {found[0]}px, {found[1]} channels, w_dim {found[2]}; the generator "
            f"is {wanted[0]}px, {wanted[1]} channels, w_dim {wanted[2]}",
        )
    network = LatentEncoder(*found)
    network.load_state_dict(ckpt["state_dict"])
    return ConfiguredEncoder(network.eval(), ckpt["w_avg"], ckpt["w_std"])
