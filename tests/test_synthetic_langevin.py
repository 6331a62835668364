"""Langevin references: the demo dynamics spread identities apart; kill + resume equals an uninterrupted run."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch
from conftest import fetched_model

from facelatent.embeddings import load_embedder
from facelatent.generators import load_generator
from facelatent.synthetic.langevin import LangevinConfig, adaptive_timestep, langevin_update, run_langevin
from facelatent.synthetic.progress import CheckpointFile
from facelatent.synthetic.references import sample_latents
from facelatent.synthetic.render import FacePipeline, cpu_generator, randn
from facelatent.synthetic.stats import StatsLog, embedding_stats, merge_stats, pair_summary
from facelatent.synthetic.tiny import write_tiny_embedder


def test_langevin_on_the_demo_raises_min_angle_and_prop_ict(dcgan_path):
    """DCGAN + FaceNet with the demo's parameters (r0 = ICT = 1.2, k_l = 0, adaptive dt), 6 identities."""
    from conftest import fetched_model

    pipe = FacePipeline(load_generator(dcgan_path), load_embedder(fetched_model("facenet_casia")), batch_size=8)
    gen = cpu_generator(0)
    _, w0 = sample_latents(pipe, 6, 0.7, gen)
    cfg = LangevinConfig(iterations=5, repulsion_radius=1.2, ict=1.2, latent_force=0.0)
    result = run_langevin(pipe, w0, cfg, gen)
    s = result.stats
    print(
        f"dist_min {s['dist_min'][0]:.3f} -> {s['dist_min'][-1]:.3f}; "
        f"prop_ict {s['prop_ict'][0]:.3f} -> {s['prop_ict'][-1]:.3f}; dist_avg {s['dist_avg'][0]:.3f} -> "
        f"{s['dist_avg'][-1]:.3f}"
    )
    assert len(s["dist_min"]) == 6 and np.isnan(s["intf_max"][-1]) and np.isfinite(s["intf_max"][:-1]).all()
    assert s["dist_min"][-1] > s["dist_min"][0] + 0.2
    assert s["prop_ict"][-1] > s["prop_ict"][0] + 0.3
    final = embedding_stats(pipe.embed_all(result.w), 1.2)  # the stored final row is the returned state's
    assert math.isclose(final["dist_min"], s["dist_min"][-1], rel_tol=1e-5)


def test_update_is_euler_maruyama_with_adaptive_timestep():
    cfg = LangevinConfig(timestep=-0.3, viscous_coefficient=2.0, random_force=0.01, latent_force=0.1)
    w = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    f_int = torch.tensor([[0.5, 0.0], [0.0, -0.25], [0.0, 0.0]])
    w_avg = torch.tensor([1.0, 1.0])
    w2wd_min = float(torch.pdist(w).min())
    new, stats = langevin_update(w, f_int, w_avg, cfg, cpu_generator(5), w2wd_min)
    f_tot = f_int + 0.1 * (w_avg - w)
    dt = 0.3 * 2.0 * w2wd_min / float(f_tot.norm(dim=1).max())
    xi = 0.01 * torch.randn((3, 2), generator=cpu_generator(5))
    assert math.isclose(stats["timestep"], dt, rel_tol=1e-6)
    assert torch.allclose(new, w + dt / 2.0 * f_tot + math.sqrt(dt) / 2.0 * xi, atol=1e-6)
    assert math.isclose(stats["totf_max"], float(f_tot.norm(dim=1).max()), rel_tol=1e-6)
    assert adaptive_timestep(LangevinConfig(timestep=0.7), 1.0, 5.0) == 0.7


def test_pairwise_stats_count_the_remainder_block():
    torch.manual_seed(0)
    e = torch.randn(11, 8)
    full = torch.pdist(e)
    blocked = pair_summary(e, torch.cdist, block_size=4, threshold=float(full.median()))  # blocks 4 + 4 + 3
    assert blocked.count == 55
    assert math.isclose(blocked.mean, float(full.double().mean()), rel_tol=1e-6)
    assert math.isclose(blocked.low, float(full.min()), rel_tol=1e-6)
    assert math.isclose(blocked.high, float(full.max()), rel_tol=1e-6)
    assert blocked.above == int((full > float(full.median())).sum())


