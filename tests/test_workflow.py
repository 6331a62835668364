"""The workflow itself: lint-clean, snakefmt-clean, and a dry run that lists every implemented rule."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def run(repo_root: Path, *args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args], cwd=repo_root, capture_output=True, text=True, timeout=timeout
    )


def test_lint_is_clean(repo_root):
    proc = run(repo_root, "--lint")
    assert "Congratulations, your workflow is in a good condition!" in proc.stdout + proc.stderr, proc.stdout[-3000:]


def test_snakefmt_check(repo_root):
    snakefmt = shutil.which("snakefmt") or str(Path(sys.executable).parent / "snakefmt")
    proc = subprocess.run([snakefmt, "--check", "Snakefile", "rules/"], cwd=repo_root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_ruff_lint_and_format_are_clean(repo_root):
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    for args in (["check", "."], ["format", "--check", "."]):
        proc = subprocess.run([ruff, *args], cwd=repo_root, capture_output=True, text=True)
        assert proc.returncode == 0, f"ruff {' '.join(args)}:\n{proc.stdout}{proc.stderr}"


def test_every_rule_has_log_benchmark_and_resources(repo_root):
    """Every rule writes logs/<rule>/<wildcards>.log and benchmarks/<rule>/<wildcards>.tsv (Snakemake's max_rss,
    checked against mem_mb at scale) and declares threads, mem_mb and runtime. Snakemake refuses a log or
    benchmark whose wildcards differ from the output's, so the mirrored names are unique per job."""
    names = []
    for smk in (repo_root / "rules").glob("*.smk"):
        text = smk.read_text()
        for block in re.split(r"\n(?=(?:rule|checkpoint) )", text)[1:]:
            name = block.split(":")[0].split()[1]
            if name == "all":
                continue
            names.append(name)
            log = re.search(r'\n    log:\n        "logs/([^"]+)\.log"', block)
            assert log and log[1].startswith(f"{name}/"), f"{smk.name}: {name} has no logs/{name}/... log"
            benchmark = re.search(r'\n    benchmark:\n        "([^"]+)"', block)
            assert benchmark, f"{smk.name}: {name} has no benchmark"
            assert benchmark[1] == f"benchmarks/{log[1]}.tsv", (
                f"{name}: benchmark {benchmark[1]} does not mirror its log"
            )
            assert "\n    threads:" in block, f"{name} lacks threads"
            resources = re.search(r"\n    resources:\n((?:        .*\n)+)", block)
            assert resources and re.search(r"^        mem_mb=", resources[1], re.M), f"{name} lacks resources.mem_mb"
            assert re.search(r"^        runtime=", resources[1], re.M), f"{name} lacks resources.runtime"
    assert {"fetch_model", "index_dataset", "align_shard", "project_shard", "fit_direction", "merge_samples"} <= set(
        names
    )


def test_report_targets_in_rules(repo_root):
    text = "".join(p.read_text() for p in (repo_root / "rules").glob("*.smk"))
    for target in (
        "faces_grid.png",
        "preview.png",
        "reconstructions.png",
        "results/edits/{edit}.png",
        "metrics.json",
        "verification.json",
        "judge.png",
        "leakage.png",
    ):
        assert re.search(r"report\(\s*\n?\s*\"[^\"]*" + re.escape(target), text), target


@pytest.mark.parametrize(
    "rule",
    [
        "make_demo_data",
        "sample_grid",
        "index_dataset",
        "align_report",
        "merge_latents",
        "fit_direction",
        "visible_subspace",
        "fit_pca",
        "render_edits",
        "train_au_classifier",
        "embed_dataset",
        "create_references",
        "create_variations",
        "merge_samples",
        "plot_synthetic",
        "render_crops",
        "export_synthetics",
        "judge_synthetic",
        "check_leakage",
        "measure_variation",
        "plot_variation",
        "make_benchmark_bin",
        "train_fr",
        "evaluate_fr",
        "compare_fr",
        "editor",
    ],
)
def test_dry_run_lists_rule(repo_root, rule, tmp_path_factory):
    cache = tmp_path_factory.getbasetemp() / "dry_run.txt"
    if not cache.exists():
        proc = run(repo_root, "-n", "--forceall", "--quiet", "rules")
        assert proc.returncode == 0, proc.stderr[-3000:]
        cache.write_text(proc.stdout + proc.stderr)
    assert re.search(rf"^{rule}\s+\d+", cache.read_text(), re.M), f"{rule} missing from the dry run"


