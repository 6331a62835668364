"""The face gate with the real MTCNN and the demo DCGAN: faces pass, non-faces fail, planted non-faces are redrawn."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from conftest import fetched_model

from facelatent.detect.mtcnn import MTCNN
from facelatent.embeddings import load_embedder
from facelatent.errors import FaceLatentError
from facelatent.generators import load_generator
from facelatent.synthetic.config import FaceGateConfig, LangevinConfig, RunConfig
from facelatent.synthetic.face_gate import FaceGate, best_detections, check_faces, gate_verdict, landmark_error
from facelatent.synthetic.files import read_face_gate
from facelatent.synthetic.langevin import run_langevin
from facelatent.synthetic.references import sample_latents
from facelatent.synthetic.render import SAVED_CROP_SIZE, FacePipeline, cpu_generator
from facelatent.synthetic.tiny import write_tiny_embedder


@pytest.fixture(scope="module")
def pipe(dcgan_path, tmp_path_factory):
    tiny = write_tiny_embedder(tmp_path_factory.mktemp("gate") / "tiny.safetensors")
    return FacePipeline(load_generator(dcgan_path), load_embedder(tiny), batch_size=8)


@pytest.fixture(scope="module")
def detector():
    return MTCNN(weights=fetched_model("mtcnn"))


def test_demo_faces_pass_and_the_template_itself_has_no_error(pipe, detector):
    _, w = sample_latents(pipe, 8, 0.7, cpu_generator(0))
    checks = check_faces(pipe, detector, w, FaceGateConfig())
    assert checks.passed.all(), (checks.confidence, checks.error)
    assert (checks.confidence > 0.99).sum() >= 6 and checks.error.max() < 0.35
    chunked = check_faces(pipe, detector, w, FaceGateConfig(), chunk=3)  # 3 + 3 + 2 crops at a time
    # MTCNN's points move by ~1e-6 px with the batch they are found in
    assert np.allclose(chunked.confidence, checks.confidence, atol=1e-6)
    assert np.allclose(chunked.error, checks.error, atol=1e-5)
    assert len(check_faces(pipe, detector, w[:0], FaceGateConfig()).passed) == 0
    from facelatent.align.crops import arcface_template

    assert landmark_error(arcface_template(112)[None]) == pytest.approx([0.0])


def test_flat_noise_and_pattern_images_fail(detector):
    size = SAVED_CROP_SIZE
    rng = np.random.default_rng(0)
    flat = np.full((size, size, 3), 128, np.uint8)
    noise = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:size, :size]
    checker = (((yy // 14 + xx // 14) % 2) * 255).astype(np.uint8)
    stripes = np.stack([(np.sin(xx / 3.0) * 100 + 128).astype(np.uint8)] * 3, axis=2)
    verdict = gate_verdict(best_detections(detector, [flat, noise, checker, stripes]), FaceGateConfig())
    assert not verdict.passed.any()


def test_zero_latent_renders_no_face_and_is_redrawn_deterministically(pipe, detector):
    _, w = sample_latents(pipe, 3, 0.7, cpu_generator(0))
    w[1] = 0.0  # w_avg of the DCGAN: renders texture, no face
    cfg = FaceGateConfig()
    assert not check_faces(pipe, detector, w, cfg).passed[1]
    runs = []
    for _ in range(2):
        gate = FaceGate(pipe, detector, cfg, seed=5, truncation_psi=0.7, n=3)
        runs.append((gate.enforce(w), gate.redraws.copy()))
    (w1, r1), (w2, r2) = runs
    assert torch.equal(w1, w2) and r1.tolist() == r2.tolist()
    assert r1[0] == 0 and r1[2] == 0 and r1[1] >= 1
    assert torch.equal(w1[[0, 2]], w[[0, 2]]) and check_faces(pipe, detector, w1, cfg).passed.all()


def test_gate_gives_up_after_max_redraws(pipe, detector):
    cfg = FaceGateConfig(min_confidence=1.0, max_landmark_error=1e-6, max_redraws=2)  # nothing can pass
    gate = FaceGate(pipe, detector, cfg, seed=0, truncation_psi=0.7, n=2)
    with pytest.raises(FaceLatentError, match="failed 2 redraws"):
        gate.enforce(torch.zeros(2, pipe.w_dim))
    assert gate.redraws.tolist() == [2, 2]


def test_langevin_with_a_planted_non_face_ends_with_every_reference_a_face(pipe, detector):
    _, w0 = sample_latents(pipe, 4, 0.7, cpu_generator(1))
    w0[2] = 0.0
    cfg = LangevinConfig(iterations=3, checkpoint_every=1, latent_force=0.0, repulsion_radius=1.2, ict=1.2)
    gate = FaceGate(pipe, detector, FaceGateConfig(), seed=1, truncation_psi=0.7, n=4)
    result = run_langevin(pipe, w0, cfg, cpu_generator(1), gate=gate)
    assert check_faces(pipe, detector, result.w, FaceGateConfig()).passed.all()
    assert gate.redraws[2] >= 1 and gate.summary()["redraws"] == int(gate.redraws.sum())


def test_create_references_stores_the_redraw_counts(pipe, dcgan_path, tmp_path):
    from facelatent.synthetic.job import create_references

    tiny = write_tiny_embedder(tmp_path / "tiny.safetensors")
    run = {
        "num_identities": 3,
        "embedder": f"iresnet:{tiny}",
        "references": {"algorithm": "random", "face_gate": {"min_confidence": 0.9}},
        "variations": {"algorithm": "none"},
    }
    RunConfig.from_dict(run)
    out = tmp_path / "references.h5"
    create_references(
        generator=dcgan_path, run_cfg=run, out_path=out, mtcnn_weights=fetched_model("mtcnn"), device="cpu"
    )
    cols, summary = read_face_gate(out)
    assert cols["face_redraws"].shape == (3,) and (cols["face_confidence"] >= 0.9).all()
    assert summary["redraws"] == int(cols["face_redraws"].sum()) and summary["max_redraws"] == 20
    with h5py.File(out) as fh:
        assert "face_landmark_error" in fh
