"""AU classifier: honest subject-disjoint evaluation on the planted CK+ fixture, clear errors, reproducible."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from facelatent.au.data import load_au_data, subject_splits
from facelatent.au.job import AUConfig, predict_aus, predict_synthetic_aus, train_au_classifier
from facelatent.errors import FaceLatentError, InputFileError

CONFIG = dict(widths=[64], dropout=0.2, max_epochs=150, patience=30, seed=0)


@pytest.fixture(scope="module")
def ckplus_latents(true_latents_file):
    return true_latents_file("ckplus", frames="peak+neutral")


def outputs(out) -> dict:
    """The rule's outputs, all in one folder."""
    return {
        "model_ckpt": out / "model.ckpt",
        "metrics_json": out / "metrics.json",
        "per_au_tsv": out / "per_au.tsv",
        "roc_png": out / "roc.png",
        "pr_png": out / "pr.png",
    }


@pytest.fixture(scope="module")
def trained(ckplus_latents, tmp_path_factory):
    out = tmp_path_factory.mktemp("au")
    return out, train_au_classifier(latents_h5=ckplus_latents, au=AUConfig(**CONFIG), **outputs(out), device="cpu")


def test_network_beats_chance_and_matches_baseline(trained):
    out, metrics = trained
    test = metrics["test"]
    print(f"test macro ROC-AUC {test['macro_roc_auc']:.4f}, logistic baseline {test['baseline_macro_roc_auc']:.4f}")
    assert test["macro_roc_auc"] > 0.9
    assert test["macro_roc_auc"] >= test["baseline_macro_roc_auc"] - 0.02
    table = pd.read_csv(out / "per_au.tsv", sep="\t")
    assert {"au", "support", "roc_auc", "average_precision", "f1", "threshold", "baseline_roc_auc"} <= set(table)
    assert set(json.loads((out / "metrics.json").read_text())) >= {"aus", "splits", "test"}
    assert (out / "model.ckpt").stat().st_size > 0 and (out / "roc.png").exists() and (out / "pr.png").exists()


def test_no_subject_in_two_splits(trained, ckplus_latents):
    _, metrics = trained
    splits = {name: set(subjects) for name, subjects in metrics["splits"].items()}
    assert not splits["train"] & splits["val"] and not splits["train"] & splits["test"]
    assert not splits["val"] & splits["test"]
    data = load_au_data(ckplus_latents, 0.1, True, 0)
    for subject in set(data.subjects):
        assert len(set(data.split[data.subjects == subject])) == 1


def test_same_seed_same_metrics(ckplus_latents, trained, tmp_path):
    _, first = trained
    again = train_au_classifier(latents_h5=ckplus_latents, au=AUConfig(**CONFIG), **outputs(tmp_path), device="cpu")
    assert again["test"] == first["test"]


def test_splits_are_seeded():
    subjects = np.array([f"S{i:03d}" for i in range(10)])
    assert subject_splits(subjects, (0.6, 0.2, 0.2), 1) == subject_splits(subjects, (0.6, 0.2, 0.2), 1)
    assert subject_splits(subjects, (0.6, 0.2, 0.2), 1) != subject_splits(subjects, (0.6, 0.2, 0.2), 2)


def test_empty_au_set_is_explained(ckplus_latents):
    with pytest.raises(FaceLatentError, match="au.min_active"):
        load_au_data(ckplus_latents, 1.01, True, 0)


def test_latents_without_facs_are_refused(true_latents_file):
    multipie = true_latents_file("multipie")
    with pytest.raises(InputFileError, match="has no CK\\+ FACS labels") as info:
        load_au_data(multipie, 0.1, True, 0)
    assert str(multipie) in str(info.value)


def test_predict_aus_writes_probabilities(trained, ckplus_latents, tmp_path):
    out, metrics = trained
    predict_aus(out / "model.ckpt", ckplus_latents, tmp_path / "pred.tsv")
    table = pd.read_csv(tmp_path / "pred.tsv", sep="\t")
    assert list(table.columns) == ["id"] + [f"AU{a}" for a in metrics["aus"]]
    assert table.iloc[:, 1:].to_numpy().min() >= 0 and table.iloc[:, 1:].to_numpy().max() <= 1