def _workdir_config(repo_root: Path, workdir: Path, photos: Path) -> Path:
    """The repo's config with one folder dataset (MTCNN landmarks) rooted at `photos`."""
    import yaml

    config = yaml.safe_load((repo_root / "config" / "config.yaml").read_text())
    config["datasets"] = {"photos": {"kind": "folder", "root": str(photos), "images_per_shard": 4}}
    # nothing that names the demo's other datasets (the config check refuses a direction on an unknown one)
    config.update(
        directions={},
        pca={"components": 0, "dataset": ""},
        edits={"dataset": ""},
        au={**config["au"], "dataset": None},
        embedding={**config["embedding"], "datasets": []},
        synthetic={"runs": {}},
        fr={},
    )
    path = workdir / "config" / "config.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(config))
    return path


def test_align_job_reads_the_declared_mtcnn_under_another_directory(repo_root, tmp_path):
    """`snakemake -s <repo>/Snakefile --directory W`: the align job reads W's declared MTCNN input,
    not whatever `resources/` the package would find (here: none, FACELATENT_RESOURCES points nowhere)."""
    import os

    from conftest import fetched_model

    workdir, photos = tmp_path / "work", tmp_path / "photos"
    photos.mkdir()
    shutil.copy(repo_root / "resources" / "demo_photos" / "astronaut.png", photos / "astronaut.png")
    (workdir / "resources" / "models").mkdir(parents=True)
    shutil.copy(fetched_model("mtcnn"), workdir / "resources" / "models" / "mtcnn.safetensors")
    config = _workdir_config(repo_root, workdir, photos)
    env = {**os.environ, "FACELATENT_RESOURCES": str(tmp_path / "nowhere"), "PYTHONPATH": str(repo_root)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            str(repo_root / "Snakefile"),
            "--directory",
            str(workdir),
            "--configfile",
            str(config),
            "--cores",
            "1",
            "--quiet",
            "rules",
            "--",
            "results/aligned/photos/000.h5",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    logs = "".join(p.read_text() for p in (workdir / "logs").rglob("*.log"))
    assert proc.returncode == 0, (proc.stderr[-3000:], logs[-3000:])
    from facelatent.store import read_table

    assert list(read_table(workdir / "results/aligned/photos/000.h5", "facelatent.aligned", ["ids"])["ids"])


def test_embedding_runs_one_job_per_aligned_shard_with_memory_from_batch_and_size(tmp_path):
    """After the index checkpoint, a dry run of a dataset's verification metrics plans one embed_shard job per
    aligned shard and one embed_dataset merge; embed_shard's mem_mb grows with batch x resolution^2 and
    embed_dataset's with the dataset's size (shards x images_per_shard), as rules/common.smk declares."""
    import math

    import yaml

    sys.path.insert(0, str(Path(__file__).parent / "slurm"))
    from ffhq_workdir import ffhq_config, snakemake, write_ffhq_manifest

    n_images, per_shard, resolution, batch = 1000, 100, 1024, 8
    write_ffhq_manifest(tmp_path / "ffhq-dataset-v2.json", n_images)
    config = ffhq_config("ffhq-dataset-v2.json", per_shard)
    config["generator"] = {"kind": "stylegan2", "checkpoint": "ffhq.pkl", "resolution": resolution, "w_dim": 512}
    config["embedding"] = {"datasets": ["ffhq"], "crop": "ffhq_to_arcface", "batch_size": batch}
    (tmp_path / "ffhq.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    snakemake(tmp_path, "--cores", "1", "results/index/ffhq.tsv")
    text = snakemake(tmp_path, "-n", "results/embeddings/ffhq.verification.json").stdout

    jobs = re.findall(r"^\s*rule (\w+):\n(?:\s+\w+: .*\n)*?\s+resources: (.*)$", text, re.M)
    mem = {rule: {int(re.search(r"\bmem_mb=(\d+)", res)[1]) for r, res in jobs if r == rule} for rule, _ in jobs}
    counts = {rule: sum(1 for r, _ in jobs if r == rule) for rule, _ in jobs}
    n_shards = n_images // per_shard
    assert counts["embed_shard"] == counts["align_shard"] == n_shards and counts["embed_dataset"] == 1
    # common.smk: EMBED_BASE_MB + batch x 3 x R^2 x EMBED_BYTES_PER_VALUE; EMBED_MERGE_BASE_MB + N x 8 KiB
    assert mem["embed_shard"] == {2000 + math.ceil(batch * 3 * resolution**2 * 16 / 2**20)}
    assert mem["embed_dataset"] == {2000 + math.ceil(n_images * 8192 / 2**20)}
    assert all(f"results/embeddings/ffhq/{s:03d}.h5" in text for s in range(n_shards))


def test_projection_and_alignment_memory_follow_generator_resolution_loss_and_micro_batch(tmp_path):
    """project_shard's mem_mb comes from the measured table (generator family, resolution, loss) times the micro-batch
    the job uses on the CPU (1 from 256 px up); align_shard's from the shard's crops at the generator's resolution."""
    import math

    import yaml

    sys.path.insert(0, str(Path(__file__).parent / "slurm"))
    from ffhq_workdir import ffhq_config, snakemake, write_ffhq_manifest

    write_ffhq_manifest(tmp_path / "ffhq-dataset-v2.json", 40)
    config = ffhq_config("ffhq-dataset-v2.json", 20)
    config["generator"] = {"kind": "stylegan2", "checkpoint": "ffhq.pkl", "resolution": 1024, "w_dim": 512}
    (tmp_path / "ffhq.pkl").write_bytes(b"")  # a dry run only needs the file to exist
    config["projection"] = {"loss": {"lpips_vgg16": 1.0, "mse": 0.1}, "vgg16_path": "vgg16.pt", "batch_size": 8}
    config["datasets"]["ffhq"]["projection"] = {}
    config["datasets"]["small"] = {**config["datasets"]["ffhq"], "projection": {"schedule": {"micro_batch": 4}}}
    (tmp_path / "vgg16.pt").write_bytes(b"")
    (tmp_path / "ffhq.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    snakemake(tmp_path, "--cores", "1", "results/index/ffhq.tsv", "results/index/small.tsv")
    text = snakemake(tmp_path, "-n", "results/latents/ffhq.h5", "results/latents/small.h5").stdout

    jobs = re.findall(r"^\s*rule (\w+):\n(?:\s+\w+: .*\n)*?\s+resources: (.*)$", text, re.M)
    found = re.findall(
        r"^\s*rule (\w+):\n(?:\s+\w+: .*\n)*?\s+wildcards: dataset=(\w+).*\n\s+resources: (.*)$", text, re.M
    )
    mem = {(rule, ds): {int(re.search(r"\bmem_mb=(\d+)", res)[1])} for rule, ds, res in found}
    assert jobs and mem
    # rules/common.smk PROJECT_SHARD_MB["stylegan"]["features"][1024] = (1141, 1671), margin 1.25, 300 MB for the job
    assert mem[("project_shard", "ffhq")] == {math.ceil(1.25 * (300 + 1141 + 1 * 1671))}
    assert mem[("project_shard", "small")] == {math.ceil(1.25 * (300 + 1141 + 4 * 1671))}
    # ALIGN_BASE_MB + 2.5 copies of 20 crops of 1024 x 1024 x 3 bytes
    assert mem[("align_shard", "ffhq")] == {1500 + math.ceil(2.5 * 20 * 3 * 1024**2 / 1e6)}


def test_synthetic_production_run_plans_crops_per_part_with_memory_from_its_size(tmp_path):
    """A 10,000 x 64 run (650,000 faces) in a dry run: one render_crops job per variation part, one merge_crops,
    and merge_samples / plot_synthetic / render_crops memory from the config's sizes, as rules/common.smk says."""
    import math

    import yaml

    sys.path.insert(0, str(Path(__file__).parent / "slurm"))
    from ffhq_workdir import ffhq_config, snakemake, write_ffhq_manifest

    write_ffhq_manifest(tmp_path / "ffhq-dataset-v2.json", 10)
    (tmp_path / "ffhq.pkl").write_bytes(b"")
    config = ffhq_config("ffhq-dataset-v2.json", 10)
    config["generator"] = {"kind": "stylegan2", "checkpoint": "ffhq.pkl", "resolution": 1024, "w_dim": 512}
    config["synthetic"] = {
        "runs": {
            "big": {
                "num_identities": 10000,
                "variations": {"identities_per_part": 1000, "dispersion": {"num_augmentations": 64}},
            }
        }
    }
    (tmp_path / "ffhq.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    text = snakemake(tmp_path, "-n", "results/synthetic/big/verification.json").stdout

    jobs = re.findall(r"^\s*rule (\w+):\n(?:\s+\w+: .*\n)*?\s+resources: (.*)$", text, re.M)
    mem = {rule: {int(re.search(r"\bmem_mb=(\d+)", res)[1]) for r, res in jobs if r == rule} for rule, _ in jobs}
    counts = {rule: sum(1 for r, _ in jobs if r == rule) for rule, _ in jobs}
    assert counts["render_crops"] == counts["create_variations"] == 10 and counts["merge_crops"] == 1
    faces = 10000 * 65
    # common.smk: MERGE_SAMPLES_BASE_MB + faces x 1 KiB; PLOT_BASE_MB + faces x (512 x 4 x 3 + 1024) B (exact
    # impostors); CROPS_BASE_MB + part faces x (w_dim x 4 x 3 + 512) B
    assert mem["merge_samples"] == {1000 + math.ceil(faces * 1024 / 2**20)}
    assert mem["plot_synthetic"] == {800 + math.ceil(faces * (512 * 12 + 1024) / 2**20)}
    assert mem["render_crops"] == {4000 + math.ceil(65000 * (512 * 12 + 512) / 2**20)}
    assert re.search(r"crops: .*results/synthetic/big/crops/009\b", text) or "results/synthetic/big/crops/009" in text


GENERATED_RULES = {
    "sample_latents": 2,
    "predict_attributes": 2,
    "merge_attributes": 1,
    "plot_attributes": 1,
    "fit_direction": 9,
    "evaluate_direction": 9,
    "compare_directions": 1,
}


def test_dry_run_lists_the_generated_route(repo_root):
    """The demo's three generated directions: one sampling and one scoring job per shard, every direction (both
    routes, the conditional one too) evaluated, one comparison."""
    proc = run(repo_root, "-n", "--forceall", "--quiet", "rules")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    for rule, count in GENERATED_RULES.items():
        assert re.search(rf"^{rule}\s+{count}$", out, re.M), f"{rule} x {count} missing:\n{out[-3000:]}"


def test_report_captions_name_only_their_rules_params_and_wildcards(repo_root):
    """A caption's `snakemake.params.X` / `snakemake.wildcards.Y` must exist on its rule: Snakemake renders captions
    only in `snakemake --report` (the README's first command), where a missing name stops the whole report."""
    constants = dict(re.findall(r'^([A-Z_]+) = "([^"]+)"', (repo_root / "rules" / "common.smk").read_text(), re.M))
    checked = 0
    for smk in sorted((repo_root / "rules").glob("*.smk")):
        for name, body in re.findall(r"^(?:rule|checkpoint) (\w+):\n((?:[ \t]+.*\n|\n)+)", smk.read_text(), re.M):
            block = dict(re.findall(r"^    (\w+):\n((?:        .*\n)+)", body, re.M))
            output = block.get("output", "")
            paths = re.findall(r'"([^"]*)"', output) + [
                constants.get(c, "") for c in re.findall(r"\b[A-Z_]{3,}\b", output)
            ]
            wildcards = set(re.findall(r"\{(\w+)", " ".join(paths)))
            params = set(re.findall(r"^        (\w+)=", block.get("params", ""), re.M))
            for caption in re.findall(r'caption="\.\./resources/report/([\w.]+)"', output):
                text = (repo_root / "resources" / "report" / caption).read_text()
                for kind, key in re.findall(r"snakemake\.(params|wildcards)\.(\w+)", text):
                    assert key in (params if kind == "params" else wildcards), f"{caption} ({name}): no {kind}.{key}"
                    checked += 1
    assert checked >= 20  # the scan found the captions' names


def test_conditional_direction_over_generated_directions(repo_root, tmp_path):
    """A conditional direction may condition a generated-route direction on another (mouth opening with yaw
    projected out): the config check accepts it and its fit reads both generated normals."""
    import yaml

    path = tmp_path / "conditional.yaml"
    conditional = {"conditional": {"primal": "gen_mouth_opening", "given": ["gen_yaw"]}}
    path.write_text(yaml.safe_dump({"directions": {"mouth_given_yaw": conditional}}))
    target = "results/directions/mouth_given_yaw.npy"
    proc = run(repo_root, "-n", "--forceall", target, "--configfile", str(path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    block = (proc.stdout + proc.stderr).split(f"output: {target}")[0].rsplit("rule fit_direction:", 1)[1]
    assert "results/directions/gen_mouth_opening.npy" in block and "results/directions/gen_yaw.npy" in block, block
