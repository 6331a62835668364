"""Identity leakage: the tiled closest-real search equals brute force, the threshold drops exactly the planted
near-duplicate identity (and train.tsv loses its crops), and embeddings of another FR model are refused."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from facelatent.embeddings.verification import pair_histograms
from facelatent.errors import ConfigError, InputFileError
from facelatent.judge.job import check_leakage
from facelatent.judge.leakage import LeakageConfig, closest_real, impostor_threshold
from facelatent.store import atomic_h5, write_column
from facelatent.synthetic.files import merge_samples, write_references

DIM = 256
SHA = "a" * 64
RUN_EMBEDDER = {"kind": "facenet", "embedding_dim": DIM, "checkpoint_sha256": SHA}
PLANTED = 3  # the synthetic identity that copies a real face


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_tiled_max_equals_brute_force():
    rng = np.random.default_rng(0)
    queries, gallery = rng.normal(size=(23, 12)), rng.normal(size=(41, 12)) * rng.uniform(0.2, 3, size=(41, 1))
    best, index = closest_real(queries.astype(np.float32), gallery.astype(np.float32), block_size=4)
    cos = unit(queries) @ unit(gallery).T
    np.testing.assert_array_equal(index, cos.argmax(axis=1))
    np.testing.assert_allclose(best, cos.max(axis=1), atol=1e-6)


def real_embeddings(rng) -> tuple[np.ndarray, np.ndarray]:
    """20 real subjects x 5 images in the first half of the dimensions."""
    centres = rng.normal(size=(20, DIM // 2))
    images = np.repeat(centres, 5, axis=0) + 0.3 * rng.normal(size=(100, DIM // 2))
    return np.pad(images, ((0, 0), (0, DIM // 2))).astype(np.float32), np.repeat(np.arange(20), 5).astype(str)


def write_embeddings(path, embeddings, subjects, spec="facenet_casia", sha=SHA):
    with atomic_h5(
        path, "facelatent.embeddings", {}, {"embedder": spec, "crop": "resize", "embedder_sha256": sha}
    ) as fh:
        write_column(fh, "ids", np.array([f"img{i}" for i in range(len(subjects))], dtype=object))
        write_column(fh, "subjects", np.asarray(subjects, dtype=object))
        write_column(fh, "embeddings", embeddings)
    return path


@pytest.fixture
def run_files(tmp_path):
    """samples.h5 of 8 synthetic identities (the second half of the dimensions: cosine 0 to every real image,
    except PLANTED, a copy of real image 17 plus a little noise), the real embeddings file and crops.tsv."""
    rng = np.random.default_rng(1)
    real, subjects = real_embeddings(rng)
    refs = np.pad(rng.normal(size=(8, DIM // 2)), ((0, 0), (DIM // 2, 0)))
    refs[PLANTED] = real[17] + 0.01 * rng.normal(size=DIM)
    references = tmp_path / "references.h5"
    write_references(
        references, np.arange(8), np.zeros((8, 4)), refs, None, {}, "random", RUN_EMBEDDER, {"kind": "test"}, {}
    )
    samples = tmp_path / "samples.h5"
    merge_samples(references, [], samples)
    manifest = tmp_path / "crops.tsv"
    rows = [(i, label, f"000/{i:05d}/{label}.png") for i in range(8) for label in ("reference", "augmentation_0")]
    pd.DataFrame(rows, columns=["identity", "label", "path"]).to_csv(manifest, sep="\t", index=False)
    return samples, manifest, write_embeddings(tmp_path / "real.h5", real, subjects), (real, subjects)


def run_check(run_files, tmp_path, leakage_cfg=None, embeddings=None, spec="facenet_casia"):
    samples, manifest, real_path, _ = run_files
    out = {k: tmp_path / f"leakage.{k}" for k in ("tsv", "train", "json", "png")}
    summary = check_leakage(
        samples=samples,
        manifest=manifest,
        embeddings=[embeddings or real_path],
        datasets=["real"],
        leakage_cfg=leakage_cfg,
        run_spec=spec,
        out_tsv=out["tsv"],
        out_train=out["train"],
        out_json=out["json"],
        out_png=out["png"],
    )
    return summary, out


def test_default_threshold_drops_exactly_the_planted_identity(run_files, tmp_path):
    summary, out = run_check(run_files, tmp_path)
    real, subjects = run_files[3]
    threshold, resolved = impostor_threshold(pair_histograms(real, subjects), 1e-3)
    assert resolved and summary["threshold"] == threshold and 0 < threshold < 0.99
    table = pd.read_csv(out["tsv"], sep="\t", dtype={"closest_subject": str})
    assert table.loc[table["dropped"], "identity"].tolist() == [PLANTED]
    planted = table.set_index("identity").loc[PLANTED]
    assert planted["closest_subject"] == subjects[17] and planted["max_cosine"] > 0.99
    assert (table.loc[table["identity"] != PLANTED, "max_cosine"].abs() < 1e-6).all()  # orthogonal to every real face
    train = pd.read_csv(out["train"], sep="\t")
    assert sorted(set(train["identity"])) == [i for i in range(8) if i != PLANTED] and len(train) == 14
    assert list(train.columns) == ["identity", "label", "path"] and out["png"].stat().st_size > 0


def test_configured_threshold_is_used(run_files, tmp_path):
    summary, out = run_check(run_files, tmp_path, {"max_cosine": 1.0, "datasets": ["real"]})
    assert summary["threshold"] == 1.0 and summary["dropped"] == 0 and summary["kept_crops"] == 16


def test_embeddings_of_another_fr_model_are_refused(run_files, tmp_path):
    real, subjects = run_files[3]
    other = write_embeddings(tmp_path / "other.h5", real, subjects, sha="b" * 64)
    with pytest.raises(InputFileError, match=r"other\.h5.*FR weights sha256 bbbbbbbbbbbb, the run with aaaaaaaaaaaa"):
        run_check(run_files, tmp_path, embeddings=other)
    # without a recorded sha256 (files from before it was recorded) the specs must agree
    old = write_embeddings(tmp_path / "old.h5", real, subjects, spec="iresnet50:/models/x.pth", sha=None)
    with pytest.raises(InputFileError, match="embedded with FR model 'iresnet50:/models/x.pth', the run with"):
        run_check(run_files, tmp_path, embeddings=old)
    assert not (tmp_path / "leakage.tsv").exists()


def test_leakage_config_rejects_unknown_keys_and_bad_far():
    with pytest.raises(ConfigError, match="leakage.threshold"):
        LeakageConfig.from_dict({"threshold": 0.5})
    with pytest.raises(ConfigError, match="leakage.far"):
        LeakageConfig.from_dict({"far": 0.0})
