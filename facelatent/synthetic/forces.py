"""Forces on W latents: identity repulsion (Langevin), reference anchor and latent repulsion (Dispersion).

Batched forces. Identity i's interaction potential depends on its own w_i only, once every other
embedding is held fixed (detached):
    U_i(w_i) = sum_{j != i} (k/2) max(0, r0 - theta(e(w_i), E_j))^2  [+ fixed-obstacle term].
So for a batch B, d/dw_i of sum_{b in B} U_b equals dU_i/dw_i: one forward/backward pass gives every
identity's force. This relies on the generator and the FR model treating batch items independently
(eval-mode batch norm, no minibatch statistics), which holds for every backend here. The original's
scheme, one forward/backward pass per identity, is kept as `per_identity_interaction_forces` for
tests and the benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from facelatent.embeddings.base import angle, pairwise_angles
from facelatent.generators.base import assert_shape
from facelatent.synthetic.config import LangevinConfig
from facelatent.synthetic.render import FacePipeline


@dataclass(frozen=True)
class Repulsion:
    """One-sided quadratic ("soft granular") contact in embedding angle (radians)."""

    coefficient: float = LangevinConfig.repulsion_coefficient  # k
    radius: float = LangevinConfig.repulsion_radius  # r0
    obstacle_radius: float = LangevinConfig.constant_distance  # d_cst, contact radius of the fixed obstacle embeddings


def contact_energy(theta: torch.Tensor, radius: float, coefficient: float) -> torch.Tensor:
    """Elementwise (k/2) max(0, r - theta)^2."""
    return 0.5 * coefficient * torch.clamp(radius - theta, min=0.0) ** 2


def identity_energies(
    e: torch.Tensor, fixed: torch.Tensor, rows: torch.Tensor, rep: Repulsion, obstacles: torch.Tensor | None = None
) -> torch.Tensor:
    """U_b for each row b of `e` [B, D] against all fixed embeddings [N, D] except its own row `rows[b]`."""
    assert_shape(e, [None, fixed.shape[1]], "e")
    assert_shape(rows, [e.shape[0]], "rows")
    theta = pairwise_angles(e, fixed.detach())
    own = rows[:, None] == torch.arange(fixed.shape[0], device=fixed.device)[None, :]
    theta = torch.where(own, torch.full_like(theta, rep.radius), theta)  # no self-interaction, zero gradient
    energy = contact_energy(theta, rep.radius, rep.coefficient).sum(dim=1)
    if obstacles is not None and len(obstacles) > 0 and rep.obstacle_radius > 0:
        theta_c = pairwise_angles(e, obstacles.detach())
        energy = energy + contact_energy(theta_c, rep.obstacle_radius, rep.coefficient).sum(dim=1)
    return energy


def interaction_forces(
    pipe: FacePipeline,
    w: torch.Tensor,
    fixed: torch.Tensor,
    rep: Repulsion,
    obstacles: torch.Tensor | None = None,
    batch_size: int | None = None,
) -> torch.Tensor:
    """-dU_i/dw_i for all identities, one forward/backward pass per batch of identities."""
    assert_shape(w, [fixed.shape[0], pipe.w_dim], "w")
    batch_size = batch_size or pipe.batch_size
    forces = torch.empty_like(w)
    for lo in range(0, len(w), batch_size):
        hi = min(lo + batch_size, len(w))
        wb = w[lo:hi].detach().clone().requires_grad_(True)
        rows = torch.arange(lo, hi, device=w.device)
        total = identity_energies(pipe.embed(wb), fixed, rows, rep, obstacles).sum()
        (grad,) = torch.autograd.grad(total, wb)
        forces[lo:hi] = -grad
    return forces


def embeddings_and_forces(
    pipe: FacePipeline, w: torch.Tensor, rep: Repulsion, obstacles: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed embeddings and interaction forces from a single forward/backward pass over all identities.

    Valid when all N faces fit one batch: E = e.detach() equals a separate no-grad pass, so this saves the
    extra forward of `embed_all` + `interaction_forces` (same values up to float rounding).
    """
    assert_shape(w, [None, pipe.w_dim], "w")
    wb = w.detach().clone().requires_grad_(True)
    e = pipe.embed(wb)
    fixed = e.detach()
    total = identity_energies(e, fixed, torch.arange(len(w), device=w.device), rep, obstacles).sum()
    (grad,) = torch.autograd.grad(total, wb)
    return fixed, -grad


