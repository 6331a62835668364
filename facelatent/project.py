"""Batched GAN inversion following the NVlabs projector schedule exactly.

B images are optimised in one graph. Each has its own latent and noise maps; the loss is a
sum of per-image terms and Adam is element-wise, so the batch equals B sequential runs.
Randomness is drawn per image from (seed, image id) so a result never depends on which
batch or shard an image landed in; `rng="reference"` instead draws from the global torch
RNG in the original's order (B must be 1) to reproduce an NVlabs run bit for bit.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from facelatent.generators.base import GeneratorBase, assert_shape
from facelatent.losses import build_loss

log = logging.getLogger(__name__)


@dataclass
class Schedule:
    """NVlabs `projector.project` keywords, with their defaults."""

    w_avg_samples: int = 10000
    initial_learning_rate: float = 0.1
    initial_noise_factor: float = 0.05
    lr_rampdown_length: float = 0.25
    lr_rampup_length: float = 0.05
    noise_ramp_length: float = 0.75
    regularize_noise_weight: float = 1e5
    # ours: stop an image once its relative loss change stays under `early_stop_tol` for `early_stop_patience` steps
    early_stop_tol: float | None = None
    early_stop_patience: int = 50


@dataclass
class ProjectionState:
    """Everything needed to continue a projection exactly: latents, noise, Adam moments, step, RNG."""

    step: int
    w_opt: torch.Tensor
    noise: list[torch.Tensor]
    adam: dict
    rng_states: list[torch.Tensor]
    losses: torch.Tensor
    done: torch.Tensor
    stable_steps: torch.Tensor


@dataclass
class ProjectionResult:
    w: torch.Tensor  # [B, num_ws, w_dim], the optimised latents broadcast to all ws
    noise: list[torch.Tensor]  # optimised noise maps [B, 1, r, r] in noise_buffer_names() order
    loss: torch.Tensor  # [B] final per-image loss (without the noise regulariser)
    steps: torch.Tensor  # [B] steps each image took (< num_steps when stopped early)
    history: torch.Tensor | None = None  # [num_steps, B, num_ws, w_dim] when requested
    extra: dict = field(default_factory=dict)


def image_seed(seed: int, image_id: str | int) -> int:
    """A 63-bit seed from (seed, image id), stable across processes and Python versions."""
    digest = hashlib.sha256(f"{seed}:{image_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def w_statistics(G: GeneratorBase, num_samples: int, device: torch.device, batch: int = 4096) -> tuple[torch.Tensor, float]:
    """NVlabs start point: mean and scalar std of `mapping(z)[:, :1]` for `RandomState(123)` samples."""
    z = np.random.RandomState(123).randn(num_samples, G.z_dim)
    with torch.no_grad():
        w = torch.cat([G.mapping(torch.from_numpy(z[i:i + batch]).to(device), None)[:, :1, :].float().cpu()
                       for i in range(0, num_samples, batch)]).numpy().astype(np.float32)
    w_avg = np.mean(w, axis=0, keepdims=True)  # [1, 1, C]
    w_std = float((np.sum((w - w_avg) ** 2) / num_samples) ** 0.5)
    return torch.from_numpy(w_avg).to(device), w_std


def learning_rate(t: float, lr0: float, rampdown: float, rampup: float) -> float:
    """Cosine ramp down over the last `rampdown` fraction, linear ramp up over the first `rampup`."""
    ramp = min(1.0, (1.0 - t) / rampdown)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    return lr0 * ramp * min(1.0, t / rampup)


def noise_regularizer(noise: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per-image NVlabs noise regulariser: squared autocorrelations at every octave down to 8 px. -> [B]"""
    total = 0.0
    for n in noise:
        while True:
            total = total + (n * torch.roll(n, shifts=1, dims=3)).mean((1, 2, 3)) ** 2
            total = total + (n * torch.roll(n, shifts=1, dims=2)).mean((1, 2, 3)) ** 2
            if n.shape[2] <= 8:
                break
            n = F.avg_pool2d(n, kernel_size=2)
    return total if isinstance(total, torch.Tensor) else torch.zeros(())


def renormalize_noise_(noise: Sequence[torch.Tensor]) -> None:
    """Zero mean, unit RMS per image and map (NVlabs does it per buffer of its single image)."""
    with torch.no_grad():
        for n in noise:
            n -= n.mean((1, 2, 3), keepdim=True)
            n *= n.square().mean((1, 2, 3), keepdim=True).rsqrt()