def test_merge_stats_weights_averages_by_identities():
    a = (
        {
            "dist_min": np.array([1.0, 2.0]),
            "dist_avg": np.array([1.0, 1.0]),
            "dist_max": np.array([3.0, 3.0]),
            "timestep": np.array([0.05, 0.05]),
        },
        3,
    )
    b = (
        {
            "dist_min": np.array([0.5, 2.5]),
            "dist_avg": np.array([2.0, 2.0]),
            "dist_max": np.array([4.0, 1.0]),
            "timestep": np.array([0.05, 0.05]),
        },
        1,
    )
    merged = merge_stats([a, b])
    np.testing.assert_allclose(merged["dist_min"], [0.5, 2.0])
    np.testing.assert_allclose(merged["dist_max"], [4.0, 3.0])
    np.testing.assert_allclose(merged["dist_avg"], [1.25, 1.25])
    np.testing.assert_allclose(merged["timestep"], [0.05, 0.05], rtol=1e-6)
    with pytest.raises(ValueError, match="number of iterations"):
        merge_stats([a, ({k: v[:1] for k, v in b[0].items()}, 1)])


def test_checkpoint_file_resumes_the_newest_complete_slot(tmp_path):
    out = tmp_path / "references.h5"
    ckpt = CheckpointFile(out, "facelatent.references", {"a": 1})
    for it in (0, 2, 4):
        ckpt.save(it, {"w": np.full((3, 2), it, np.float32)})
    size = ckpt.path.stat().st_size
    ckpt.save(6, {"w": np.full((3, 2), 6, np.float32)})
    assert ckpt.path.stat().st_size == size  # slots are rewritten in place: the file does not grow
    loaded = ckpt.load()
    assert loaded.iteration == 6 and loaded.arrays["w"][0, 0] == 6
    with h5py.File(ckpt.path, "a") as fh:  # a save killed half way leaves its slot incomplete
        newest = [s for s in fh if fh[s].attrs.get("iteration") == 6][0]
        fh[newest].attrs["complete"] = False
    assert ckpt.load().iteration == 4
    assert CheckpointFile(out, "facelatent.references", {"a": 2}).load() is None  # another config


RUNNER = r"""
import json, sys, torch
torch.set_num_threads(1)
import logging
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
from facelatent.synthetic.job import create_references
create_references(
    generator=sys.argv[1], run_cfg=json.loads(sys.argv[2]), out_path=sys.argv[3], device="cpu",
    mtcnn_weights=sys.argv[4],
)
"""


def _runner(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", RUNNER, *args], stderr=subprocess.PIPE, text=True, env=env)


def test_killed_langevin_resumes_and_ends_identical(dcgan_path, tmp_path):
    """SIGKILL right after the checkpoint of iteration 2, rerun, and compare with an uninterrupted run."""
    embedder = write_tiny_embedder(tmp_path / "tiny.safetensors")
    cfg = {
        "num_identities": 5,
        "seed": 1,
        "embedder": str(embedder),
        "batch_size": 2,  # 3 force batches
        "references": {"algorithm": "langevin", "langevin": {"iterations": 7, "checkpoint_every": 2}},
    }
    mtcnn = fetched_model("mtcnn")  # the face gate runs at each checkpoint: its redraw counts resume too
    args = lambda out: [str(dcgan_path), json.dumps(cfg), str(out), str(mtcnn)]  # noqa: E731

    killed = _runner(args(tmp_path / "resumed.h5"))
    for line in killed.stderr:
        if "checkpoint saved after iteration 2" in line:
            killed.send_signal(signal.SIGKILL)
            break
    killed.wait(timeout=120)
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "resumed.h5").exists() and (tmp_path / "resumed.h5.partial").exists()

    resumed = _runner(args(tmp_path / "resumed.h5"))
    log_resumed = resumed.stderr.read()
    assert resumed.wait(timeout=120) == 0, log_resumed
    assert "resuming after checkpoint 2 (next iteration 3)" in log_resumed
    assert "iteration 2:" not in log_resumed and "iteration 3:" in log_resumed

    straight = _runner(args(tmp_path / "straight.h5"))
    log_straight = straight.stderr.read()
    assert straight.wait(timeout=120) == 0, log_straight

    with h5py.File(tmp_path / "resumed.h5", "r") as a, h5py.File(tmp_path / "straight.h5", "r") as b:
        for name in ("w", "embedding", "face_redraws", "face_confidence"):
            assert np.array_equal(a[name][()], b[name][()]), name
        assert sorted(a["stats"]) == sorted(b["stats"])
        for name in b["stats"]:
            assert np.array_equal(a["stats"][name][()], b["stats"][name][()], equal_nan=True), name
        assert len(b["stats"]["dist_min"]) == 8
    assert not (tmp_path / "resumed.h5.partial").exists()