def per_identity_interaction_forces(
    pipe: FacePipeline, w: torch.Tensor, fixed: torch.Tensor, rep: Repulsion, obstacles: torch.Tensor | None = None
) -> torch.Tensor:
    """The original's scheme: for each i, a batch-of-1 render + embed, distances to the other rows, backward."""
    forces = torch.empty_like(w)
    for i in range(len(w)):
        wi = w[i : i + 1].detach().clone().requires_grad_(True)
        ei = pipe.embed(wi)
        others = torch.cat([fixed[:i], fixed[i + 1 :]]).detach()
        potential = contact_energy(pairwise_angles(ei, others)[0], rep.radius, rep.coefficient).sum()
        if obstacles is not None and len(obstacles) > 0 and rep.obstacle_radius > 0:
            theta_c = pairwise_angles(ei, obstacles.detach())[0]
            potential = potential + contact_energy(theta_c, rep.obstacle_radius, rep.coefficient).sum()
        (grad,) = torch.autograd.grad(potential, wi)
        forces[i] = -grad[0]
    return forces


def pull_forces(w: torch.Tensor, w_avg: torch.Tensor, coefficient: float) -> torch.Tensor:
    """Latent confinement k (w_avg - w), for [..., w_dim] latents."""
    return coefficient * (w_avg.to(w) - w)


def anchor_forces(
    pipe: FacePipeline, w: torch.Tensor, e_ref: torch.Tensor, coefficient: float, batch_size: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Dispersion's embedding anchor, one gradient per augmentation.

    U = sum_rows 1/2 (k_e/2) theta(e(w_row), e_ref_row)^2, so each row's force depends on its own w only;
    rows of any identities can share a batch. Returns (forces [M, w_dim], embeddings [M, D] detached).
    """
    assert_shape(w, [None, pipe.w_dim], "w")
    assert_shape(e_ref, [w.shape[0], None], "e_ref")
    batch_size = batch_size or pipe.batch_size
    forces = torch.empty_like(w)
    embeddings = torch.empty(len(w), e_ref.shape[1], device=w.device)
    for lo in range(0, len(w), batch_size):
        hi = min(lo + batch_size, len(w))
        wb = w[lo:hi].detach().clone().requires_grad_(True)
        e = pipe.embed(wb)
        potential = 0.5 * (0.5 * coefficient * angle(e, e_ref[lo:hi].detach()) ** 2).sum()
        (grad,) = torch.autograd.grad(potential, wb)
        forces[lo:hi] = -grad
        embeddings[lo:hi] = e.detach()
    return forces, embeddings


def latent_repulsion_forces(w: torch.Tensor, radius: float, coefficient: float) -> torch.Tensor:
    """-grad of sum_{a != b} (k/4) max(0, r - |w_a - w_b|)^2 within each identity, w [N, A, w_dim].

    Closed form: F_a = k sum_{b != a} s_ab (w_a - w_b) with s_ab = max(0, r - d_ab) / d_ab, evaluated as
    k (w_a sum_b s_ab - sum_b s_ab w_b), so memory is O(N A^2), never O(N A^2 w_dim). (Autograd through
    cdist would meet the zero-distance diagonal; the closed form skips it exactly.)
    """
    assert_shape(w, [None, None, None], "w")
    dist = torch.cdist(w, w, compute_mode="donot_use_mm_for_euclid_dist")  # [N, A, A], exact for close pairs
    eye = torch.eye(w.shape[1], dtype=torch.bool, device=w.device)
    scale = torch.where(eye, torch.zeros_like(dist), torch.clamp(radius - dist, min=0.0) / dist.clamp_min(1e-12))
    return coefficient * (w * scale.sum(dim=2, keepdim=True) - scale @ w)


def vector_norms(forces: torch.Tensor) -> torch.Tensor:
    """Per-vector norms along the last axis, flattened (the original took 3-D norms along axis 1)."""
    return forces.reshape(-1, forces.shape[-1]).norm(dim=-1)