def noise_shapes(G: GeneratorBase) -> list[tuple[str, tuple[int, int]]]:
    """(name, (H, W)) of each noise_const buffer in `named_buffers()` order; empty for the DCGAN."""
    from facelatent.generators.stylegan2 import noise_buffer_names

    buffers = dict(G.named_buffers())
    return [(name, tuple(buffers[name].shape[-2:])) for name in noise_buffer_names(G)]


def initial_noise(G: GeneratorBase, batch: int, rng: str, generators: list[torch.Generator],
                  device: torch.device) -> list[torch.Tensor]:
    """Fresh standard-normal noise maps per image; `reference` draws them from the global RNG like NVlabs."""
    maps = []
    for _, (h, w) in noise_shapes(G):
        if rng == "reference":
            maps.append(torch.randn(h, w, device=device)[None, None])
        else:
            maps.append(torch.stack([torch.randn(1, h, w, generator=g) for g in generators]).to(device))
    return maps


def latent_noise(w_opt: torch.Tensor, rng: str, generators: list[torch.Generator]) -> torch.Tensor:
    """One standard-normal draw shaped like w_opt, per image from its own generator (or the global RNG)."""
    if rng == "reference":
        return torch.randn_like(w_opt)
    return torch.stack([torch.randn(w_opt.shape[1:], generator=g) for g in generators]).to(w_opt.device)


def to_float_targets(targets: torch.Tensor, G: GeneratorBase) -> torch.Tensor:
    """uint8 [B, C, R, R] at the generator's resolution -> float 0..255, with a clear error otherwise."""
    if targets.dtype != torch.uint8:
        raise TypeError(f"targets must be uint8 [B, C, H, W], got {targets.dtype}")
    R = G.img_resolution
    if targets.ndim != 4 or tuple(targets.shape[1:]) != (G.img_channels, R, R):
        raise ValueError(f"targets have shape {list(targets.shape)} but the generator makes "
                         f"[B, {G.img_channels}, {R}, {R}] images; align them at {R} px first")
    return targets.to(torch.float32)


