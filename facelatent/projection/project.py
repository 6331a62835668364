"""Batched GAN inversion following the NVlabs projector schedule exactly.

B images are optimised in one graph. Each has its own latent and noise maps; the loss is a
sum of per-image terms and Adam is element-wise, so the batch equals B sequential runs up to
float rounding. Randomness is drawn per image from (seed, image id), so a result does not
depend on which batch or shard an image landed in; `rng="reference"` instead draws from the
global torch RNG in the original's order (B must be 1) to reproduce an NVlabs run bit for bit.

Float rounding: CPU kernels (oneDNN convs, MKL GEMMs) round differently for different batch
sizes, and Adam turns those 1e-7 differences into 1e-3 differences in w within ~50 steps.
For a fixed batch size the neighbours and positions do not matter. `micro_batch=K` runs the
generator and the loss in chunks of exactly K images (the last one padded), which makes every
image's arithmetic, and so its result, the same whatever batch it is in.
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
from facelatent.generators.statistics import w_statistics
from facelatent.projection.config import ProjectionConfig
from facelatent.projection.losses import LossFn, build_loss

log = logging.getLogger(__name__)


@dataclass
class Schedule:
    """NVlabs `projector.project` keywords, with their defaults, then options of ours."""

    w_avg_samples: int = 10000
    initial_learning_rate: float = 0.1
    initial_noise_factor: float = 0.05
    lr_rampdown_length: float = 0.25
    lr_rampup_length: float = 0.05
    noise_ramp_length: float = 0.75
    regularize_noise_weight: float = 1e5
    # stop an image once its relative loss change stays under `early_stop_tol` for `early_stop_patience` steps
    early_stop_tol: float | None = None
    early_stop_patience: int = 50
    # "randn": fresh standard-normal noise maps (NVlabs); "const": start from the generator's own buffers
    noise_init: str = "randn"
    # False keeps the starting noise maps fixed (no noise regulariser, no renormalisation)
    optimize_noise: bool = True
    # None: the generator's fastest modconv path, or fused for rng="reference" (NVlabs' eval-mode choice)
    fused_modconv: bool | None = None
    # None: one chunk of B; K: generator and loss run on chunks of exactly K images (batch-size invariant)
    micro_batch: int | None = None

    def __post_init__(self) -> None:
        if self.noise_init not in ("randn", "const"):
            raise ValueError(f"noise_init must be 'randn' or 'const', got '{self.noise_init}'")
        if self.micro_batch is not None and self.micro_batch < 1:
            raise ValueError(f"micro_batch must be None or >= 1, got {self.micro_batch}")


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
    steps_taken: torch.Tensor  # [B] the step each stopped image stopped at (num_steps while it runs)


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


def learning_rate(t: float, lr0: float, rampdown: float, rampup: float) -> float:
    """Cosine ramp down over the last `rampdown` fraction, linear ramp up over the first `rampup`."""
    ramp = min(1.0, (1.0 - t) / rampdown)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    ramp = ramp * min(1.0, t / rampup)
    return lr0 * ramp  # this multiplication order rounds like NVlabs


def latent_noise_scale(t: float, w_std: float, sched: Schedule) -> np.float32:
    """Std of the noise added to w at time t, in float32 arithmetic like NVlabs (its w_std is a numpy float32)."""
    return np.float32(w_std) * sched.initial_noise_factor * max(0.0, 1.0 - t / sched.noise_ramp_length) ** 2


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


def renormalized(n: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit RMS per image (NVlabs does it in place per buffer of its single image)."""
    n = n - n.mean((1, 2, 3), keepdim=True)
    return n * n.square().mean((1, 2, 3), keepdim=True).rsqrt()


def noise_shapes(G: GeneratorBase) -> list[tuple[str, tuple[int, int]]]:
    """(name, (H, W)) of each noise_const buffer in `named_buffers()` order; empty for the DCGAN."""
    from facelatent.generators.stylegan2 import noise_buffer_names

    buffers = dict(G.named_buffers())
    return [(name, tuple(buffers[name].shape[-2:])) for name in noise_buffer_names(G)]


def initial_noise(
    G: GeneratorBase,
    batch: int,
    rng: str,
    generators: list[torch.Generator],
    device: torch.device,
    init: str = Schedule.noise_init,
) -> list[torch.Tensor]:
    """Starting noise maps [B,1,h,w]: standard-normal draws per image (`reference`: from the global RNG,
    like NVlabs), or copies of the generator's own `noise_const` buffers (`init="const"`)."""
    buffers = dict(G.named_buffers())
    maps = []
    for name, (h, w) in noise_shapes(G):
        if init == "const":
            maps.append(buffers[name].detach().to(device, torch.float32).reshape(1, 1, h, w).repeat(batch, 1, 1, 1))
        elif rng == "reference":
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
        raise ValueError(
            f"targets have shape {list(targets.shape)} but the generator makes "
            f"[B, {G.img_channels}, {R}, {R}] images; align them at {R} px first"
        )
    return targets.to(torch.float32)


