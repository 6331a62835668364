"""Batched Langevin forces equal the original's per-identity loop; Dispersion's per-augmentation forces."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facelatent.embeddings import load_embedder
from facelatent.generators import load_generator
from facelatent.synthetic.forces import (
    Repulsion,
    anchor_forces,
    embeddings_and_forces,
    interaction_forces,
    latent_repulsion_forces,
    per_identity_interaction_forces,
    vector_norms,
)
from facelatent.synthetic.render import FacePipeline, cpu_generator, map_z, randn
from facelatent.synthetic.tiny import write_tiny_embedder

ORIGINAL_COS_FACTOR = 0.999999


@pytest.fixture(scope="module")
def facenet_pipe(dcgan_path):
    from conftest import fetched_model

    G = load_generator(dcgan_path)
    E = load_embedder(fetched_model("facenet_casia"))
    return FacePipeline(G, E, crop="resize", noise_mode="const", batch_size=4)


@pytest.fixture(scope="module")
def tiny_pipe(dcgan_path, tmp_path_factory):
    path = write_tiny_embedder(tmp_path_factory.mktemp("tiny") / "tiny.safetensors")
    return FacePipeline(load_generator(dcgan_path), load_embedder(path), crop="resize", batch_size=2)


def original_distance(e1: torch.Tensor, e2: torch.Tensor) -> torch.Tensor:
    """synthetics' embedding distance: arccos(0.999999 <e1/|e1|, e2/|e2|>), a full B1 x B2 matrix."""
    e1 = e1 / torch.linalg.vector_norm(e1, dim=1, keepdim=True)
    e2 = e2 / torch.linalg.vector_norm(e2, dim=1, keepdim=True)
    return torch.arccos(ORIGINAL_COS_FACTOR * (e1 @ e2.T))


def original_loop_forces(
    pipe: FacePipeline,
    w_all: torch.Tensor,
    embeddings: torch.Tensor,
    k: float,
    d_0: float,
    constant: torch.Tensor,
    d_0_cst: float,
) -> torch.Tensor:
    """The force loop as the original computes it: one identity per forward/backward pass, the other rows
    of the fixed embeddings via torch.cat, torch.where on the contact, constant obstacles added."""
    interaction_force = torch.empty_like(w_all)
    for i in range(w_all.shape[0]):
        w_i = w_all[i].unsqueeze(0).clone().detach().requires_grad_(True)
        img_i = pipe.G.synthesis(w_i.unsqueeze(1).repeat(1, pipe.G.num_ws, 1), noise_mode="const")
        x = torch.nn.functional.interpolate(
            (img_i + 1) * 127.5, size=pipe.embedder.input_size, mode="bicubic", antialias=True, align_corners=False
        )
        e_i = pipe.embedder.embed(x)
        e_others = torch.cat((embeddings[0:i, :], embeddings[i + 1 :, :]))
        dist_others = original_distance(e_i, e_others)[0]
        interactions = torch.where(dist_others < d_0, k * (d_0 - dist_others) ** 2 / 2, 0.0)
        potential = torch.sum(interactions)
        dist_cst = original_distance(e_i, constant)
        potential = potential + torch.sum(torch.where(dist_cst < d_0_cst, k * (d_0_cst - dist_cst) ** 2 / 2, 0.0))
        potential.backward()
        interaction_force[i] = -w_i.grad.detach()[0]
    return interaction_force


@pytest.fixture(scope="module")
def facenet_state(facenet_pipe):
    gen = cpu_generator(3)
    w = map_z(facenet_pipe.G, randn(gen, (5, facenet_pipe.G.z_dim), facenet_pipe.device), 0.7)
    fixed = facenet_pipe.embed_all(w)
    obstacles = facenet_pipe.embed_all(map_z(facenet_pipe.G, randn(gen, (2, 100), facenet_pipe.device), 0.7))
    return w, fixed, obstacles