def project(
    G: GeneratorBase,
    targets: torch.Tensor,
    *,
    num_steps: int = 1000,
    space: str = "w",
    loss: str | Mapping[str, float] = "lpips_vgg16",
    vgg16_path: str | Path | None = None,
    rng: str = "per_image",
    seed: int = 0,
    ids: Sequence[str | int] | None = None,
    return_history: bool = False,
    resume: ProjectionState | None = None,
    checkpoint_every: int | None = None,
    on_checkpoint: Callable[[ProjectionState], None] | None = None,
    progress: bool = True,
    w_stats: tuple[torch.Tensor, float] | None = None,
    **schedule,
) -> ProjectionResult:
    """Project uint8 targets [B, C, H, W] into W ([B,1,w_dim] broadcast) or W+ ([B,num_ws,w_dim])."""
    sched = Schedule(**schedule)
    if space not in ("w", "w+"):
        raise ValueError(f"space must be 'w' or 'w+', got '{space}'")
    if rng not in ("per_image", "reference"):
        raise ValueError(f"rng must be 'per_image' or 'reference', got '{rng}'")
    device = G.w_avg.device
    target = to_float_targets(targets, G).to(device)
    B = target.shape[0]
    if rng == "reference" and B != 1:
        raise ValueError("rng='reference' reproduces the one-image NVlabs run; use B=1")
    ids = list(ids) if ids is not None else list(range(B))
    assert len(ids) == B, "one id per target"

    w_avg, w_std = w_stats if w_stats is not None else w_statistics(G, sched.w_avg_samples, device)
    generators = [torch.Generator().manual_seed(image_seed(seed, i)) for i in ids]
    num_w = G.num_ws if space == "w+" else 1
    names = [name for name, _ in noise_shapes(G)]

    if resume is None:
        w_opt = w_avg.detach().clone().repeat(B, num_w, 1)
        noise = initial_noise(G, B, rng, generators, device)
    else:
        w_opt, noise = resume.w_opt.clone().to(device), [n.clone().to(device) for n in resume.noise]
        for g, state in zip(generators, resume.rng_states):
            g.set_state(state)
    w_opt.requires_grad_(True)
    for n in noise:
        n.requires_grad_(True)
    assert_shape(w_opt, [B, num_w, G.w_dim], "w_opt")

    optimizer = torch.optim.Adam([w_opt, *noise], betas=(0.9, 0.999), lr=sched.initial_learning_rate)
    if resume is not None:
        optimizer.load_state_dict(resume.adam)
    loss_fn = build_loss(loss, target, vgg16_path=vgg16_path, device=device)

    start = resume.step if resume is not None else 0
    last_loss = resume.losses.clone() if resume is not None else torch.full((B,), float("nan"))
    done = resume.done.clone() if resume is not None else torch.zeros(B, dtype=torch.bool)
    stable = resume.stable_steps.clone() if resume is not None else torch.zeros(B, dtype=torch.long)
    steps_taken = torch.full((B,), num_steps, dtype=torch.long)
    history = torch.zeros(num_steps, B, G.num_ws, G.w_dim) if return_history else None

    bar = tqdm(range(start, num_steps), total=num_steps, initial=start, desc="project", disable=not progress,
               dynamic_ncols=True, mininterval=2.0)
    for step in bar:
        t = step / num_steps
        w_noise_scale = w_std * sched.initial_noise_factor * max(0.0, 1.0 - t / sched.noise_ramp_length) ** 2
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(t, sched.initial_learning_rate, sched.lr_rampdown_length, sched.lr_rampup_length)

        frozen = [p.detach().clone() for p in (w_opt, *noise)] if done.any() else None
        ws = (w_opt + latent_noise(w_opt, rng, generators) * w_noise_scale)
        ws = ws.repeat(1, G.num_ws // num_w, 1)
        synth = (G.synthesis(ws, noise_mode="const", noise=noise or None) + 1) * (255 / 2)
        dist = loss_fn(synth)
        reg = noise_regularizer(noise) if noise else torch.zeros(B, device=device)
        total = (dist + reg * sched.regularize_noise_weight).sum()
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        renormalize_noise_(noise)
        if frozen is not None:  # images that stopped early keep their parameters
            with torch.no_grad():
                for p, f in zip((w_opt, *noise), frozen):
                    p[done] = f[done]

        dist = dist.detach().cpu()
        if sched.early_stop_tol is not None:
            change = ((last_loss - dist).abs() / dist.clamp_min(1e-12)).nan_to_num(float("inf"))
            stable = torch.where(change < sched.early_stop_tol, stable + 1, torch.zeros_like(stable))
            newly = (~done) & (stable >= sched.early_stop_patience)
            steps_taken[newly] = step + 1
            done |= newly
        last_loss = torch.where(done & ~last_loss.isnan(), last_loss, dist)
        if history is not None:
            history[step] = w_opt.detach().repeat(1, G.num_ws // num_w, 1).cpu()
        bar.set_postfix(loss=f"{float(dist.mean()):.4g}", refresh=False)
        if checkpoint_every and on_checkpoint and (step + 1) % checkpoint_every == 0 and step + 1 < num_steps:
            on_checkpoint(ProjectionState(step + 1, w_opt.detach().cpu().clone(), [n.detach().cpu().clone() for n in noise],
                                          optimizer.state_dict(), [g.get_state() for g in generators],
                                          last_loss.clone(), done.clone(), stable.clone()))
        if sched.early_stop_tol is not None and bool(done.all()):
            break
    bar.close()

    w = w_opt.detach().repeat(1, G.num_ws // num_w, 1)
    return ProjectionResult(w=w.cpu(), noise=[n.detach().cpu() for n in noise], loss=last_loss, steps=steps_taken,
                            history=history, extra={"w_std": w_std, "noise_names": names})


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB between two 0..255 image batches."""
    mse = ((a.float() - b.float()) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return 10 * torch.log10(255.0 ** 2 / mse)


@torch.no_grad()
def render(G: GeneratorBase, w: torch.Tensor, noise: Sequence[torch.Tensor] | None = None,
           batch: int = 16) -> torch.Tensor:
    """Render latents [N, num_ws, w_dim] (+ optional per-image noise) to uint8 [N, C, R, R]."""
    device = G.w_avg.device
    out = []
    for i in range(0, len(w), batch):
        kw = {"noise": [n[i:i + batch].to(device) for n in noise]} if noise else {}
        img = G.synthesis(w[i:i + batch].to(device), noise_mode="const", **kw)
        out.append((img * 127.5 + 128).clamp(0, 255).to(torch.uint8).cpu())
    return torch.cat(out) if out else torch.zeros(0, G.img_channels, G.img_resolution, G.img_resolution, dtype=torch.uint8)
