"""A whole synthetic run through the rule jobs (tiny FR model), the Idiap export, references, config."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import fetched_model

from facelatent.config import check_config
from facelatent.embeddings import load_embedder
from facelatent.embeddings.base import pairwise_angles
from facelatent.errors import ConfigError, InputFileError
from facelatent.generators import load_generator
from facelatent.synthetic import job
from facelatent.synthetic.config import RunConfig, part_identities, part_names
from facelatent.synthetic.export import read_sample_collection
from facelatent.synthetic.files import read_samples, read_stats_file
from facelatent.synthetic.references import reject_references
from facelatent.synthetic.render import FacePipeline
from facelatent.synthetic.tiny import write_tiny_embedder

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    return write_tiny_embedder(tmp_path_factory.mktemp("tiny") / "tiny.safetensors")


@pytest.fixture(scope="module")
def run(dcgan_path, tiny_path, tmp_path_factory):
    """references (Langevin) -> 2 variation parts -> merge -> crops per part -> figures -> export."""
    root = tmp_path_factory.mktemp("run")
    cfg = {
        "num_identities": 5,
        "seed": 3,
        "embedder": str(tiny_path),
        "batch_size": 4,
        "references": {"algorithm": "langevin", "langevin": {"iterations": 3, "checkpoint_every": 1}},
        "variations": {"identities_per_part": 3, "dispersion": {"iterations": 2, "num_augmentations": 3}},
        "grid_variations": 3,
    }
    job.create_references(
        generator=dcgan_path, run_cfg=cfg, out_path=root / "references.h5", mtcnn_weights=fetched_model("mtcnn")
    )
    parts = [root / "variations" / f"{p}.h5" for p in part_names(5, 3)]
    for part, path in zip(part_names(5, 3), parts, strict=True):
        job.create_variations(
            generator=dcgan_path, references_path=root / "references.h5", run_cfg=cfg, part=part, out_path=path
        )
    job.merge_samples(references=root / "references.h5", parts=parts, out_path=root / "samples.h5")
    job.merge_stats(references=root / "references.h5", parts=parts, out_path=root / "stats.h5")
    for part, path in zip(part_names(5, 3), parts, strict=True):
        job.render_crops(
            generator=dcgan_path,
            references_path=root / "references.h5",
            variations_path=path,
            run_cfg=cfg,
            out_dir=root / "crops" / part,
            manifest_path=root / "crops" / f"{part}.tsv",
        )
    job.merge_crops(manifests=[root / "crops" / f"{p}.tsv" for p in part_names(5, 3)], out_path=root / "crops.tsv")
    metrics = job.plot_synthetic(
        samples=root / "samples.h5",
        stats=root / "stats.h5",
        manifest=root / "crops.tsv",
        crops_dir=root / "crops",
        run_cfg=cfg,
        out_histograms=root / "histograms.png",
        out_stats=root / "stats.png",
        out_grid=root / "grid.png",
        out_metrics=root / "metrics.json",
    )
    job.export_synthetics(
        samples=root / "samples.h5",
        stats=root / "stats.h5",
        run_cfg=cfg,
        out_samples=root / "idiap" / "samples.h5",
        out_reference_stats=root / "idiap" / "references" / "stats.h5",
        out_variation_stats=root / "idiap" / "stats.h5",
    )
    return root, cfg, metrics


def test_samples_hold_each_reference_then_its_variations(run):
    root, _, _ = run
    table, attrs = read_samples(root / "samples.h5")
    assert table.identity.tolist() == [i for i in range(5) for _ in range(4)]
    assert table.label.tolist()[:4] == ["reference", "augmentation_0", "augmentation_1", "augmentation_2"]
    assert attrs["generator"]["kind"] == "dcgan" and attrs["embedder"]["kind"] == "iresnet"
    with h5py.File(root / "references.h5", "r") as refs:
        np.testing.assert_array_equal(table.w[table.label == "reference"], refs["w"][()])
    assert not list(root.rglob("*.partial"))


def test_crops_follow_the_original_naming(run):
    root, _, _ = run
    manifest = pd.read_csv(root / "crops.tsv", sep="\t", dtype={"path": str})
    assert len(manifest) == 20
    assert manifest["identity"].tolist() == [i for i in range(5) for _ in range(4)]  # samples.h5's order
    assert manifest["path"].tolist()[:2] == ["000/00000/reference.png", "000/00000/augmentation_0.png"]
    assert all((root / "crops" / p).exists() for p in manifest["path"])
    assert (root / "crops" / "000" / "00000" / "reference.png").exists()
    assert (root / "crops" / "001" / "00004" / "augmentation_2.png").exists()
    assert sorted(p.name for p in (root / "crops" / "000" / "00002").iterdir()) == [
        "augmentation_0.png",
        "augmentation_1.png",
        "augmentation_2.png",
        "reference.png",
    ]
    assert sorted(p.name for p in (root / "crops" / "001").iterdir()) == ["00003", "00004"]
    from facelatent.images import read_rgb

    assert read_rgb(root / "crops" / "000" / "00001" / "reference.png").shape == (112, 112, 3)


def test_part_crops_equal_the_single_job_crops_byte_for_byte(run, dcgan_path, tmp_path):
    """The old way (the imagery function on the whole samples table, one folder) against the part jobs."""
    from facelatent.synthetic.imagery import crop_relpath
    from facelatent.synthetic.imagery import render_crops as render_crop_files

    root, cfg, _ = run
    pipe, _, _ = job.load_pipeline(dcgan_path, RunConfig.from_dict(cfg))
    table, _ = read_samples(root / "samples.h5")
    old = render_crop_files(pipe, table, tmp_path / "crops")
    merged = pd.read_csv(root / "crops.tsv", sep="\t", dtype={"path": str})
    assert merged[["identity", "label"]].values.tolist() == old[["identity", "label"]].values.tolist()
    for identity, label, path in merged.itertuples(index=False):
        assert path.split("/", 1)[1] == crop_relpath(identity, label)
        assert (root / "crops" / path).read_bytes() == (tmp_path / "crops" / crop_relpath(identity, label)).read_bytes()


def test_a_run_without_variations_crops_every_reference_in_one_part(run, dcgan_path, tmp_path):
    root, cfg, _ = run
    cfg = {**cfg, "variations": {"algorithm": "none"}}
    count = job.render_crops(
        generator=dcgan_path,
        references_path=root / "references.h5",
        run_cfg=cfg,
        out_dir=tmp_path / "crops" / "000",
        manifest_path=tmp_path / "crops" / "000.tsv",
    )
    manifest = pd.read_csv(tmp_path / "crops" / "000.tsv", sep="\t", dtype={"path": str})
    assert count == 5 and manifest["path"].tolist() == [f"000/{i:05d}/reference.png" for i in range(5)]
    assert (tmp_path / "crops" / "000" / "00004" / "reference.png").read_bytes() == (
        root / "crops" / "001" / "00004" / "reference.png"
    ).read_bytes()


def test_a_killed_crop_part_leaves_no_output_folder(run, dcgan_path, tmp_path, monkeypatch):
    """The part folder appears only when every crop is written: a crash mid-part leaves neither it nor its
    manifest (Snakemake reruns the part), and the rerun replaces the partial folder."""
    from facelatent.synthetic import imagery

    root, cfg, _ = run
    kwargs = dict(
        generator=dcgan_path,
        references_path=root / "references.h5",
        variations_path=root / "variations" / "000.h5",
        run_cfg=cfg,
        out_dir=tmp_path / "crops" / "000",
        manifest_path=tmp_path / "crops" / "000.tsv",
    )
    calls = []

    def dies_on_the_second_png(path, image):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        return write_png(path, image)

    write_png = imagery.write_png
    monkeypatch.setattr(imagery, "write_png", dies_on_the_second_png)
    with pytest.raises(KeyboardInterrupt):
        job.render_crops(**kwargs)
    assert not (tmp_path / "crops" / "000").exists() and not (tmp_path / "crops" / "000.tsv").exists()
    monkeypatch.setattr(imagery, "write_png", write_png)
    assert job.render_crops(**kwargs) == 12
    assert not list(tmp_path.rglob("*.partial*"))


def test_merge_crops_refuses_manifests_with_other_columns(tmp_path):
    (tmp_path / "a.tsv").write_text("identity\tlabel\tpath\n0\treference\t000/00000/reference.png\n")
    (tmp_path / "b.tsv").write_text("identity\tpath\n1\t001/00001/reference.png\n")
    with pytest.raises(InputFileError, match="b.tsv.*header"):
        job.merge_crops(manifests=[tmp_path / "a.tsv", tmp_path / "b.tsv"], out_path=tmp_path / "crops.tsv")
    assert not (tmp_path / "crops.tsv").exists()


def test_stats_keep_the_original_names_and_merge_parts(run):
    root, _, _ = run
    groups = read_stats_file(root / "stats.h5")
    original = {
        "dist_min",
        "dist_avg",
        "dist_max",
        "prop_ict",
        "w2wd_min",
        "w2wd_avg",
        "w2wd_max",
        "wavg_avg",
        "timestep",
    } | {f"{k}_{s}" for k in ("intf", "rndf", "latf", "totf") for s in ("min", "avg", "max")}
    assert original <= set(groups["references"]) and original <= set(groups["variations"])
    assert len(groups["references"]["dist_min"]) == 4 and len(groups["variations"]["dist_min"]) == 3
    parts = [read_stats_file_group(p) for p in sorted((root / "variations").glob("*.h5"))]
    np.testing.assert_allclose(groups["variations"]["w2wd_min"], np.minimum(*[p["w2wd_min"] for p in parts]))
    np.testing.assert_allclose(
        groups["variations"]["w2wd_avg"], (3 * parts[0]["w2wd_avg"] + 2 * parts[1]["w2wd_avg"]) / 5, rtol=1e-6
    )


def read_stats_file_group(path: Path) -> dict:
    with h5py.File(path, "r") as fh:
        return {k: v[()] for k, v in fh["stats"].items()}


def test_idiap_export_has_the_sample_collection_layout(run):
    root, _, _ = run
    with h5py.File(root / "idiap" / "samples.h5", "r") as fh:
        assert fh.attrs["magic"] == "synthetics_collection" and fh.attrs["major"] == 2 and fh.attrs["minor"] == 0
        assert sorted(fh) == ["00000", "00001", "00002", "00003", "00004"]
        assert sorted(fh["00003"]) == ["augmentation_0", "augmentation_1", "augmentation_2", "reference"]
        ref = fh["00003"]["reference"]
        assert ref.attrs["network_type"] == "dcgan" and ref.attrs["embedding_type"] == "iresnet"
        assert ref["w_latent"].shape == (1, 100) and ref["embedding"].shape == (1, 64)
        assert ref["w_latent"].dtype == np.float32 and "z_latent" not in ref  # Langevin moved w off mapped z
    back = read_sample_collection(root / "idiap" / "samples.h5")
    table, _ = read_samples(root / "samples.h5")
    np.testing.assert_array_equal(back.w, table.w)
    np.testing.assert_array_equal(back.embedding, table.embedding)


def test_streamed_export_holds_the_rows_of_the_whole_table_export(run, tmp_path):
    """Blocks of 3 rows (cutting through identities) against the whole table in one block, as before; z included."""
    from facelatent.synthetic.export import export_sample_collection
    from facelatent.synthetic.files import iter_samples

    root, _, _ = run
    table, _ = read_samples(root / "samples.h5")
    table.z = np.where(table.label[:, None] == "reference", np.arange(table.w.shape[1], dtype=np.float32), np.nan)
    export_sample_collection([table], tmp_path / "whole.h5", "dcgan", "iresnet")
    blocks = list(iter_samples(root / "samples.h5", block_rows=3))
    assert [len(b) for b in blocks] == [3] * 6 + [2]
    for b, lo in zip(blocks, range(0, 20, 3), strict=True):
        b.z = table.z[lo : lo + 3]
    export_sample_collection(iter(blocks), tmp_path / "blocks.h5", "dcgan", "iresnet")
    whole, streamed = read_sample_collection(tmp_path / "whole.h5"), read_sample_collection(tmp_path / "blocks.h5")
    assert streamed.identity.tolist() == whole.identity.tolist() == table.identity.tolist()
    assert streamed.label.tolist() == whole.label.tolist() == table.label.tolist()
    for name in ("w", "embedding", "z"):
        np.testing.assert_array_equal(getattr(streamed, name), getattr(whole, name))
    job.export_synthetics(
        samples=root / "samples.h5",
        stats=root / "stats.h5",
        run_cfg=run[1],
        out_samples=tmp_path / "job.h5",
        out_reference_stats=tmp_path / "r.h5",
        out_variation_stats=tmp_path / "v.h5",
        block_size=3,
    )
    by_job = read_sample_collection(tmp_path / "job.h5")
    as_before = read_sample_collection(root / "idiap" / "samples.h5")
    np.testing.assert_array_equal(by_job.w, as_before.w)
    np.testing.assert_array_equal(by_job.embedding, as_before.embedding)
    assert by_job.label.tolist() == as_before.label.tolist() and by_job.z is None


def test_plot_and_obstacles_read_only_the_columns_they_need(run):
    from facelatent.synthetic.files import read_reference_embeddings, read_sample_embeddings

    root, _, _ = run
    table, _ = read_samples(root / "samples.h5")
    light = read_sample_embeddings(root / "samples.h5")
    assert light.w.shape == (20, 0) and light.z is None
    np.testing.assert_array_equal(light.embedding, table.embedding)
    assert light.label.tolist() == table.label.tolist()
    refs, attrs = read_reference_embeddings(root / "samples.h5")
    np.testing.assert_array_equal(refs, table.embedding[table.label == "reference"])
    assert attrs["embedder"]["kind"] == "iresnet"
    with h5py.File(root / "idiap" / "references" / "stats.h5", "r") as fh:
        assert fh["dist_min"].shape == (3,) and fh["timestep"].dtype == np.float32  # `iterations` rows
    with h5py.File(root / "idiap" / "stats.h5", "r") as fh:
        assert fh["ref_dist_max"].shape == (2,)


def test_figures_and_verification_metrics(run, capsys):
    root, _, metrics = run
    for name in ("histograms.png", "stats.png", "grid.png"):
        assert (root / name).stat().st_size > 5000
    saved = json.loads((root / "metrics.json").read_text())
    assert 0.0 <= saved["eer"] <= 1.0 and saved["n_genuine"] == 5 * 6 and saved["num_faces"] == 20
    assert saved["inter_angle"]["n"] == 10 and saved["to_reference_angle"]["n"] == 15
    assert saved == json.loads(json.dumps(metrics))


def test_merge_samples_rejects_overlapping_parts(run, tmp_path):
    root, _, _ = run
    part = root / "variations" / "000.h5"
    with pytest.raises(InputFileError, match="identity 0 is also in"):
        job.merge_samples(references=root / "references.h5", parts=[part, part], out_path=tmp_path / "samples.h5")
    with pytest.raises(InputFileError, match="have no variations"):
        job.merge_samples(references=root / "references.h5", parts=[part], out_path=tmp_path / "samples.h5")


def test_reject_accepts_only_candidates_beyond_the_ict(dcgan_path, tiny_path):
    pipe = FacePipeline(load_generator(dcgan_path), load_embedder(tiny_path), batch_size=8)
    probe = pairwise_angles(torch.from_numpy(reject_references(pipe, 6, 0.0, 0.7, seed=0).embedding))
    ict = float(torch.quantile(probe[torch.triu(torch.ones_like(probe), 1) > 0], 0.3))  # rejects some candidates
    refs = reject_references(pipe, 6, ict, 0.7, seed=0)
    theta = pairwise_angles(torch.from_numpy(refs.embedding))
    assert float(theta[torch.triu(torch.ones_like(theta), 1) > 0].min()) >= ict
    assert refs.stats["num_candidates"][0] == 1 and refs.stats["num_candidates"].sum() > 6
    assert len(refs.stats["time_iter"]) == 6 and refs.z.shape == (6, 100)
    with pytest.raises(Exception, match="lower the ICT"):
        reject_references(pipe, 3, 3.0, 0.7, seed=0, max_candidates=4)


def test_reject_runs_with_neighbouring_seeds_share_no_candidate(dcgan_path, tiny_path, monkeypatch):
    """Seeds 0 and 1: every candidate latent drawn by one run is new to the other (and within a run)."""
    from facelatent.synthetic import references

    pipe = FacePipeline(load_generator(dcgan_path), load_embedder(tiny_path), batch_size=8)
    drawn: list[np.ndarray] = []
    candidates = references._candidates

    def recorded(pipe, seeds, truncation_psi):
        z, w = candidates(pipe, seeds, truncation_psi)
        drawn.append(z.cpu().numpy())
        return z, w

    monkeypatch.setattr(references, "_candidates", recorded)
    runs = []
    for seed in (0, 1):
        drawn.clear()
        reject_references(pipe, 4, 0.0, 0.7, seed=seed)  # ICT 0: the first candidate wins, 8 drawn per identity
        runs.append({row.tobytes() for row in np.concatenate(drawn)})
    assert len(runs[0]) == len(runs[1]) == 32
    assert not runs[0] & runs[1], f"{len(runs[0] & runs[1])} candidate latents shared"


def test_parts_are_contiguous_blocks():
    assert part_names(10, 4) == ["000", "001", "002"]
    assert part_identities("002", 10, 4) == [8, 9]
    with pytest.raises(ConfigError):
        part_identities(3, 10, 4)


def test_schema_validates_the_demo_and_matches_the_dataclasses():
    """The synthetic section of config.yaml validates, gets every default, and builds a RunConfig."""
    schema_path = REPO / "config" / "schema.yaml"
    schema = yaml.safe_load(schema_path.read_text())
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    check_config(config, schema_path)
    demo = config["synthetic"]["runs"]["demo"]
    assert demo["references"]["langevin"]["repulsion_coefficient"] == 1.0  # defaults filled in
    assert demo["variations"]["dispersion"]["embedding_coefficient"] == 20.0
    run = RunConfig.from_dict(demo)
    assert run.references.langevin.iterations == 8 and run.variations.dispersion.num_augmentations == 4
    run_defaults = RunConfig()
    for key, value in run_defaults.as_dict()["references"]["langevin"].items():
        if key != "ict":
            assert (
                schema["properties"]["synthetic"]["properties"]["runs"]["additionalProperties"]["properties"][
                    "references"
                ]["properties"]["langevin"]["properties"][key]["default"]
                == value
            ), key
    with pytest.raises(ConfigError, match="references.langevin.radius"):
        RunConfig.from_dict({"references": {"langevin": {"radius": 1.0}}})


def test_obstacles_are_reference_embeddings_of_the_same_fr_model(run, tmp_path):
    root, _, _ = run
    refs, attrs = job.read_references(root / "references.h5")
    obstacles = job.load_obstacles(root / "samples.h5", attrs["embedder"])
    np.testing.assert_array_equal(obstacles.numpy(), refs.embedding)
    assert job.load_obstacles(root / "references.h5").shape == (5, 64)
    np.save(tmp_path / "e.npy", refs.embedding[:2])
    assert job.load_obstacles(tmp_path / "e.npy").shape == (2, 64)
    with pytest.raises(InputFileError, match="this run uses"):
        job.load_obstacles(root / "samples.h5", {**attrs["embedder"], "embedding_dim": 512})


def test_merge_samples_streams_blocks_and_keeps_the_row_order(tmp_path):
    """Parts holding shuffled identities, merged in blocks of 4 rows: every row equals the in-memory
    answer (identity ascending, then reference, augmentation_0, augmentation_1, ...; z on references only)."""
    from facelatent.synthetic.files import (
        FaceTable,
        augmentation_label,
        merge_samples,
        write_references,
        write_variations,
    )

    rng = np.random.default_rng(0)
    n, a, w_dim, d = 7, 3, 4, 5
    ref_w, ref_e, ref_z = (rng.standard_normal((n, k)).astype(np.float32) for k in (w_dim, d, 6))
    order = rng.permutation(n)
    write_references(
        tmp_path / "references.h5",
        order,
        ref_w[order],
        ref_e[order],
        ref_z[order],
        {},
        "random",
        {},
        {"sha256": "g"},
        {},
    )
    var_w = rng.standard_normal((n, a, w_dim)).astype(np.float32)
    var_e = rng.standard_normal((n, a, d)).astype(np.float32)
    parts = []
    for k, ids in enumerate((order[:3], order[3:])):
        rows = [(i, j) for j in reversed(range(a)) for i in ids]  # labels out of order inside the file
        table = FaceTable(
            np.array([i for i, _ in rows]),
            np.array([augmentation_label(j) for _, j in rows], object),
            np.stack([var_w[i, j] for i, j in rows]),
            np.stack([var_e[i, j] for i, j in rows]),
        )
        parts.append(
            write_variations(
                tmp_path / f"{k}.h5", table, {}, f"{k:03d}", len(ids), a, "dispersion", {}, {"sha256": "g"}, {}
            )
        )
    assert merge_samples(tmp_path / "references.h5", parts, tmp_path / "samples.h5", block_rows=4) == n * (a + 1)
    rows, _ = read_samples(tmp_path / "samples.h5")
    assert list(rows.identity) == [i for i in range(n) for _ in range(a + 1)]
    assert list(rows.label) == ["reference", "augmentation_0", "augmentation_1", "augmentation_2"] * n
    expected_w = np.stack([w for i in range(n) for w in (ref_w[i], *var_w[i])])
    expected_e = np.stack([e for i in range(n) for e in (ref_e[i], *var_e[i])])
    np.testing.assert_array_equal(rows.w, expected_w)
    np.testing.assert_array_equal(rows.embedding, expected_e)
    z = rows.z.reshape(n, a + 1, -1)
    np.testing.assert_array_equal(z[:, 0], ref_z)
    assert np.isnan(z[:, 1:]).all()