def test_batched_force_equals_the_original_per_identity_loop(facenet_pipe, facenet_state):
    """Same numbers, not just the same math. oneDNN convolutions round a face differently at batch 1 and
    batch 5 (~2e-7 on the image), and FaceNet's gradient has kinks (ReLU, max pooling) that turn such rounding
    into force differences of ~1e-3. PyTorch's native convolutions compute each sample on its own, so with
    oneDNN off both schemes see bit-identical images and the comparison isolates the batched energy."""
    w, fixed, obstacles = facenet_state
    rep = Repulsion(coefficient=1.0, radius=1.4, obstacle_radius=1.4)
    with torch.backends.mkldnn.flags(enabled=False):
        reference = original_loop_forces(facenet_pipe, w, fixed, 1.0, 1.4, obstacles, 1.4)
        assert reference.norm(dim=1).min() > 1e-3  # every identity is in contact: the comparison is not 0 == 0
        for batch_size in (5, 3):  # one batch, and batches that split the identities unevenly
            batched = interaction_forces(facenet_pipe, w, fixed, rep, obstacles, batch_size=batch_size)
            diff = (batched - reference).abs().max().item()
            print(f"batch {batch_size}: max |F_batched - F_loop| = {diff:.3g} (max |F| {reference.abs().max():.3g})")
            assert diff < 1e-5
        looped = per_identity_interaction_forces(facenet_pipe, w, fixed, rep, obstacles)
        assert (looped - reference).abs().max().item() < 1e-5
    default = interaction_forces(facenet_pipe, w, fixed, rep, obstacles, batch_size=5)  # oneDNN on
    diff = (default - reference).abs().max().item()
    print(f"with oneDNN: max |F_batched - F_loop| = {diff:.3g}")
    assert diff < 0.05 * reference.abs().max().item()


def test_single_pass_embeddings_and_forces_equal_two_passes(facenet_pipe, facenet_state):
    w, fixed, _ = facenet_state
    rep = Repulsion(coefficient=1.0, radius=1.4)
    e, forces = embeddings_and_forces(facenet_pipe, w, rep)
    assert (e - fixed).abs().max().item() < 1e-5
    assert (forces - interaction_forces(facenet_pipe, w, fixed, rep, batch_size=5)).abs().max().item() < 1e-5


def test_no_contact_means_no_force(facenet_pipe, facenet_state):
    w, fixed, _ = facenet_state
    forces = interaction_forces(facenet_pipe, w, fixed, Repulsion(coefficient=1.0, radius=0.01))
    assert forces.abs().max().item() == 0.0


def test_latent_repulsion_closed_form_matches_autograd_off_diagonal():
    torch.manual_seed(0)
    w = torch.randn(2, 5, 7, dtype=torch.float64) * 2.0
    radius, k = 11.0, 1.3  # most pairs overlap, a few (e.g. 12.8 apart) do not
    closed = latent_repulsion_forces(w, radius, k)
    for i in range(2):  # the original's potential: ordered off-diagonal pairs, k/4 each
        wi = w[i].clone().requires_grad_(True)
        overlap = (radius - torch.cdist(wi, wi)).flatten()
        n = wi.shape[0]
        off_diag = overlap[1:].view(n - 1, n + 1)[:, :-1].reshape(-1)
        potential = torch.where(off_diag > 0, k * off_diag**2 / 4.0, 0.0).sum()
        potential.backward()
        assert torch.allclose(closed[i], -wi.grad, atol=1e-10)
    assert (closed.norm(dim=-1) > 0).all()


def test_anchor_forces_are_per_augmentation_for_any_batch_size(tiny_pipe):
    gen = cpu_generator(1)
    w = randn(gen, (5, 100), tiny_pipe.device) * 0.7
    e_ref = tiny_pipe.embed_all(randn(gen, (1, 100), tiny_pipe.device)).repeat(5, 1)
    chunked, e = anchor_forces(tiny_pipe, w, e_ref, 20.0, batch_size=2)  # A = 5 > batch 2 (the original's bug)
    for a in range(5):
        alone, _ = anchor_forces(tiny_pipe, w[a : a + 1], e_ref[a : a + 1], 20.0, batch_size=1)
        assert torch.allclose(chunked[a], alone[0], atol=1e-6)
    assert not torch.allclose(chunked[0], chunked[1])  # not one row copied over its chunk
    assert torch.allclose(e, tiny_pipe.embed_all(w), atol=1e-5)


def test_force_norms_are_per_vector():
    f = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4)
    np.testing.assert_allclose(vector_norms(f).numpy(), f.norm(dim=-1).reshape(-1).numpy())
