"""train_fr end to end on a tiny IResNet: it learns, writes an arcface_torch-layout backbone that load_embedder
reads, two gloo processes match one, a kill after a checkpoint resumes to the same weights, a stale checkpoint
is not resumed from; plus the identity datasets and the global-batch sampler."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from facelatent.embeddings.iresnet import IResNetEmbedder
from facelatent.embeddings.loading import load_embedder
from facelatent.fr.data import AlignedDataset, CropsDataset, GlobalBatchSampler
from facelatent.fr.job import train_fr
from facelatent.fr.model import TINY as TINY_NET
from facelatent.fr.model import convert_global_batchnorm

REPO = Path(__file__).resolve().parents[1]
TINY = dict(arch="tiny", batch_size=8, lr=0.02, milestones=[100], num_workers=0, seed=3)  # lr 0.1: eval BN lags
ARCFACE_KEY = re.compile(
    r"(conv1\.weight|bn1\.\w+|prelu\.weight|bn2\.\w+|fc\.(weight|bias)|features\.\w+"
    r"|layer[1-4]\.\d+\.(bn[123]\.\w+|conv[12]\.weight|prelu\.weight|downsample\.0\.weight|downsample\.1\.\w+))"
)


def pattern_crops(root: Path, identities: int, per_identity: int, seed: int = 0) -> Path:
    """A crops manifest of coloured-pattern 'identities': a seeded 8x8 colour pattern each, shifted and noised."""
    rng = np.random.default_rng(seed)
    rows = []
    for ident in range(identities):
        base = np.kron(rng.integers(0, 256, (8, 8, 3)), np.ones((16, 16, 1)))
        for k in range(per_identity):
            dy, dx = rng.integers(0, 8, 2)
            image = np.clip(base[dy : dy + 112, dx : dx + 112] + rng.normal(0, 20, (112, 112, 3)), 0, 255)
            path = f"{ident:05d}/augmentation_{k}.png"
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image.astype(np.uint8)).save(root / path)
            rows.append({"identity": ident, "label": f"augmentation_{k}", "path": path})
    manifest = root / "crops.tsv"
    pd.DataFrame(rows).to_csv(manifest, sep="\t", index=False)
    return manifest


@pytest.fixture(scope="module")
def crops(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("crops")
    return {"kind": "crops", "manifest": str(pattern_crops(root, 4, 4)), "root": str(root)}


def outputs(out: Path) -> dict:
    return dict(
        out_backbone=out / "backbone.safetensors",
        out_initial=out / "initial.safetensors",
        metrics_csv=out / "metrics.csv",
        checkpoint_dir=out / "ckpt",
    )


RUNNER = """
import json, logging, sys
logging.basicConfig(level=logging.INFO)
from facelatent.fr.job import train_fr
args = json.load(open(sys.argv[1]))
train_fr(**args)
"""


# The kill test's run stops after its first last.ckpt (as a job waiting on I/O would) until it is killed: without
# this the 16-image epochs finish faster than a busy machine polls for the checkpoint, and the kill comes too late.
STALL_AFTER_LAST_CHECKPOINT = """
import time
from pathlib import Path
import lightning as L
_save = L.Trainer.save_checkpoint
def _save_then_stall(self, filepath, *args, **kwargs):
    _save(self, filepath, *args, **kwargs)
    if (Path(filepath).parent / "last.ckpt").exists():
        time.sleep(600)
