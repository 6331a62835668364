"""Batched projector: per-image equivalence, quality on the demo DCGAN, resumable shard jobs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from facelatent.errors import InputFileError
from facelatent.generators import load_generator
from facelatent.projection.job import ProjectionConfig, project_aligned
from facelatent.projection.project import learning_rate, noise_regularizer, project, psnr, render
from facelatent.store import read_table, write_table

FAST = dict(w_avg_samples=1000)


@pytest.fixture(scope="module")
def G(dcgan_path):
    return load_generator(dcgan_path)


@pytest.fixture(scope="module")
def targets(G):
    z = torch.from_numpy(np.random.RandomState(5).randn(4, G.z_dim)).float()
    return z, render(G, G.mapping(z))


def kill_after_line(proc: subprocess.Popen, log_path, line: str, limit_s: float = 1800) -> None:
    """SIGKILL `proc` once its log shows `line`. Waits on the log, not a short clock: on a loaded machine the
    line comes late, and killing earlier tests another stage than the one meant."""
    deadline = time.time() + limit_s
    while line not in log_path.read_text():
        assert proc.poll() is None, f"the job ended before logging '{line}':\n{log_path.read_text()[-2000:]}"
        assert time.time() < deadline, f"no '{line}' within {limit_s} s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)


def test_batched_equals_sequential(G, targets):
    _, tgt = targets
    ids = ["a", "b", "c", "d"]
    batch = project(G, tgt, num_steps=30, loss="mse", ids=ids, progress=False, **FAST)
    for i, image_id in enumerate(ids):
        single = project(G, tgt[i : i + 1], num_steps=30, loss="mse", ids=[image_id], progress=False, **FAST)
        torch.testing.assert_close(single.w[0], batch.w[i], atol=1e-4, rtol=0)


def test_result_does_not_depend_on_batch_order(G, targets):
    _, tgt = targets
    a = project(G, tgt, num_steps=20, loss="mse", ids=["a", "b", "c", "d"], progress=False, **FAST)
    b = project(G, tgt.flip(0), num_steps=20, loss="mse", ids=["d", "c", "b", "a"], progress=False, **FAST)
    torch.testing.assert_close(a.w, b.w.flip(0), atol=1e-4, rtol=0)


def test_mse_projection_reconstructs_dcgan_renders(G, targets):
    _, tgt = targets
    result = project(G, tgt[:2], num_steps=150, loss="mse", progress=False, **FAST)
    quality = psnr(render(G, result.w), tgt[:2])
    assert quality.min().item() > 20, quality


def test_history_and_shapes(G, targets):
    _, tgt = targets
    result = project(G, tgt[:2], num_steps=5, loss="mse", return_history=True, progress=False, **FAST)
    assert result.w.shape == (2, G.num_ws, G.w_dim)
    assert result.history.shape == (5, 2, G.num_ws, G.w_dim)
    torch.testing.assert_close(result.history[-1], result.w)


def test_wrong_resolution_is_refused(G):
    with pytest.raises(ValueError, match="align them at 64 px"):
        project(G, torch.zeros(1, 3, 128, 128, dtype=torch.uint8), num_steps=2, loss="mse", progress=False)


def test_missing_vgg16_says_where_to_put_it(G, targets, tmp_path):
    _, tgt = targets
    with pytest.raises(InputFileError, match="vgg16.pt") as info:
        project(G, tgt[:1], num_steps=2, loss="lpips_vgg16", vgg16_path=tmp_path / "vgg16.pt", progress=False, **FAST)
    assert "projection.vgg16_path" in str(info.value)


def test_schedule_matches_nvlabs_formula():
    assert learning_rate(0.0, 0.1, 0.25, 0.05) == 0.0
    assert learning_rate(0.5, 0.1, 0.25, 0.05) == pytest.approx(0.1)
    assert learning_rate(0.875, 0.1, 0.25, 0.05) == pytest.approx(0.05)


def test_noise_regularizer_is_per_image():
    n = [torch.randn(3, 1, 16, 16)]
    whole = noise_regularizer(n)
    parts = torch.cat([noise_regularizer([n[0][i : i + 1]]) for i in range(3)])
    torch.testing.assert_close(whole, parts)


def write_aligned(path, images_nchw, ids):
    write_table(path, "facelatent.aligned", {"ids": np.array(ids), "images": images_nchw.permute(0, 2, 3, 1).numpy()})


def test_empty_shard_writes_valid_empty_file(G, tmp_path):
    aligned = tmp_path / "aligned.h5"
    write_table(
        aligned, "facelatent.aligned", {"ids": np.array([], dtype=object), "images": np.zeros((0, 64, 64, 3), np.uint8)}
    )
    out = tmp_path / "latents.h5"
    project_aligned(G, aligned, out, ProjectionConfig(steps=3, loss="mse", schedule=FAST), {"name": "dcgan"})
    table = read_table(out, "facelatent.latents")
    assert table["w"].shape == (0, 1, 100) and len(table["ids"]) == 0


SHARD_CMD = [
    sys.executable,
    "-m",
    "facelatent",
    "project-shard",
    "--steps",
    "60",
    "--batch-size",
    "3",
    "--loss",
    "mse",
    "--checkpoint-every",
    "10",
    "--schedule",
    '{"w_avg_samples": 1000}',
    "--device",
    "cpu",
]


def test_killed_job_resumes_to_the_same_latents(G, targets, dcgan_path, tmp_path):
    _, tgt = targets
    aligned = tmp_path / "aligned.h5"
    write_aligned(aligned, tgt, ["a", "b", "c", "d"])
    args = ["--generator", str(dcgan_path), "--aligned", str(aligned)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}

    reference = tmp_path / "reference.h5"
    subprocess.run(
        SHARD_CMD + args + ["--out", str(reference), "--no-progress"], check=True, env=env, capture_output=True
    )

    out = tmp_path / "killed.h5"
    log_path = tmp_path / "killed.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(SHARD_CMD + args + ["--out", str(out), "--no-progress"], stderr=log, env=env)
        # kill in the second batch, after at least one of its checkpoints
        kill_after_line(proc, log_path, "batch 2: checkpoint at step 20")
        proc.wait()
    assert not out.exists(), "a killed job must not leave a complete-looking output"
    assert out.with_name(out.name + ".partial").exists()

    resumed = subprocess.run(
        SHARD_CMD + args + ["--out", str(out), "--no-progress"], check=True, env=env, capture_output=True, text=True
    )
    assert "batch 2/2: resuming at step" in resumed.stderr
    assert "batch 1/2" not in resumed.stderr.split("resuming")[0], "a finished batch must not be redone"
    a, b = read_table(reference, "facelatent.latents"), read_table(out, "facelatent.latents")
    assert list(a["ids"]) == list(b["ids"])
    np.testing.assert_allclose(a["w"], b["w"], atol=1e-6, rtol=0)
    np.testing.assert_allclose(a["psnr"], b["psnr"], atol=1e-4)


def test_killed_refinement_resumes_without_redoing_adam(G, targets, dcgan_path, tmp_path):
    """Killed during the Levenberg-Marquardt stage: the rerun keeps Adam's result and continues the refinement."""
    _, tgt = targets
    aligned = tmp_path / "aligned.h5"
    write_aligned(aligned, tgt, ["a", "b", "c", "d"])
    cmd = SHARD_CMD + [
        "--generator",
        str(dcgan_path),
        "--aligned",
        str(aligned),
        "--no-progress",
        "--refine",
        '{"iterations": 4, "cg_iterations": 8}',
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    reference = tmp_path / "reference.h5"
    subprocess.run(cmd + ["--out", str(reference)], check=True, env=env, capture_output=True)

    out, log_path = tmp_path / "killed.h5", tmp_path / "killed.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd + ["--out", str(out)], stderr=log, env=env)
        kill_after_line(proc, log_path, "batch 2: refinement checkpoint at iteration 2")
        proc.wait()
    assert not out.exists() and out.with_name(out.name + ".partial").exists()

    resumed = subprocess.run(cmd + ["--out", str(out)], check=True, env=env, capture_output=True, text=True)
    assert "batch 2/2: Adam done, resuming the refinement at iteration" in resumed.stderr
    assert "from step 0" not in resumed.stderr and "resuming at step" not in resumed.stderr
    a, b = read_table(reference, "facelatent.latents"), read_table(out, "facelatent.latents")
    np.testing.assert_allclose(a["w"], b["w"], atol=1e-6, rtol=0)
    np.testing.assert_allclose(a["warp"], b["warp"], atol=1e-6, rtol=0)
    assert a["warp"].shape == (4, 4) and (a["psnr_aligned"] > a["psnr"] - 0.5).all()


def test_refined_shard_beats_adam_alone(G, targets, tmp_path):
    _, tgt = targets
    aligned = tmp_path / "aligned.h5"
    write_aligned(aligned, tgt, ["a", "b", "c", "d"])
    plain, refined = tmp_path / "plain.h5", tmp_path / "refined.h5"
    base = dict(steps=60, loss="mse", batch_size=4, schedule=FAST)
    project_aligned(G, aligned, plain, ProjectionConfig(**base), {"name": "dcgan"}, progress=False)
    project_aligned(
        G,
        aligned,
        refined,
        ProjectionConfig(**base, refine={"iterations": 8, "fit_alignment": False}),
        {"name": "dcgan"},
        progress=False,
    )
    a, b = read_table(plain, "facelatent.latents"), read_table(refined, "facelatent.latents")
    # an accepted step never raises the cost; where Adam found the right basin, the gain is large
    assert (b["psnr"] > a["psnr"] - 0.1).all() and np.median(b["psnr"] - a["psnr"]) > 3, (a["psnr"], b["psnr"])
    assert (a["warp"] == 0).all() and (b["warp"] == 0).all()
    np.testing.assert_allclose(b["psnr_aligned"], b["psnr"], atol=0.3)  # float render vs the stored uint8 one


class Interrupted(Exception):
    """Stands in for a kill: raised right after the partial file took a checkpoint."""


def interrupt_at(monkeypatch, batch_index: int, step: int) -> None:
    """Make project_aligned stop (leaving its .partial) once batch `batch_index` has checkpointed `step`."""
    from facelatent.projection import job as projection_job

    save = projection_job._save_state

    def save_then_stop(fh, b, state):
        save(fh, b, state)
        fh.flush()
        if b == batch_index and state.step == step:
            raise Interrupted

    monkeypatch.setattr(projection_job, "_save_state", save_then_stop)


def interrupted_then_resumed(monkeypatch, G_first, G_second, aligned_first, aligned_second, out, cfg, batch, step):
    with monkeypatch.context() as m:
        interrupt_at(m, batch, step)
        with pytest.raises(Interrupted):
            project_aligned(G_first, aligned_first, out, cfg, {"name": "dcgan"}, progress=False)
    assert out.with_name(out.name + ".partial").exists()
    project_aligned(G_second, aligned_second, out, cfg, {"name": "dcgan"}, progress=False)
    return read_table(out, "facelatent.latents")


def test_resumed_batch_keeps_each_images_true_step_count(G, targets, tmp_path, monkeypatch):
    """Images that stopped early before the checkpoint keep their stop step after a resume."""
    _, tgt = targets
    aligned = tmp_path / "aligned.h5"
    write_aligned(aligned, tgt, ["a", "b", "c", "d"])
    cfg = ProjectionConfig(
        steps=60,
        loss="mse",
        batch_size=3,
        checkpoint_every=10,
        schedule={**FAST, "early_stop_tol": 0.05, "early_stop_patience": 3},
    )
    project_aligned(G, aligned, tmp_path / "reference.h5", cfg, {"name": "dcgan"}, progress=False)
    reference = read_table(tmp_path / "reference.h5", "facelatent.latents")
    assert (reference["steps"][:3] < 30).sum() >= 1, reference["steps"]  # someone stopped before the checkpoint
    resumed = interrupted_then_resumed(monkeypatch, G, G, aligned, aligned, tmp_path / "killed.h5", cfg, 0, 30)
    np.testing.assert_array_equal(resumed["steps"], reference["steps"])
    np.testing.assert_allclose(resumed["w"], reference["w"], atol=1e-6, rtol=0)


@pytest.mark.parametrize("change", ["generator", "input"])
def test_resume_discards_a_partial_made_from_other_inputs(
    G, targets, dcgan_path, tmp_path, monkeypatch, caplog, change
):
    """Another generator checkpoint, or a re-aligned shard with the same row count: no stale finished batch."""
    from facelatent.checkpoints import read_checkpoint, save_safetensors_checkpoint

    _, tgt = targets
    aligned = tmp_path / "aligned.h5"
    write_aligned(aligned, tgt, ["a", "b", "c", "d"])
    G_new, aligned_new = G, aligned
    if change == "generator":
        ckpt = read_checkpoint(dcgan_path)
        gen = torch.Generator().manual_seed(0)
        ckpt.state_dict = {
            k: v + 0.05 * v.std() * torch.randn(v.shape, generator=gen)
            if v.is_floating_point() and v.numel() > 1
            else v
            for k, v in ckpt.state_dict.items()
        }
        save_safetensors_checkpoint(tmp_path / "other.safetensors", ckpt)
        G_new = load_generator(tmp_path / "other.safetensors")
        assert G_new.checkpoint_sha256 != G.checkpoint_sha256
    else:
        aligned_new = tmp_path / "realigned.h5"
        write_aligned(aligned_new, tgt.flip(-1), ["a", "b", "c", "d"])  # same ids and count, other pixels
    cfg = ProjectionConfig(steps=20, loss="mse", batch_size=2, checkpoint_every=10, schedule=FAST)
    project_aligned(G_new, aligned_new, tmp_path / "fresh.h5", cfg, {"name": "dcgan"}, progress=False)
    fresh = read_table(tmp_path / "fresh.h5", "facelatent.latents")
    with caplog.at_level("WARNING", logger="facelatent.projection.job"):
        resumed = interrupted_then_resumed(
            monkeypatch, G, G_new, aligned, aligned_new, tmp_path / "killed.h5", cfg, 1, 10
        )
    np.testing.assert_allclose(resumed["w"], fresh["w"], atol=1e-6, rtol=0)
    stale = [r.getMessage() for r in caplog.records if "starting over" in r.getMessage()]
    assert len(stale) == 1 and f"made with another {change}; starting over" in stale[0], stale


def test_merge_refuses_shards_of_different_generators(tmp_path):
    from facelatent.latents import merge_latent_shards

    shards = []
    for k, sha in enumerate(["aaa", "aaa", "bbb"]):
        shards.append(tmp_path / f"{k}.h5")
        write_table(
            shards[-1],
            "facelatent.latents",
            {
                "ids": np.array([f"i{k}"]),
                "w": np.zeros((1, 1, 4), np.float32),
                "loss": np.zeros(1, np.float32),
                "psnr": np.zeros(1, np.float32),
                "steps": np.zeros(1, np.int32),
            },
            generator={"path": f"/elsewhere/{k}/G.safetensors", "sha256": sha, "kind": "dcgan"},
        )
    (tmp_path / "index.tsv").write_text("id\tpath\tsubject\n" + "".join(f"i{k}\tp{k}.png\ts\n" for k in range(3)))
    with pytest.raises(InputFileError, match="sha256 bbb vs aaa") as exc:
        merge_latent_shards(shards, tmp_path / "index.tsv", tmp_path / "merged.h5")
    message = str(exc.value)
    assert str(shards[2]) in message and str(shards[0]) in message and "\n" not in message
    assert not (tmp_path / "merged.h5").exists()


def test_facenet_loss_reads_the_weights_file_it_is_given(G, targets, monkeypatch, tmp_path):
    """A job's FaceNet loss reads the file its rule declares, never a model looked up under resources/."""
    from conftest import fetched_model

    from facelatent.errors import ConfigError
    from facelatent.projection.losses import build_loss

    weights = fetched_model("facenet_casia")
    monkeypatch.setenv("FACELATENT_RESOURCES", str(tmp_path / "nowhere"))
    _, tgt = targets
    with pytest.raises(ConfigError, match="'facenet' projection loss needs the FaceNet weights file"):
        build_loss("facenet", tgt[:1].float())
    loss = build_loss({"facenet": 1.0}, tgt[:1].float(), facenet_path=weights)
    assert torch.isfinite(loss(tgt[:1].float())).all() and float(loss(tgt[:1].float())) < 1e-6


def test_encoder_start_and_refinement_repeat_bit_for_bit_under_load(G, targets, tmp_path):
    """The CK+ demo path (encoder start, no Adam, Levenberg-Marquardt with a warp) on grey photos gives the
    same bytes alone and beside two CPU-bound processes: the result depends on its inputs only, not on how
    the cores are shared (a run under load once differed in 24 of 54 rows)."""
    from facelatent.generators.statistics import w_statistics
    from facelatent.projection.encoder import ConfiguredEncoder, LatentEncoder
    from facelatent.projection.losses import LUMA

    _, tgt = targets
    grey = (tgt.float() * torch.tensor(LUMA).view(1, 3, 1, 1)).sum(1, keepdim=True).round()
    aligned = tmp_path / "aligned.h5"
    write_aligned(aligned, grey[:2].expand(-1, 3, -1, -1).to(torch.uint8), ["a", "b"])
    torch.manual_seed(0)
    w_avg, w_std = w_statistics(G, 1000, torch.device("cpu"))
    encoder = ConfiguredEncoder(LatentEncoder(64, 3, G.w_dim).eval(), w_avg, w_std)
    cfg = ProjectionConfig(
        init="encoder", steps=0, loss="mse", batch_size=2, schedule=FAST, refine={"iterations": 2, "cg_iterations": 4}
    )

    def run(name: str) -> bytes:
        project_aligned(G, aligned, tmp_path / name, cfg, {"name": "dcgan"}, progress=False, encoder=encoder)
        table = read_table(tmp_path / name, "facelatent.latents")
        return table["w"].tobytes() + table["warp"].tobytes()

    alone = run("alone.h5")
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        loaded = run("loaded.h5")
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    # (not asserted across thread counts: a BLAS may split its reductions by thread, which is legitimate)
    assert loaded == alone, "the same inputs gave other latents beside a CPU-bound process"


def test_resume_key_covers_the_loss_networks_weights(tmp_path):
    """Other FaceNet or VGG16 weights at the same path: the partial file is not resumed."""
    from facelatent.projection.job import loss_networks_digest

    first, second = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    first.write_bytes(b"weights one")
    second.write_bytes(b"weights two")
    facenet = ProjectionConfig(loss={"mse": 1.0, "facenet": 0.1})
    assert loss_networks_digest(facenet, first) != loss_networks_digest(facenet, second)
    assert loss_networks_digest(ProjectionConfig(loss="mse"), first) == ""
    lpips = ProjectionConfig(loss="lpips_vgg16", vgg16_path=str(first))
    digest = loss_networks_digest(lpips, None)
    first.write_bytes(b"weights three")  # replaced in place
    assert loss_networks_digest(lpips, None) != digest