def test_predict_aus_labels_synthetic_samples(trained, tmp_path):
    from facelatent.store import write_table

    out, metrics = trained
    rng = np.random.default_rng(0)
    samples = tmp_path / "samples.h5"
    write_table(
        samples,
        "facelatent.samples",
        {
            "w": rng.standard_normal((6, 100)).astype(np.float32),
            "identity": np.repeat(np.arange(2), 3),
            "label": np.array(["reference", "augmentation_0", "augmentation_1"] * 2),
            "embedding": np.zeros((6, 512), np.float32),
        },
    )
    predict_aus(out / "model.ckpt", samples, tmp_path / "aus.tsv")
    table = pd.read_csv(tmp_path / "aus.tsv", sep="\t")
    predict_synthetic_aus(model_ckpt=out / "model.ckpt", samples_h5=samples, out_tsv=tmp_path / "rule.tsv")
    assert (tmp_path / "rule.tsv").read_text() == (tmp_path / "aus.tsv").read_text()  # the rule's job
    assert table["id"].tolist()[:2] == ["00000/reference", "00000/augmentation_0"]
    assert list(table.columns[1:]) == [f"AU{a}" for a in metrics["aus"]]

    # written block by block: the same table whatever the block size, here with blocks that split identities
    predict_aus(out / "model.ckpt", samples, tmp_path / "blocks.tsv", block_rows=4)
    assert_same_predictions(tmp_path / "blocks.tsv", tmp_path / "aus.tsv")


def assert_same_predictions(a, b):
    """Same ids and columns; probabilities equal to the printed precision (BLAS may round the last bit of a
    differently sized batch the other way, which can flip the fifth decimal)."""
    left, right = pd.read_csv(a, sep="\t"), pd.read_csv(b, sep="\t")
    assert list(left.columns) == list(right.columns) and left["id"].tolist() == right["id"].tolist()
    np.testing.assert_allclose(left.iloc[:, 1:].to_numpy(), right.iloc[:, 1:].to_numpy(), rtol=0, atol=1.01e-5)


def test_predict_aus_blocks_match_a_whole_file_of_real_latents(trained, ckplus_latents, tmp_path):
    out, _ = trained
    predict_aus(out / "model.ckpt", ckplus_latents, tmp_path / "whole.tsv", block_rows=1 << 20)
    predict_aus(out / "model.ckpt", ckplus_latents, tmp_path / "blocks.tsv", block_rows=7)
    assert_same_predictions(tmp_path / "blocks.tsv", tmp_path / "whole.tsv")


AU_MEMORY_SCRIPT = """
import resource, sys
from pathlib import Path
import numpy as np
import torch
from facelatent.au.job import predict_aus
from facelatent.au.lightning_module import AUClassifier
from facelatent.store import write_table

tmp, n, headroom = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
write_table(tmp / "samples.h5", "facelatent.samples", {
    "w": rng.standard_normal((n, 512), dtype=np.float32), "identity": np.arange(n) // 64,
    "label": np.array(["reference"] + [f"augmentation_{i}" for i in range(63)])[np.arange(n) % 64],
    "embedding": np.zeros((n, 8), np.float32)})
model = AUClassifier(18 * 512, [1, 12], (8,), 0.1, 1e-3, 50, [1.0, 2.0])  # a W+ model: each W row x 18
torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams),
            "pytorch-lightning_version": "2.6.6"}, tmp / "model.ckpt")
predict_aus(tmp / "model.ckpt", tmp / "samples.h5", tmp / "warmup.tsv", block_rows=64)  # lazy kernels loaded
vm = [int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmSize:")][0]
resource.setrlimit(resource.RLIMIT_AS, (vm + headroom, vm + headroom))
predict_aus(tmp / "model.ckpt", tmp / "samples.h5", tmp / "aus.tsv")
print(sum(1 for _ in open(tmp / "aus.tsv")) - 1)
"""