def synthesis_options(sched: Schedule, rng: str) -> dict:
    """Keyword arguments for `G.synthesis`: the modconv path (fused for `reference`, as NVlabs' eval-mode G)."""
    fused = sched.fused_modconv if sched.fused_modconv is not None else (True if rng == "reference" else None)
    return {"fused_modconv": fused} if fused is not None else {}


def chunk_bounds(batch: int, size: int | None) -> list[tuple[int, int]]:
    """[start, stop) of consecutive chunks of `size` rows (one chunk of everything for None)."""
    size = max(1, batch if size is None else size)
    return [(start, min(batch, start + size)) for start in range(0, batch, size)]


def padded(x: torch.Tensor, rows: int) -> torch.Tensor:
    """x with detached copies of its last row appended up to `rows` rows (no gradient reaches the pads)."""
    missing = rows - x.shape[0]
    if missing <= 0:
        return x
    return torch.cat([x, x[-1:].detach().expand(missing, *x.shape[1:])])


class ChunkedObjective:
    """The per-image loss and noise terms, computed on fixed-size chunks of the batch.

    Each chunk of `size` rows is evaluated as one call (the last chunk padded with copies), so
    an image sees the same kernel shapes, hence the same rounding, whatever batch it is in.
    """

    def __init__(
        self,
        G: GeneratorBase,
        loss: str | Mapping[str, float],
        target: torch.Tensor,
        size: int | None,
        vgg16_path: str | Path | None,
        synth_kwargs: dict,
        facenet_path: str | Path | None = None,
    ):
        self.G, self.synth_kwargs = G, synth_kwargs
        self.size = target.shape[0] if size is None else size
        self.bounds = chunk_bounds(target.shape[0], self.size)
        networks: dict[str, torch.nn.Module] = {}  # one copy of VGG16/FaceNet for all chunks
        self.loss_fns: list[LossFn] = [
            build_loss(
                loss,
                padded(target[a:b], self.size),
                vgg16_path=vgg16_path,
                device=target.device,
                networks=networks,
                facenet_path=facenet_path,
            )
            for a, b in self.bounds
        ]

    def synthesize(self, ws: torch.Tensor, noise: Sequence[torch.Tensor]) -> torch.Tensor:
        """Images on the projector's 0..255 scale, `(x + 1) * 127.5` as in NVlabs (no clamp, no rounding)."""
        img = self.G.synthesis(ws, noise_mode="const", noise=list(noise) or None, **self.synth_kwargs)
        return (img + 1) * (255 / 2)

    def distance(self, ws: torch.Tensor, noise: Sequence[torch.Tensor]) -> torch.Tensor:
        """Per-image loss [B] of latents ws [B, num_ws, C] rendered with per-image noise maps."""
        parts = []
        for (a, b), loss_fn in zip(self.bounds, self.loss_fns, strict=True):
            synth = self.synthesize(padded(ws[a:b], self.size), [padded(n[a:b], self.size) for n in noise])
            parts.append(loss_fn(synth)[: b - a])
        return torch.cat(parts)

    def regularizer(self, noise: Sequence[torch.Tensor]) -> torch.Tensor:
        """Per-image noise regulariser [B], chunk by chunk."""
        return torch.cat(
            [noise_regularizer([padded(n[a:b], self.size) for n in noise])[: b - a] for a, b in self.bounds]
        )

    @torch.no_grad()
    def renormalize_(self, noise: Sequence[torch.Tensor]) -> None:
        """Renormalise each image's noise maps in place, chunk by chunk."""
        for n in noise:
            for a, b in self.bounds:
                n[a:b] = renormalized(padded(n[a:b], self.size))[: b - a]


