"""Directions: planted directions are recovered, conditionals are orthogonal, bad labels are named."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from facelatent.datasets.ckplus import au_intensity
from facelatent.directions.edit import move, signed_distance
from facelatent.directions.svm import (
    DirectionError,
    LabelRule,
    SVMConfig,
    conditional_direction,
    conditional_direction_general,
    fit_direction,
    pca_directions,
    select_labels,
)


def unit(v):
    return v / np.linalg.norm(v)


@pytest.fixture(scope="module")
def planted():
    """Latents built like the demo: few identities, scores planted along known unit directions."""
    rng = np.random.default_rng(0)
    dim, subjects, per_subject = 100, 12, 20
    a = unit(rng.standard_normal(dim))
    b = unit(0.6 * a + 0.8 * unit(rng.standard_normal(dim)))  # correlated on purpose
    ident = rng.standard_normal((subjects, dim))
    rows, w = [], []
    for s in range(subjects):
        for _ in range(per_subject):
            sa, sb = rng.choice([-1, 1]) * rng.uniform(0.8, 2.0), rng.normal(0, 1.2)
            z = ident[s] + 0.1 * rng.standard_normal(dim)
            basis = np.stack([a, b])
            z = z - basis.T @ np.linalg.lstsq(basis.T, z, rcond=None)[0] + np.linalg.pinv(basis) @ np.array([sa, sb])
            w.append(z)
            rows.append({"subject": f"S{s:03d}", "a_label": "pos" if sa > 0 else "neg", "b_score": sb})
    return np.asarray(w)[:, None, :], pd.DataFrame(rows), a, b


def test_categorical_direction_recovers_planted(planted):
    w, frame, a, _ = planted
    normal, metrics = fit_direction(
        "a", w, frame, LabelRule(column="a_label", positive=["pos"], negative=["neg"]), SVMConfig()
    )
    assert normal.shape == (100,) and normal.dtype == np.float32
    assert abs(np.linalg.norm(normal) - 1) < 1e-6
    assert float(normal @ a) > 0.9
    assert metrics["cv"]["accuracy_mean"] > 0.9
    assert metrics["n_positive"] + metrics["n_negative"] == len(frame)
    assert {"min", "max", "mean", "std"} <= set(metrics["stats_by_label"]["positive"])


def test_dropping_the_worst_fits_removes_wrong_basin_outliers(planted):
    """A fifth of the latents replaced by wrong-basin stand-ins (random latents, labels kept, low PSNR)."""
    w, frame, a, _ = planted
    rng = np.random.default_rng(1)
    bad = rng.random(len(frame)) < 0.2
    w = w.copy()
    w[bad, 0] = 1.5 * rng.standard_normal((int(bad.sum()), w.shape[2])) + 1.5 * a  # pulled one way: a tilt, not noise
    frame = frame.assign(
        psnr=np.where(bad, 20.0, 30.0) + rng.normal(0, 1, len(frame)),
        psnr_aligned=np.where(bad, 22.0, 33.0) + rng.normal(0, 1, len(frame)),
    )
    rule = LabelRule(column="a_label", positive=["pos"], negative=["neg"])
    all_rows, _ = fit_direction("a", w, frame, rule, SVMConfig(C=0.01))
    kept, metrics = fit_direction("a", w, frame, rule, SVMConfig(C=0.01, drop_worst_fits=0.25))
    assert float(kept @ a) > 0.95 > float(all_rows @ a) + 0.03, (float(all_rows @ a), float(kept @ a))
    dropped = metrics["worst_fits_dropped"]
    assert abs(dropped["n"] - 0.25 * len(frame)) <= 1
    assert 23 < dropped["psnr_below"] < 32  # measured on psnr_aligned, not psnr
    assert metrics["n_positive"] + metrics["n_negative"] == len(frame) - dropped["n"]


def test_continuous_direction_uses_top_and_bottom_ratio(planted):
    w, frame, _, b = planted
    normal, metrics = fit_direction(
        "b", w, frame, LabelRule(column="b_score", continuous=True, ratio=0.25), SVMConfig()
    )
    assert metrics["n_positive"] == metrics["n_negative"] == int(len(frame) * 0.25)
    assert float(normal @ b) > 0.9


def test_w_plus_normal_has_layer_shape(planted):
    w, frame, a, _ = planted
    wp = np.repeat(w, 4, axis=1)
    normal, _ = fit_direction(
        "a", wp, frame, LabelRule(column="a_label", positive=["pos"], negative=["neg"]), SVMConfig(), space="w+"
    )
    assert normal.shape == (4, 100)
    assert float(unit(normal.mean(0)) @ a) > 0.9


def test_conditional_is_orthogonal_and_recovers_the_planted_component(planted):
    w, frame, a, b = planted
    fa, _ = fit_direction("a", w, frame, LabelRule(column="a_label", positive=["pos"], negative=["neg"]), SVMConfig())
    fb, _ = fit_direction("b", w, frame, LabelRule(column="b_score", continuous=True), SVMConfig())
    cond = conditional_direction(fb, [fa])
    assert abs(float(cond.astype(np.float64) @ unit(fa.astype(np.float64)))) < 1e-6
    truth = unit(b - (b @ a) * a)
    assert float(cond @ truth) > 0.9


def test_closed_forms_agree_with_general_solve():
    rng = np.random.default_rng(1)
    p, c1, c2, c3 = (unit(rng.standard_normal(50)) for _ in range(4))
    for conds in ([c1], [c1, c2], [c1, c2, c3]):
        closed = conditional_direction(p, conds)
        general = conditional_direction_general(p, conds)
        np.testing.assert_allclose(closed, general, atol=1e-5)
        for c in conds:
            assert abs(float(closed.astype(np.float64) @ c)) < 1e-6


def test_one_class_is_named():
    frame = pd.DataFrame({"subject": ["a", "b", "c"] * 4, "lab": ["x"] * 12})
    with pytest.raises(DirectionError, match="direction 'smile': only one class present"):
        fit_direction(
            "smile", np.zeros((12, 1, 4)), frame, LabelRule(column="lab", positive=["x"], negative=["y"]), SVMConfig()
        )


def test_fewer_samples_than_folds_is_named():
    frame = pd.DataFrame({"subject": ["a", "b", "c"], "lab": ["x", "y", "x"]})
    with pytest.raises(DirectionError, match="direction 'pose': 3 samples .* fewer than the 5"):
        fit_direction(
            "pose",
            np.random.randn(3, 1, 4),
            frame,
            LabelRule(column="lab", positive=["x"], negative=["y"]),
            SVMConfig(folds=5),
        )


def test_missing_label_column_is_named():
    frame = pd.DataFrame({"subject": ["a"] * 6})
    with pytest.raises(DirectionError, match="direction 'happy': label column 'emotion'"):
        fit_direction("happy", np.zeros((6, 1, 4)), frame, LabelRule(column="emotion", positive=["happy"]), SVMConfig())


def test_cross_validation_keeps_each_subject_on_one_side():
    """Labels constant per subject and no label signal beyond identity: subject-held-out accuracy is chance.

    Folds that split a subject's images would score near 1 by recognising the subject instead.
    """
    rng = np.random.default_rng(11)
    subjects, per_subject, dim = 12, 20, 100
    ident = 3 * rng.standard_normal((subjects, dim))
    w = (np.repeat(ident, per_subject, axis=0) + 0.1 * rng.standard_normal((subjects * per_subject, dim)))[:, None]
    frame = pd.DataFrame(
        {
            "subject": np.repeat([f"S{s}" for s in range(subjects)], per_subject),
            "lab": np.repeat(["pos", "neg"] * (subjects // 2), per_subject),
        }
    )
    _, metrics = fit_direction(
        "leak", w, frame, LabelRule(column="lab", positive=["pos"], negative=["neg"]), SVMConfig(folds=4)
    )
    assert metrics["train_accuracy"] == 1.0
    assert metrics["cv"]["accuracy_mean"] < 0.75, metrics["cv"]


def test_continuous_scores_leave_out_missing_rows_and_break_ties_at_random():
    ids = np.arange(40)
    yaw = np.repeat([-30.0, 0.0, 30.0, np.nan], 10)  # ties within each camera; a quarter without a yaw
    frame = pd.DataFrame({"subject": [f"S{i % 8}" for i in ids], "yaw": yaw})
    idx, y = select_labels("yaw", frame, LabelRule(column="yaw", continuous=True, ratio=0.2))
    assert len(idx) == 2 * int(30 * 0.2)  # the ratio counts rows with a score only
    assert set(yaw[idx[y == 1]]) == {30.0} and set(yaw[idx[y == 0]]) == {-30.0}
    picked = [
        sorted(select_labels("yaw", frame, LabelRule(column="yaw", continuous=True, ratio=0.2), seed=s)[0])
        for s in range(5)
    ]
    assert any(p != picked[0] for p in picked)  # tied rows are drawn by the seed, not taken in file order
    assert not any(set(p) & set(range(20, 29)) and max(p) < 20 for p in picked)


def test_au_rule_selects_by_intensity_and_names_a_bad_facs_entry():
    aus = ["12:4;6:3", "12:3", "1:2", "", "12:5;25:1", "4:1", "12:1", "25:2"] * 2
    frame = pd.DataFrame({"subject": [f"S{i % 4}" for i in range(16)], "aus": aus})
    assert list(au_intensity(frame["aus"], 12)[:8]) == [4, 3, -1, -1, 5, -1, 1, -1]
    idx, y = select_labels("au12", frame, LabelRule(au=12, ratio=0.25))
    assert (y == 1).sum() == 3 and all("12:" in aus[i] for i in idx[y == 1])  # 14 rows with FACS: top 3
    assert all("12:" not in aus[i] and aus[i] for i in idx[y == 0])  # the empty (no FACS) rows are not negatives
    bad = frame.assign(aus=["12:x"] + aus[1:])
    with pytest.raises(DirectionError, match="direction 'au12': FACS entry '12:x'"):
        select_labels("au12", bad, LabelRule(au=12, ratio=0.25))


def test_side_statistics_are_distances_to_the_fitted_hyperplane():
    rng = np.random.default_rng(0)
    a = unit(rng.standard_normal(100))
    label = np.where(rng.random(240) < 0.5, "pos", "neg")
    w = rng.standard_normal((240, 1, 100))
    w[:, 0] += (np.where(label == "pos", 1.5, -1.5) + 5)[:, None] * a  # both classes off the origin along a
    frame = pd.DataFrame({"subject": [f"S{i % 12}" for i in range(240)], "a_label": label})
    rule = LabelRule(column="a_label", positive=["pos"], negative=["neg"])
    normal, metrics = fit_direction("a", w, frame, rule, SVMConfig(intercept=True))
    d = w[:, 0] @ normal + metrics["intercept"]
    assert metrics["intercept"] < -1 and metrics["train_accuracy"] > 0.95
    sides = metrics["stats_by_side"]
    assert sides["positive"]["n"] == int((d > 0).sum()) and sides["negative"]["n"] == int((d <= 0).sum())
    assert sides["negative"]["max"] <= 0 < sides["positive"]["min"]
    assert int((d - metrics["intercept"] > 0).sum()) > sides["positive"]["n"] + 50  # the origin's split differs
    assert abs(sides["positive"]["n"] - metrics["n_positive"]) <= 0.05 * len(frame)


def test_one_subject_and_dependent_conditions_are_named():
    frame = pd.DataFrame({"subject": ["S1"] * 40, "lab": ["x", "y"] * 20})
    with pytest.raises(DirectionError, match="direction 'smile': all 40 samples come from one subject"):
        fit_direction(
            "smile",
            np.random.default_rng(0).standard_normal((40, 1, 4)),
            frame,
            LabelRule(column="lab", positive=["x"], negative=["y"]),
            SVMConfig(),
        )
    p, c = unit(np.arange(1.0, 5.0)), unit(np.ones(4))
    with pytest.raises(DirectionError, match="direction 'smile_given_happy': the primal direction lies in the span"):
        conditional_direction(p, [p], "smile_given_happy")
    with pytest.raises(DirectionError, match="direction 'c3': its conditions are linearly dependent"):
        conditional_direction(p, [c, c, c], "c3")


def test_pca_recovers_dominant_axis():
    rng = np.random.default_rng(2)
    axis = unit(rng.standard_normal(20))
    w = (rng.standard_normal((500, 1)) * 5 * axis + rng.standard_normal((500, 20)) * 0.3)[:, None, :]
    comps, info = pca_directions(w, 3)
    assert comps.shape == (3, 20)
    assert abs(float(comps[0] @ axis)) > 0.99
    assert info["explained_variance_ratio"][0] > 0.9


def test_pca_job_names_the_latents_when_too_few_for_the_components(tmp_path):
    from facelatent.directions.job import fit_pca
    from facelatent.store import write_table

    latents = tmp_path / "ffhq.h5"
    w = np.random.default_rng(4).standard_normal((3, 1, 20)).astype(np.float32)
    write_table(
        latents,
        "facelatent.latents",
        {
            "ids": np.array(["a", "b", "c"]),
            "w": w,
            "loss": np.zeros(3, np.float32),
            "psnr": np.zeros(3, np.float32),
            "steps": np.zeros(3, np.int32),
        },
    )
    outputs = [str(tmp_path / f"pca_{k}.npy") for k in range(3)]
    with pytest.raises(DirectionError, match=rf"{latents}: pca.components is 3 but 3 latents .* give only 2"):
        fit_pca(latents=latents, components=3, space="w", normals=outputs, info_json=tmp_path / "pca.json")
    assert not any((tmp_path / f"pca_{k}.npy").exists() for k in range(3))
    fit_pca(latents=latents, components=2, space="w", normals=outputs[:2], info_json=tmp_path / "pca.json")
    normals = [np.load(p) for p in outputs[:2]]
    assert all(abs(np.linalg.norm(n) - 1) < 1e-6 for n in normals) and abs(float(normals[0] @ normals[1])) < 1e-5


def test_edit_moves_to_absolute_and_relative_distances():
    """Distances are those the SVM saw: w . n per W vector (all 14 layers), the flat dot product in W+."""
    rng = np.random.default_rng(3)
    num_ws, dim = 14, 8
    d = unit(rng.standard_normal(dim)).astype(np.float32)
    ws = np.repeat(rng.standard_normal((3, 1, dim)), num_ws, axis=1).astype(np.float32)  # W latents
    moved = move(ws, d, 2.0, "absolute")
    np.testing.assert_allclose(moved @ d, 2.0, atol=1e-5)  # every layer, as fit_direction measures w[:, 0] . n
    np.testing.assert_allclose(signed_distance(moved, d), 2.0, atol=1e-5)
    rel = move(ws, d, 1.5, "relative")
    np.testing.assert_allclose(rel - ws, np.broadcast_to(1.5 * d, ws.shape), atol=1e-5)
    np.testing.assert_allclose(signed_distance(rel, d) - signed_distance(ws, d), 1.5, atol=1e-5)

    d_plus = unit(rng.standard_normal(num_ws * dim)).reshape(num_ws, dim)  # a W+ normal
    moved = move(ws, d_plus, -1.0, "absolute")
    np.testing.assert_allclose(moved.reshape(3, -1) @ d_plus.reshape(-1), -1.0, atol=1e-5)


def test_edit_grid_draws_one_cell_per_distance_under_its_own_title_line(tmp_path, dcgan_path):
    import cv2

    from facelatent.directions.edit import edit_grid
    from facelatent.generators import load_generator

    G = load_generator(dcgan_path)
    rng = np.random.default_rng(5)
    ws = rng.standard_normal((2, 1, G.w_dim)).astype(np.float32)
    d = unit(rng.standard_normal(G.w_dim)).astype(np.float32)
    out = tmp_path / "grid.png"
    canvas = edit_grid(
        G,
        ws,
        d,
        [-3.0, 0.0, 3.0],
        out,
        mode="absolute",
        row_labels=["a", "b"],
        title="a long direction name (dataset, labels)",
    )
    assert cv2.imread(str(out)).shape == canvas.shape
    header = 24 + 28
    grid = canvas[header:].astype(float)
    assert grid.shape[1] >= 3 * 96 and grid.shape[0] > grid.shape[1] / 3  # 2 rows x 3 columns of faces
    for line in (canvas[:24], canvas[24:header]):  # title, then distances: text on white, each on its own line
        assert (line < 128).any() and (line == 255).all(axis=-1).mean() > 0.8
    cell = grid.shape[1] // 3
    first, last = grid[:, : cell - 4], grid[:, 2 * cell + 4 : 3 * cell]
    assert np.abs(first[:, : last.shape[1]] - last).mean() > 10  # -3 and +3 differ visibly


def dry_run_jobs(repo_root, target, quiet=True):
    quiet_args = ["--quiet", "rules"] if quiet else []
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", target, "-n", *quiet_args],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=180,
    )
    return proc


def clean_workflow_copy(repo_root, dest):
    """The workflow without results (so a dry run plans from scratch), sharing the fetched models."""
    skip = shutil.ignore_patterns(
        ".git", ".venv", ".snakemake", "results", "logs", "benchmarks", "models", "slurm", "__pycache__", "*.egg-info"
    )
    shutil.copytree(repo_root, dest, ignore=skip, symlinks=True)
    if (repo_root / "resources/models").is_dir():
        (dest / "resources/models").symlink_to(repo_root / "resources/models")
    return dest


def test_smile_schedules_only_what_it_needs(repo_root, tmp_path):
    proc = dry_run_jobs(clean_workflow_copy(repo_root, tmp_path / "wf"), "results/directions/smile.npy")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout + proc.stderr
    jobs = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] not in ("total", "job"):
            jobs[parts[0]] = int(parts[1])
    jobs.pop("fetch_model", None)  # only when the models are not fetched yet
    assert set(jobs) <= {"make_demo_data", "index_dataset", "merge_latents", "fit_direction", "visible_subspace"}, jobs
    assert jobs.get("index_dataset", 0) <= 1 and jobs.get("fit_direction") == 1, jobs
    assert jobs.get("visible_subspace") == 1, jobs  # the demo fits inside the generator's visible subspace
    assert "sample_grid" not in out and "render_edits" not in out and "fit_pca" not in out


def dry_run_job_wildcards(proc) -> list[tuple[str, dict]]:
    """(rule, wildcards) of every job in a `snakemake -n` listing."""
    jobs, rule = [], None
    for line in (proc.stdout + proc.stderr).splitlines():
        head = re.match(r"^(?:local)?(?:rule|checkpoint) (\w+):$", line.strip())  # group jobs are indented
        if head:
            rule = head.group(1)
            jobs.append((rule, {}))
        elif rule and line.strip().startswith("wildcards:"):
            pairs = line.split(":", 1)[1].split(",")
            jobs[-1][1].update(dict(p.strip().split("=", 1) for p in pairs))
    return jobs


def test_smile_after_indexing_schedules_exactly_the_multipie_chain(repo_root, demo_root, tmp_path):
    """Once the index checkpoint has run, the DAG behind smile.npy shows every shard job: Multi-PIE's and no other."""
    from facelatent.datasets import read_shard_manifest

    wf = clean_workflow_copy(repo_root, tmp_path / "wf")
    shutil.copytree(demo_root, wf / "results/demo_data")  # the fixtures, as make_demo_data writes them
    index = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "1", "results/index/multipie.shards.tsv"],
        cwd=wf,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert index.returncode == 0, index.stderr[-2000:]
    shards = read_shard_manifest(wf / "results/index/multipie.shards.tsv")
    assert len(shards) >= 2

    proc = dry_run_jobs(wf, "results/directions/smile.npy", quiet=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    jobs = dry_run_job_wildcards(proc)
    counts = {rule: sum(r == rule for r, _ in jobs) for rule, _ in jobs}
    assert counts == {
        "align_shard": len(shards),
        "train_encoder": 1,
        "project_shard": len(shards),
        "merge_latents": 1,
        "visible_subspace": 1,
        "fit_direction": 1,
    }, counts
    assert {wc.get("dataset") for rule, wc in jobs if "dataset" in wc} == {"multipie"}
    assert sorted(wc["shard"] for rule, wc in jobs if rule == "project_shard") == sorted(shards)
    assert [wc for rule, wc in jobs if rule == "fit_direction"] == [{"name": "smile"}]


def test_unknown_direction_name_is_named(repo_root):
    proc = dry_run_jobs(repo_root, "results/directions/frown.npy")
    assert proc.returncode != 0
    assert "direction 'frown' is not in the config's `directions:`" in proc.stdout + proc.stderr


def test_demo_directions_recover_the_planted_ones_on_the_true_latents(demo_root, repo_root):
    """Every direction of the demo config, fitted on the fixtures' true latents, finds its planted direction."""
    import h5py
    import yaml

    cfg = yaml.safe_load((repo_root / "config/config.yaml").read_text())
    svm = SVMConfig(**{**cfg["direction_fitting"], "drop_worst_fits": 0.0})  # true latents have no projection fit
    truth = dict(np.load(demo_root / "ground_truth/directions.npz"))
    fitted, cosines = {}, {}
    with h5py.File(demo_root / "ground_truth/latents.h5") as fh:
        for name, entry in cfg["directions"].items():
            if "conditional" in entry or entry.get("source") == "generated":  # no planted truth behind either
                continue
            frame = pd.read_csv(
                demo_root / f"ground_truth/{entry['dataset']}_labels.tsv", sep="\t", keep_default_na=False
            )
            z = fh[entry["dataset"]]["z"][:].astype(np.float64)[:, None, :]
            fitted[name], _ = fit_direction(name, z, frame, LabelRule(**entry["label"]), svm)
            cosines[name] = float(fitted[name] @ truth[entry["planted"]])
    for name, entry in cfg["directions"].items():
        if "conditional" in entry:
            cond = entry["conditional"]
            normal = conditional_direction(fitted[cond["primal"]], [fitted[g] for g in cond["given"]])
            planted = [truth[cfg["directions"][n]["planted"]] for n in [cond["primal"], *cond["given"]]]
            assert max(abs(float(normal @ fitted[g])) for g in cond["given"]) < 1e-6
            cosines[name] = float(normal @ conditional_direction(planted[0], planted[1:]))
    print("cosines with the planted directions (true latents):", {k: round(v, 3) for k, v in cosines.items()})
    assert min(cosines.values()) > 0.9, cosines


def test_fit_direction_job_writes_the_normal_and_its_metrics(true_latents_file, demo_root, repo_root, tmp_path):
    """The fit_direction rule's job: a plain direction as the SVM fits it, then a conditional one from the two
    normals and the primal's metrics, both compared with the planted truth."""
    import json

    import yaml

    from facelatent.directions import job
    from facelatent.latents import read_latents

    cfg = yaml.safe_load((repo_root / "config/config.yaml").read_text())
    latents, truth = true_latents_file("multipie"), demo_root / "ground_truth/directions.npz"
    out = {}
    for name in ("smile", "pose"):
        entry = cfg["directions"][name]
        out[name] = job.fit_direction(
            name=name,
            entry=entry,
            latents=latents,
            planted=truth,
            svm=cfg["direction_fitting"],
            space="w",
            out_npy=tmp_path / f"{name}.npy",
            out_json=tmp_path / f"{name}.json",
        )
        w, frame = read_latents(latents)
        normal, _ = fit_direction(name, w, frame, LabelRule(**entry["label"]), SVMConfig(**cfg["direction_fitting"]))
        assert np.array_equal(np.load(tmp_path / f"{name}.npy"), normal)
        assert json.loads((tmp_path / f"{name}.json").read_text()) == json.loads(json.dumps(out[name]))
        assert out[name]["dataset"] == "multipie" and out[name]["planted"] == entry["planted"]
        assert out[name]["planted_cosine"] > 0.9, out[name]
    metrics = job.fit_direction(
        name="smile_given_pose",
        entry={"conditional": {"primal": "smile", "given": ["pose"]}},
        primal=tmp_path / "smile.npy",
        conditions=[tmp_path / "pose.npy"],
        primal_metrics=tmp_path / "smile.json",
        planted=truth,
        planted_of={"smile": "smile", "pose": "yaw"},
        out_npy=tmp_path / "cond.npy",
        out_json=tmp_path / "cond.json",
    )
    assert metrics["dataset"] == "multipie" and abs(metrics["cos_with_conditions"][0]) < 1e-6
    assert metrics["generator"] == out["smile"]["generator"] and metrics["planted_cosine"] > 0.9, metrics


@pytest.fixture()
def latents_and_direction(tmp_path, dcgan_path):
    """A latents file that records the DCGAN as its generator, and a unit direction saved as .npy."""
    from facelatent.store import write_table

    rng = np.random.default_rng(7)
    n = 5
    w = rng.standard_normal((n, 1, 100)).astype(np.float32)
    latents = tmp_path / "latents.h5"
    write_table(
        latents,
        "facelatent.latents",
        {
            "ids": np.array([f"img{i}" for i in range(n)]),
            "w": w,
            "loss": np.zeros(n, np.float32),
            "psnr": np.full(n, 30.0, np.float32),
            "steps": np.zeros(n, np.int32),
        },
        generator={"path": str(dcgan_path), "name": "dcgan"},
    )
    direction = tmp_path / "smile.npy"
    np.save(direction, unit(rng.standard_normal(100)).astype(np.float32))
    return latents, direction, w


def test_edit_cli_moves_every_latent_and_renders_it(latents_and_direction, tmp_path, dcgan_path):
    import cv2
    import torch

    from facelatent.cli import main
    from facelatent.generators import load_generator
    from facelatent.grids import to_uint8
    from facelatent.latents import read_latents

    latents, direction, w = latents_and_direction
    out = tmp_path / "edits"
    assert (
        main(["edit", "--latents", str(latents), "--direction", str(direction), "--strength", "2", "--out", str(out)])
        == 0
    )
    edited, _ = read_latents(out / "latents.h5")
    d = np.load(direction)
    np.testing.assert_allclose(edited - w, np.broadcast_to(2 * d, w.shape), atol=1e-5)
    assert sorted(p.name for p in out.glob("*.png")) == [f"img{i}.png" for i in range(len(w))]
    G = load_generator(dcgan_path)
    with torch.no_grad():
        want = to_uint8(G.synthesis(torch.from_numpy(edited[:1]), noise_mode="const"))[0]
    got = cv2.imread(str(out / "img0.png"))[..., ::-1]
    assert np.array_equal(got, want)  # each PNG is the render of its edited latent

    assert (
        main(
            [
                "edit",
                "--latents",
                str(latents),
                "--direction",
                str(direction),
                "--strength",
                "1.5",
                "--mode",
                "absolute",
                "--out",
                str(tmp_path / "abs"),
            ]
        )
        == 0
    )
    moved, _ = read_latents(tmp_path / "abs/latents.h5")
    np.testing.assert_allclose(moved[:, 0] @ d, 1.5, atol=1e-4)  # absolute: every latent at distance 1.5


@pytest.mark.parametrize("bad", ["wrong_dim", "zero", "not_npy", "missing"])
def test_edit_cli_names_a_bad_direction_file(latents_and_direction, tmp_path, capsys, bad):
    from facelatent.cli import main

    latents, _, _ = latents_and_direction
    direction = tmp_path / f"{bad}.npy"
    if bad == "wrong_dim":
        np.save(direction, unit(np.ones(512)))  # a StyleGAN2 (512-D) direction on 100-D latents
    elif bad == "zero":
        np.save(direction, np.zeros(100))
    elif bad == "not_npy":
        direction.write_bytes(b"\x93NUMPY truncated")
    out = tmp_path / "edits"
    assert (
        main(["edit", "--latents", str(latents), "--direction", str(direction), "--strength", "1", "--out", str(out)])
        == 1
    )
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith(f"facelatent: error: {direction}:"), err
    assert not (out / "latents.h5").exists()