L.Trainer.save_checkpoint = _save_then_stall
"""


def run_script(tmp_path: Path, stall: bool = False, **kwargs) -> subprocess.Popen:
    """train_fr in its own interpreter (Lightning's DDP launcher re-runs the script for rank 1)."""
    script = tmp_path / ("run_fr_stalling.py" if stall else "run_fr.py")
    spec = tmp_path / f"args_{len(list(tmp_path.glob('args_*')))}.json"
    script.write_text((STALL_AFTER_LAST_CHECKPOINT if stall else "") + RUNNER)
    spec.write_text(json.dumps(kwargs, default=str))
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.Popen(
        [sys.executable, str(script), str(spec)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def run_to_end(tmp_path: Path, **kwargs) -> str:
    proc = run_script(tmp_path, **kwargs)
    log = proc.communicate(timeout=300)[0].decode(errors="replace")
    assert proc.returncode == 0, log[-3000:]
    return log


def embed_all(model: IResNetEmbedder, dataset: CropsDataset) -> torch.Tensor:
    images = torch.stack([dataset[(i, False)][0] for i in range(len(dataset))]).float()
    with torch.no_grad():
        return torch.nn.functional.normalize(model.eval().embed(images), dim=1)


def separation(emb: torch.Tensor, labels: np.ndarray) -> float:
    """Mean same-identity cosine minus mean different-identity cosine."""
    cos = emb @ emb.T
    same = torch.from_numpy(labels[:, None] == labels[None, :])
    off = ~torch.eye(len(labels), dtype=torch.bool)
    return float(cos[same & off].mean() - cos[~same].mean())


def test_train_fr_learns_and_writes_an_arcface_torch_backbone(crops, tmp_path):
    out = outputs(tmp_path)
    result = train_fr(train_set=crops, cfg=dict(TINY, max_epochs=8), **out)
    metrics = pd.read_csv(out["metrics_csv"])
    assert list(metrics["epoch"]) == list(range(8))
    assert metrics["train_loss"].iloc[-1] < 0.8 * metrics["train_loss"].iloc[0]
    assert result["identities"] == 4 and result["images"] == 16 and result["resumed_from"] is None

    dataset = CropsDataset(crops["manifest"], crops["root"])
    trained = load_embedder(f"iresnet:{out['out_backbone']}")
    initial = load_embedder(f"iresnet:{out['out_initial']}")
    assert (
        separation(embed_all(trained, dataset), dataset.labels)
        > separation(embed_all(initial, dataset), dataset.labels) + 0.1
    )

    # arcface_torch's keys, loadable the way insightface's tools load a backbone
    state = load_file(str(out["out_backbone"]))
    assert all(ARCFACE_KEY.fullmatch(k) for k in state), [k for k in state if not ARCFACE_KEY.fullmatch(k)]
    assert {"conv1.weight", "prelu.weight", "fc.weight", "features.running_var", "layer1.0.bn1.weight"} <= set(state)
    plain = IResNetEmbedder(**TINY_NET)
    plain.load_state_dict(state, strict=True)
    images = torch.stack([dataset[(i, False)][0] for i in range(4)]).float()
    with torch.no_grad():
        torch.testing.assert_close(plain.eval().embed(images), trained.embed(images), rtol=0, atol=0)

    # the saved file holds the trained weights: the same embeddings as the Lightning checkpoint's backbone
    ckpt = torch.load(out["checkpoint_dir"] / "last.ckpt", map_location="cpu", weights_only=True)
    backbone = {k.removeprefix("model.backbone."): v for k, v in ckpt["state_dict"].items() if "backbone" in k}
    from_ckpt = IResNetEmbedder(**TINY_NET)
    from_ckpt.load_state_dict(backbone, strict=True)
    with torch.no_grad():
        torch.testing.assert_close(from_ckpt.eval().embed(images), trained.embed(images), rtol=0, atol=0)


def max_abs_diff(a: Path, b: Path) -> float:
    sa, sb = load_file(str(a)), load_file(str(b))
    assert sa.keys() == sb.keys()
    return max(float((sa[k].double() - sb[k].double()).abs().max()) for k in sa if sa[k].is_floating_point())


@pytest.mark.slow
def test_two_gloo_processes_train_to_the_same_weights_as_one(crops, tmp_path):
    # float64: the run is chaotic at s 64 (float32 rounding grows to O(1) in 8 steps), so equality is
    # checked where rounding is 1e-16; the backbone is saved as float32, hence the tolerance of float32's ulp
    cfg = dict(TINY, max_epochs=2, precision="64-true")
    runs = {d: outputs(tmp_path / f"d{d}") for d in (1, 2)}
    logs = {d: run_to_end(tmp_path, train_set=crops, cfg=cfg, devices=d, accelerator="cpu", **runs[d]) for d in (1, 2)}
    assert "Starting with 2 processes" in logs[2]
    assert max_abs_diff(runs[1]["out_backbone"], runs[2]["out_backbone"]) < 1e-5
    m1, m2 = (pd.read_csv(runs[d]["metrics_csv"]) for d in (1, 2))
    np.testing.assert_allclose(m1["train_loss"], m2["train_loss"], rtol=1e-9)


@pytest.mark.slow
def test_killed_run_resumes_from_last_checkpoint_to_the_same_weights(crops, tmp_path):
    cfg = dict(TINY, max_epochs=5)
    whole = outputs(tmp_path / "whole")  # every run in its own interpreter with one thread: the same float sums
    run_to_end(tmp_path, train_set=crops, cfg=cfg, **whole)

    killed = outputs(tmp_path / "killed")
    proc = run_script(tmp_path, stall=True, train_set=crops, cfg=cfg, **killed)
    last = killed["checkpoint_dir"] / "last.ckpt"
    deadline = time.monotonic() + 240
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert last.exists() and not killed["out_backbone"].exists(), "the run ended before it could be killed"

    log = run_to_end(tmp_path, train_set=crops, cfg=cfg, **killed)
    assert f"resuming from {last}" in log
    assert max_abs_diff(whole["out_backbone"], killed["out_backbone"]) == 0.0
    assert max_abs_diff(whole["out_initial"], killed["out_initial"]) == 0.0
    pd.testing.assert_frame_equal(pd.read_csv(whole["metrics_csv"]), pd.read_csv(killed["metrics_csv"]))


@pytest.mark.slow
def test_changed_config_or_train_set_does_not_resume(crops, tmp_path, caplog):
    out = outputs(tmp_path)
    cfg = dict(TINY, max_epochs=1)
    train_fr(train_set=crops, cfg=cfg, **out)
    assert train_fr(train_set=crops, cfg=cfg, **out)["resumed_from"] is not None

    caplog.set_level("INFO", logger="facelatent.fr.train")
    assert train_fr(train_set=crops, cfg=dict(cfg, lr=0.05), **out)["resumed_from"] is None
    assert "starting over" in caplog.text

    manifest = tmp_path / "fewer.tsv"
    pd.read_csv(crops["manifest"], sep="\t").iloc[:-1].to_csv(manifest, sep="\t", index=False)
    changed = dict(crops, manifest=str(manifest))
    assert train_fr(train_set=changed, cfg=dict(cfg, lr=0.05), **out)["resumed_from"] is None
    assert len(list((out["checkpoint_dir"] / "csv").glob("version_*"))) == 1  # the stale attempts' logs went too


def test_global_batch_sampler_splits_each_global_batch_across_ranks():
    one = GlobalBatchSampler(20, 8, seed=1, flip_p=0.5)
    ranks = [GlobalBatchSampler(20, 8, seed=1, flip_p=0.5, rank=r, world_size=2) for r in (0, 1)]
    for epoch in (0, 1):
        for sampler in (one, *ranks):
            sampler.set_epoch(epoch)
        batches = list(one)
        assert len(batches) == 2 and all(len(b) == 8 for b in batches)  # the incomplete batch is dropped
        for batch, part0, part1 in zip(batches, *ranks, strict=True):
            assert part0 + part1 == batch
    one.set_epoch(0)
    first = list(one)
    one.set_epoch(1)
    assert list(one) != first
    flips = [f for batch in first for _, f, _ in batch]
    seeds = [s for batch in first for _, _, s in batch]
    assert len(set(seeds)) == len(seeds)  # every sample its own augmentation draws
    assert 0 < sum(flips) < len(flips)


def test_aligned_dataset_keeps_listed_subjects_resizes_and_flips(tmp_path):
    rng = np.random.default_rng(0)
    ids = [f"{s}_{k}" for s in ("001", "002", "007") for k in range(3)]
    images = rng.integers(0, 256, (len(ids), 64, 64, 3), dtype=np.uint8)
    shards = []
    for part, rows in enumerate((slice(0, 5), slice(5, 9))):
        path = tmp_path / f"{part:03d}.h5"
        with h5py.File(path, "w") as fh:
            fh["ids"] = np.array(ids[rows], dtype=object).astype("S")
            fh["images"] = images[rows]
        shards.append(str(path))
    index = tmp_path / "index.tsv"
    pd.DataFrame({"id": ids, "subject": [i[:3] for i in ids], "path": ids}).to_csv(index, sep="\t", index=False)

    data = AlignedDataset(shards, index, subjects=["007", "002"])
    assert len(data) == 6 and data.identities == ["002", "007"]
    assert sorted(data.labels.tolist()) == [0, 0, 0, 1, 1, 1]
    image, label = data[(3, False)]
    assert image.shape == (3, 112, 112) and image.dtype == torch.uint8 and label == 1
    flipped, _ = data[(3, True)]
    torch.testing.assert_close(flipped, image.flip(2))
    assert len(AlignedDataset(shards, index)) == 9

    train_set = {"kind": "aligned", "shards": shards, "index": str(index), "subjects": ["007", "002"]}
    result = train_fr(train_set=train_set, cfg=dict(TINY, batch_size=4, max_epochs=1), **outputs(tmp_path / "out"))
    assert result["identities"] == 2 and result["images"] == 6


def test_crops_dataset_reads_a_synthetic_manifest_lazily(crops):
    data = CropsDataset(crops["manifest"], crops["root"])
    assert len(data) == 16 and data.identities == ["0", "1", "2", "3"]
    image, label = data[(5, False)]
    assert image.shape == (3, 112, 112) and label == 1


def test_global_batchnorm_without_a_process_group_is_plain_batchnorm():
    torch.manual_seed(0)
    plain = IResNetEmbedder(**TINY_NET)
    converted = convert_global_batchnorm(IResNetEmbedder(**TINY_NET))
    converted.load_state_dict(plain.state_dict(), strict=True)
    assert converted.state_dict().keys() == plain.state_dict().keys()
    x = torch.randn(4, 3, 112, 112)
    for mode in (True, False):  # nn.Module.train: the Embedder base would pin eval mode
        for net in (plain, converted):
            torch.nn.Module.train(net, mode)
        torch.testing.assert_close(converted(x), plain(x), rtol=0, atol=0)
