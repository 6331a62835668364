"""Levenberg-Marquardt refinement of projected latents, with a per-image similarity warp of the render.

Adam under the NVlabs schedule finds a basin but, within a few hundred steps, stops short of its
floor: along the directions an image pins down it leaves each latent weighted by the generator's
Jacobian spectrum, a bias that a direction fitted over many latents inherits. Gauss-Newton steps
converge there in a few iterations. Each image solves its damped normal equations

    (J^T J + (mu + lambda) I) delta = -(J^T r + mu u)

by conjugate gradients, matrix-free: `J v` by a forward finite difference, `J^T r` by backprop.
`u = (w - w_avg) / sigma` carries a standard-normal prior of weight mu (sigma = w_std / sqrt(w_dim), the
per-coordinate spread, as NVlabs' w_std is the root of the summed variances), which holds the directions
the image does not constrain at the average instead of wherever Adam's latent noise left them.
The warp (shift, rotation, log-scale of the render) absorbs the landmark detector's framing noise,
which no latent can reproduce. Images are independent: each has its own damping and accept test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from facelatent.generators.base import GeneratorBase, assert_shape
from facelatent.projection.losses import as_grey_where, grey_targets

WARP_PARAMS = ("shift_x", "shift_y", "rotation", "log_scale")  # shifts in half-widths, rotation in radians


@dataclass
class RefineConfig:
    """The `projection.refine` config section (see config/README.md)."""

    iterations: int = 0  # Levenberg-Marquardt iterations after Adam; 0 = no refinement
    cg_iterations: int = 20  # conjugate-gradient steps per normal-equation solve
    prior_weight: float = 1.0  # mu: weight of the N(0, I) prior on (w - w_avg) / (w_std / sqrt(w_dim))
    fit_alignment: bool = True  # co-fit a similarity warp of the render per image
    damping: float = 1.0  # initial lambda (x1/3 after an accepted step, x4 after a rejected one)
    # warp parameters are optimised in units of `warp_scale`, so that a unit step moves pixels about as
    # much as a unit latent step does (conjugate gradients converge slowly on badly scaled unknowns)
    warp_scale: float = 0.05

    def __post_init__(self) -> None:
        for name in ("iterations", "cg_iterations"):
            if getattr(self, name) < 0:
                raise ValueError(f"projection.refine.{name} must be >= 0, got {getattr(self, name)}")
        if self.prior_weight < 0 or self.damping <= 0 or self.warp_scale <= 0:
            raise ValueError("projection.refine: prior_weight must be >= 0, damping and warp_scale > 0")


@dataclass
class RefineState:
    """Enough to continue a refinement exactly: the iteration reached, the unknowns, the dampings."""

    iteration: int
    params: torch.Tensor  # [B, P]: u flattened, then the scaled warp (when fitted)
    damping: torch.Tensor  # [B]


@dataclass
class RefineResult:
    w: torch.Tensor  # [B, num_ws, w_dim]
    warp: torch.Tensor  # [B, 4] in WARP_PARAMS order (zeros when not fitted)
    cost: torch.Tensor  # [B] squared pixel error on the [-1, 1] scale plus the prior term
    psnr: torch.Tensor  # [B] dB of the warped render against the target


def similarity_warp(images: torch.Tensor, warp: torch.Tensor) -> torch.Tensor:
    """Resample images [B, C, H, W] by the similarity `warp` [B, 4] (bilinear, border-replicated)."""
    assert_shape(warp, [images.shape[0], 4], "warp")
    scale = torch.exp(warp[:, 3])
    cos, sin = scale * torch.cos(warp[:, 2]), scale * torch.sin(warp[:, 2])
    theta = torch.stack([torch.stack([cos, -sin, warp[:, 0]], 1), torch.stack([sin, cos, warp[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def conjugate_gradient(
    matvec: Callable[[torch.Tensor], torch.Tensor], rhs: torch.Tensor, iterations: int
) -> torch.Tensor:
    """Approximate x with matvec(x) = rhs for a batch of independent SPD systems (rows of rhs [B, P])."""
    x = torch.zeros_like(rhs)
    residual = rhs.clone()
    direction = residual.clone()
    rr = residual.square().sum(1)
    for _ in range(iterations):
        a_dir = matvec(direction)
        alpha = rr / (direction * a_dir).sum(1).clamp_min(1e-30)
        x = x + alpha[:, None] * direction
        residual = residual - alpha[:, None] * a_dir
        rr_new = residual.square().sum(1)
        direction = residual + (rr_new / rr.clamp_min(1e-30))[:, None] * direction
        rr = rr_new
    return x


class RefineProblem:
    """Residuals and cost of (u, warp) for a batch of targets; images never interact."""

    def __init__(
        self, G: GeneratorBase, targets: torch.Tensor, w_avg: torch.Tensor, w_std: float, num_w: int, cfg: RefineConfig
    ):
        assert targets.dtype == torch.uint8, f"targets must be uint8, got {targets.dtype}"
        R = G.img_resolution
        assert_shape(targets, [None, G.img_channels, R, R], "targets")
        self.G, self.cfg, self.num_w = G, cfg, num_w
        self.grey = grey_targets(targets).to(w_avg.device)  # grey photos are matched by the render's luma
        self.target = targets.to(w_avg.device, torch.float32).flatten(1) / 127.5 - 1
        self.w_avg = w_avg.reshape(1, 1, G.w_dim)
        self.sigma = float(w_std) / G.w_dim**0.5  # per-coordinate spread of w
        self.latent_size = num_w * G.w_dim
        self.prior = torch.zeros(self.latent_size + (4 if cfg.fit_alignment else 0), device=w_avg.device)
        self.prior[: self.latent_size] = cfg.prior_weight

    def pack(self, w: torch.Tensor) -> torch.Tensor:
        """[B, num_w, w_dim] latents -> [B, P] unknowns (warp at zero)."""
        u = ((w.to(self.w_avg.device, torch.float32) - self.w_avg) / self.sigma).flatten(1)
        warp = torch.zeros(len(u), 4 if self.cfg.fit_alignment else 0, device=u.device)
        return torch.cat([u, warp], 1)

    def latents(self, params: torch.Tensor) -> torch.Tensor:
        """[B, num_w, w_dim] latents of the unknowns."""
        return params[:, : self.latent_size].reshape(-1, self.num_w, self.G.w_dim) * self.sigma + self.w_avg

    def warp(self, params: torch.Tensor) -> torch.Tensor:
        """[B, 4] warp of the unknowns, in WARP_PARAMS units."""
        if not self.cfg.fit_alignment:
            return torch.zeros(len(params), 4, device=params.device)
        return params[:, self.latent_size :] * self.cfg.warp_scale

    def render(self, params: torch.Tensor) -> torch.Tensor:
        """Flattened [-1, 1] renders [B, C*H*W] of the unknowns (warped when fitted)."""
        ws = self.latents(params).repeat(1, self.G.num_ws // self.num_w, 1)
        img = as_grey_where(self.G.synthesis(ws, noise_mode="const"), self.grey)
        if self.cfg.fit_alignment:
            img = similarity_warp(img, self.warp(params))
        return img.flatten(1)

    def cost(self, params: torch.Tensor, rendered: torch.Tensor) -> torch.Tensor:
        """[B] squared error against the targets plus the prior term."""
        return (rendered - self.target).square().sum(1) + (self.prior * params.square()).sum(1)

    def step(self, params: torch.Tensor, damping: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One damped Gauss-Newton step per image -> (params, damping, cost) after the accept test."""
        params = params.detach()
        rendered, vjp_fn = torch.func.vjp(self.render, params)
        rendered = rendered.detach()
        residual = rendered - self.target
        gradient = vjp_fn(residual)[0] + self.prior * params
        cost = self.cost(params, rendered)
        fd_step = 1e-2  # in units of sigma: small against the latent's scale, large against float32 rounding

        def normal_matvec(v: torch.Tensor) -> torch.Tensor:
            norm = v.norm(dim=1, keepdim=True).clamp_min(1e-12)
            with torch.no_grad():
                jv = (self.render(params + fd_step * v / norm) - rendered) * (norm / fd_step)
            return vjp_fn(jv)[0] + (self.prior + damping[:, None]) * v

        delta = conjugate_gradient(normal_matvec, -gradient, self.cfg.cg_iterations)
        with torch.no_grad():
            trial = params + delta
            trial_cost = self.cost(trial, self.render(trial))
        better = trial_cost < cost
        params = torch.where(better[:, None], trial, params)
        damping = torch.where(better, damping / 3, damping * 4).clamp(1e-4, 1e4)
        return params, damping, torch.where(better, trial_cost, cost)