def project(
    G: GeneratorBase,
    targets: torch.Tensor,
    *,
    num_steps: int = ProjectionConfig.steps,
    space: str = ProjectionConfig.space,
    loss: str | Mapping[str, float] = ProjectionConfig.loss,
    vgg16_path: str | Path | None = None,
    facenet_path: str | Path | None = None,
    rng: str = "per_image",
    seed: int = ProjectionConfig.seed,
    ids: Sequence[str | int] | None = None,
    return_history: bool = False,
    resume: ProjectionState | None = None,
    checkpoint_every: int | None = None,
    on_checkpoint: Callable[[ProjectionState], None] | None = None,
    progress: bool = True,
    w_stats: tuple[torch.Tensor, float] | None = None,
    w_init: torch.Tensor | None = None,
    **schedule,
) -> ProjectionResult:
    """Project uint8 targets [B, C, H, W] into W ([B,1,w_dim] broadcast) or W+ ([B,num_ws,w_dim]).

    `schedule` takes the `Schedule` fields. With `rng="reference"`, B=1 and the defaults, a run
    repeats NVlabs `projector.project` step for step with the same float rounding (bit for bit on
    the same CPU with the same thread count). `w_init` [B, 1 or num_w, w_dim] replaces w_avg as the start
    (an encoder's guess: facelatent/projection/encoder.py).
    """
    # Check the arguments.
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

    # Compute w stats.
    w_avg, w_std = w_stats if w_stats is not None else w_statistics(G, sched.w_avg_samples, device)
    generators = [torch.Generator().manual_seed(image_seed(seed, i)) for i in ids]
    num_w = G.num_ws if space == "w+" else 1
    names = [name for name, _ in noise_shapes(G)]

    # Setup noise inputs and the start latents (or the saved ones).
    if resume is None:  # NVlabs order of torch RNG use: the noise maps, then one latent draw per step
        w_start = w_avg.detach().reshape(1, 1, -1) if w_init is None else w_init.detach().to(device, torch.float32)
        w_opt = w_start.expand(B, num_w, -1).clone() if w_start.shape[1] == 1 else w_start.clone()
        noise = initial_noise(G, B, rng, generators, device, sched.noise_init)
    else:
        w_opt, noise = resume.w_opt.clone().to(device), [n.clone().to(device) for n in resume.noise]
        for g, state in zip(generators, resume.rng_states, strict=True):
            g.set_state(state)
    assert_shape(w_opt, [B, num_w, G.w_dim], "w_opt")
    params = [w_opt, *noise] if sched.optimize_noise else [w_opt]
    for p in params:
        p.requires_grad_(True)

    # Setup the optimizer and the loss.
    optimizer = torch.optim.Adam(params, betas=(0.9, 0.999), lr=sched.initial_learning_rate)
    if resume is not None:
        optimizer.load_state_dict(resume.adam)
    objective = ChunkedObjective(
        G, loss, target, sched.micro_batch, vgg16_path, synthesis_options(sched, rng), facenet_path
    )

    # Per-image bookkeeping: last loss, early stop, steps taken.
    start = resume.step if resume is not None else 0
    last_loss = resume.losses.clone() if resume is not None else torch.full((B,), float("nan"))
    done = resume.done.clone() if resume is not None else torch.zeros(B, dtype=torch.bool)
    stable = resume.stable_steps.clone() if resume is not None else torch.zeros(B, dtype=torch.long)
    steps_taken = resume.steps_taken.clone() if resume is not None else torch.full((B,), num_steps, dtype=torch.long)
    history = torch.zeros(num_steps, B, G.num_ws, G.w_dim) if return_history else None

    bar = tqdm(
        range(start, num_steps),
        total=num_steps,
        initial=start,
        desc="project",
        disable=not progress,
        dynamic_ncols=True,
        mininterval=2.0,
    )
    for step in bar:
        # Learning rate schedule.
        t = step / num_steps
        w_noise_scale = latent_noise_scale(t, w_std, sched)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(
                t, sched.initial_learning_rate, sched.lr_rampdown_length, sched.lr_rampup_length
            )

        # Synth images from opt_w and step the optimizer.
        frozen = [p.detach().clone() for p in params] if done.any() else None
        ws = (w_opt + latent_noise(w_opt, rng, generators) * w_noise_scale).repeat(1, G.num_ws // num_w, 1)
        dist = objective.distance(ws, noise)
        reg = objective.regularizer(noise) if noise and sched.optimize_noise else torch.zeros(B, device=device)
        total = (dist + reg * sched.regularize_noise_weight).sum()
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        if sched.optimize_noise:
            objective.renormalize_(noise)
        if frozen is not None:  # images that stopped early keep their parameters
            with torch.no_grad():
                for p, f in zip(params, frozen, strict=True):
                    p[done] = f[done]

        # Early stop, history and checkpoints.
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
            on_checkpoint(
                ProjectionState(
                    step + 1,
                    w_opt.detach().cpu().clone(),
                    [n.detach().cpu().clone() for n in noise],
                    optimizer.state_dict(),
                    [g.get_state() for g in generators],
                    last_loss.clone(),
                    done.clone(),
                    stable.clone(),
                    steps_taken.clone(),
                )
            )
        if sched.early_stop_tol is not None and bool(done.all()):
            break
    bar.close()

    w = w_opt.detach().repeat(1, G.num_ws // num_w, 1)
    return ProjectionResult(
        w=w.cpu(),
        noise=[n.detach().cpu() for n in noise],
        loss=last_loss,
        steps=steps_taken,
        history=history,
        extra={"w_std": w_std, "noise_names": names},
    )


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB between two 0..255 image batches."""
    mse = ((a.float() - b.float()) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return 10 * torch.log10(255.0**2 / mse)


@torch.no_grad()
def render(
    G: GeneratorBase, w: torch.Tensor, noise: Sequence[torch.Tensor] | None = None, batch: int = 16
) -> torch.Tensor:
    """Render latents [N, num_ws, w_dim] (+ optional per-image noise) to uint8 [N, C, R, R]."""
    device = G.w_avg.device
    out = []
    for i in range(0, len(w), batch):
        kw = {"noise": [n[i : i + batch].to(device) for n in noise]} if noise else {}
        img = G.synthesis(w[i : i + batch].to(device), noise_mode="const", **kw)
        out.append((img * 127.5 + 128).clamp(0, 255).to(torch.uint8).cpu())
    return (
        torch.cat(out) if out else torch.zeros(0, G.img_channels, G.img_resolution, G.img_resolution, dtype=torch.uint8)
    )