def test_predict_aus_streams_where_the_whole_broadcast_cannot_fit(tmp_path):
    """60,000 synthetic W faces for a W+ AU model: broadcast all at once they are 2.2 GB of float32 (650,000 faces:
    24 GB); with the address space capped at 1 GiB above the loaded interpreter's, the block-wise job completes."""
    n, headroom = 60_000, 1 << 30
    assert n * 18 * 512 * 4 > 2 * headroom
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", AU_MEMORY_SCRIPT, str(tmp_path), str(n), str(headroom)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == str(n)
    head = pd.read_csv(tmp_path / "aus.tsv", sep="\t", nrows=3)
    assert head["id"].tolist() == ["00000/reference", "00000/augmentation_0", "00000/augmentation_1"]


@pytest.fixture
def tiny_au_checkpoint(tmp_path):
    """A checkpoint written by a real Trainer with the callbacks train_au_classifier uses (a few CPU steps)."""
    import lightning as L
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from facelatent.au.lightning_module import AUClassifier

    L.seed_everything(0)
    data = TensorDataset(torch.randn(16, 1, 4), (torch.rand(16, 2) > 0.5).float())
    model = AUClassifier(4, [1, 12], (8,), 0.1, 1e-3, 50, [1.0, 2.0])
    best = L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path, monitor="val_loss", save_top_k=1, filename="best")
    trainer = L.Trainer(
        max_epochs=2,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[best, L.pytorch.callbacks.EarlyStopping("val_loss")],
    )
    trainer.fit(model, DataLoader(data, batch_size=8), DataLoader(data, batch_size=8))
    return tmp_path / "best.ckpt"


def test_au_checkpoints_load_through_the_weights_only_unpickler(tiny_au_checkpoint):
    from facelatent.au.job import load_au_classifier

    model = load_au_classifier(tiny_au_checkpoint)
    assert model.hparams.aus == [1, 12] and model.hparams.in_features == 4


def test_au_checkpoint_with_code_is_refused(tiny_au_checkpoint, tmp_path):
    """load_from_checkpoint used torch's default; now weights_only=True is explicit and a payload is refused
    in one line (train_au_classifier, predict_aus and `facelatent predict-aus --model` share the loader)."""
    import os

    import torch

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {tmp_path / 'pwned'}",)

    ckpt = torch.load(tiny_au_checkpoint, weights_only=False)  # our own file
    ckpt["hyper_parameters"]["lr"] = Payload()
    path = tmp_path / "evil.ckpt"
    torch.save(ckpt, path)
    with pytest.raises(InputFileError) as info:
        predict_aus(path, tmp_path / "unused.h5", tmp_path / "out.tsv")
    message = str(info.value)
    assert "\n" not in message and str(path) in message and "refused global 'posix.system'" in message, message
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("split", [(0.6, 0.3, 0.3), (0.8, 0.2, 0.0), (0.5, 0.5)])
def test_au_split_must_be_three_positive_shares_summing_to_1(split):
    subjects = np.array([f"S{i:03d}" for i in range(10)])
    with pytest.raises(FaceLatentError, match=r"au\.split must be three shares"):
        subject_splits(subjects, split, 0)


def test_au_split_that_leaves_no_train_subject_is_refused():
    with pytest.raises(FaceLatentError, match=r"au\.split .* leaves no training subject among 4 subjects"):
        subject_splits(np.array(["a", "b", "c", "d"]), (0.2, 0.4, 0.4), 0)


def test_fewer_than_3_subjects_is_explained():
    with pytest.raises(FaceLatentError, match="at least 3 subjects .* found 2"):
        subject_splits(np.array(["a", "b", "a"]), (0.6, 0.2, 0.2), 0)


def test_train_loader_shuffles_with_au_seed():
    from facelatent.au.data import AUData, AUDataModule

    n = 32
    data = AUData(
        np.arange(n, dtype=np.float32)[:, None, None],
        np.zeros((n, 1), np.float32),
        [1],
        np.array(["s"] * n),
        np.arange(n).astype(str),
        np.array(["train"] * n),
    )

    def first_batch(seed: int) -> list[float]:
        module = AUDataModule(data, batch_size=n, seed=seed)
        module.setup()
        return next(iter(module.train_dataloader()))[0].ravel().tolist()

    assert first_batch(1) == first_batch(1)
    assert first_batch(1) != first_batch(2)