def refine(
    G: GeneratorBase,
    targets: torch.Tensor,
    w_init: torch.Tensor,
    w_stats: tuple[torch.Tensor, float],
    cfg: RefineConfig,
    *,
    resume: RefineState | None = None,
    checkpoint_every: int | None = None,
    on_checkpoint: Callable[[RefineState], None] | None = None,
    progress: bool = True,
) -> RefineResult:
    """Refine latents w_init [B, num_w, w_dim] (num_w = 1 or G.num_ws) towards uint8 targets [B, C, R, R]."""
    B, num_w = w_init.shape[0], w_init.shape[1]
    assert num_w in (1, G.num_ws), f"w_init: num_w must be 1 or {G.num_ws}, got {num_w}"
    assert_shape(w_init, [B, num_w, G.w_dim], "w_init")
    problem = RefineProblem(G, targets, w_stats[0], w_stats[1], num_w, cfg)
    params = problem.pack(w_init) if resume is None else resume.params.to(problem.target.device)
    damping = (
        torch.full((B,), cfg.damping, device=params.device) if resume is None else resume.damping.to(params.device)
    )
    start = 0 if resume is None else resume.iteration
    cost = None
    bar = tqdm(
        range(start, cfg.iterations),
        total=cfg.iterations,
        initial=start,
        desc="refine",
        disable=not progress,
        dynamic_ncols=True,
        mininterval=2.0,
    )
    for iteration in bar:
        params, damping, cost = problem.step(params, damping)
        bar.set_postfix(cost=f"{float(cost.mean()):.4g}", refresh=False)
        done = iteration + 1
        if checkpoint_every and on_checkpoint and done % checkpoint_every == 0 and done < cfg.iterations:
            on_checkpoint(RefineState(done, params.detach().cpu().clone(), damping.detach().cpu().clone()))
    bar.close()
    with torch.no_grad():
        rendered = problem.render(params)
        if cost is None:
            cost = problem.cost(params, rendered)
        mse = (rendered - problem.target).square().mean(1).clamp_min(1e-12)
    return RefineResult(
        w=problem.latents(params).detach().cpu(),
        warp=problem.warp(params).detach().cpu(),
        cost=cost.detach().cpu(),
        psnr=(10 * torch.log10(4 / mse)).cpu(),
    )