def test_stats_log_pads_missing_values():
    log = StatsLog()
    log.append({"a": 1.0, "b": 2.0})
    log.append({"a": 3.0})
    arrays = log.arrays()
    assert arrays["a"].tolist() == [1.0, 3.0] and arrays["b"][0] == 2.0 and np.isnan(arrays["b"][1])


def test_random_force_draws_are_device_independent():
    assert torch.equal(
        randn(cpu_generator(4), (2, 3), torch.device("cpu")), torch.randn((2, 3), generator=cpu_generator(4))
    )


@pytest.mark.parametrize("change", ["embedder", "obstacles"])
def test_langevin_partial_from_other_fr_weights_or_obstacles_is_discarded(
    dcgan_path, tmp_path, monkeypatch, caplog, change
):
    """Same config and paths, new FR weights or new obstacle embeddings in those files: no resume."""
    from facelatent.synthetic.job import create_references

    embedder, obstacles = write_tiny_embedder(tmp_path / "tiny.safetensors"), tmp_path / "obstacles.npy"
    np.save(obstacles, np.random.RandomState(0).randn(3, 64).astype(np.float32))
    cfg = {
        "num_identities": 4,
        "seed": 1,
        "embedder": str(embedder),
        "batch_size": 4,
        "references": {
            "algorithm": "langevin",
            "langevin": {"iterations": 4, "checkpoint_every": 1, "constant_distance": 3.0},
        },
    }  # obstacles push
    save = CheckpointFile.save

    def save_then_stop(self, iteration, arrays):
        save(self, iteration, arrays)
        if iteration == 2:
            raise KeyboardInterrupt  # stands in for a kill right after a checkpoint

    with monkeypatch.context() as m:
        m.setattr(CheckpointFile, "save", save_then_stop)
        with pytest.raises(KeyboardInterrupt):
            create_references(
                generator=dcgan_path,
                run_cfg=cfg,
                out_path=tmp_path / "resumed.h5",
                obstacles_path=obstacles,
                device="cpu",
                mtcnn_weights=fetched_model("mtcnn"),
            )
    assert (tmp_path / "resumed.h5.partial").exists()
    if change == "embedder":
        write_tiny_embedder(embedder, seed=1)
    else:
        np.save(obstacles, np.random.RandomState(1).randn(3, 64).astype(np.float32))
    with caplog.at_level("INFO", logger="facelatent.synthetic"):
        create_references(
            generator=dcgan_path,
            run_cfg=cfg,
            out_path=tmp_path / "resumed.h5",
            obstacles_path=obstacles,
            device="cpu",
            mtcnn_weights=fetched_model("mtcnn"),
        )
    messages = [r.getMessage() for r in caplog.records]
    create_references(
        generator=dcgan_path,
        run_cfg=cfg,
        out_path=tmp_path / "fresh.h5",
        obstacles_path=obstacles,
        device="cpu",
        mtcnn_weights=fetched_model("mtcnn"),
    )
    with h5py.File(tmp_path / "resumed.h5", "r") as a, h5py.File(tmp_path / "fresh.h5", "r") as b:
        assert np.array_equal(a["w"][()], b["w"][()]), np.abs(a["w"][()] - b["w"][()]).max()
    assert not any("resuming after checkpoint" in m for m in messages), messages
    stale = [m for m in messages if "starting over" in m]
    assert len(stale) == 1 and f"made with another {change}; starting over" in stale[0], stale
