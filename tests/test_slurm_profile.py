"""The SLURM profile, statically: its options exist, its status settings are safe, and a dry run of
a 70,000-image FFHQ config through `--profile slurm` asks for GPUs on projection jobs only.

The real cluster run is tests/slurm/run_demo_slurm.sh (root, minutes); this file needs no SLURM.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent / "slurm"))
from check_run import GPU_RULES, compare_file, metadata_record, seed_outputs  # noqa: E402
from ffhq_workdir import REPO, SNAKEMAKE, link_profile, make_ffhq_workdir, snakemake  # noqa: E402

PROFILE = REPO / "profiles" / "slurm" / "config.yaml"
OVERLAY = REPO / "tests" / "slurm" / "profile" / "config.yaml"
N_IMAGES, PER_SHARD = 70_000, 256  # 274 shards, as on a real FFHQ run
# "rule X:" (or "checkpoint X:") opens a job block in a dry run; "resources:" closes it.
JOB_BLOCK = re.compile(r"^\s*(local)?(?:rule|checkpoint) (\w+):\n(?:\s+\w+: .*\n)*?\s+resources: (.*)$", re.M)


JOB_STATS_ROW = re.compile(r"^(\w+)\s+(\d+)$", re.M)


def parse_dry_run(text: str) -> list[tuple[str, dict[str, str]]]:
    """(rule, resources) of every job block in `snakemake -n` output (local rules print as `rule` too)."""
    return [(m[2], dict(kv.split("=", 1) for kv in m[3].split(", "))) for m in JOB_BLOCK.finditer(text)]


def job_counts(text: str) -> dict[str, int]:
    """The `Job stats:` table of a dry run."""
    table = text.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    return {rule: int(n) for rule, n in JOB_STATS_ROW.findall(table)}


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory) -> str:
    """`snakemake -n --cores 2 --profile slurm` for 70k FFHQ images, after the index checkpoint ran."""
    workdir = make_ffhq_workdir(tmp_path_factory.mktemp("ffhq70k"), N_IMAGES, PER_SHARD)
    link_profile(workdir)
    proc = snakemake(workdir, "-n", "--cores", "2", "--profile", "slurm")
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def jobs(dry_run) -> list[tuple[str, dict[str, str]]]:
    return [job for job in parse_dry_run(dry_run) if job[0] != "all"]


def test_profile_is_found_by_its_bare_name(dry_run):
    assert "Using profiles slurm and workflow specific profile" in dry_run


def test_every_shard_is_in_the_dag(dry_run, jobs):
    counts = job_counts(dry_run)
    n_shards = -(-N_IMAGES // PER_SHARD)
    assert n_shards == 274
    assert [counts[r] for r in ("download_shard", "align_shard", "project_shard")] == [n_shards] * 3
    assert sum(1 for rule, _ in jobs if rule == "project_shard") == n_shards


def test_projection_jobs_ask_for_one_gpu(jobs):
    gpu_jobs = [res for rule, res in jobs if rule == "project_shard"]
    assert gpu_jobs and all(res.get("gpu") == "1" for res in gpu_jobs)
    # the site block's GPU keys reach the jobs (set-resources is not shadowed by profiles/default)
    assert all("gpu_model" in res and "slurm_partition" in res for res in gpu_jobs)


def test_cpu_jobs_ask_for_no_gpu(jobs):
    cpu_jobs = [(rule, res) for rule, res in jobs if rule not in GPU_RULES]
    assert {rule for rule, _ in cpu_jobs} >= {"download_shard", "align_shard", "merge_latents"}
    assert not [(rule, res) for rule, res in cpu_jobs if res.get("gpu", "0") != "0" or "gres" in res]


def test_site_defaults_reach_every_job(jobs):
    """Snakemake lets the workflow profile replace a whole key: a `default-resources:` in
    profiles/default would silently drop the site's partition and account."""
    missing = sorted({rule for rule, res in jobs if "slurm_account" not in res})
    assert jobs and not missing, (
        f"{missing} lack the slurm profile's default-resources; remove `default-resources:` from "
        "profiles/default/config.yaml (every rule sets mem_mb and runtime itself)"
    )


def test_profile_keys_are_options_of_installed_snakemake():
    help_text = subprocess.run([*SNAKEMAKE, "--help"], capture_output=True, text=True, check=True).stdout
    options = set(re.findall(r"(?<![\w-])--([a-z][a-z0-9-]+)", help_text))
    for path in (PROFILE, OVERLAY):
        keys = set(yaml.safe_load(path.read_text()))
        assert keys and keys <= options, f"{path}: unknown options {sorted(keys - options)}"


def test_status_checks_outlive_min_job_age():
    """squeue forgets a job MinJobAge after it ends; the plugin needs MinJobAge >= 3 x its first
    delay, and it may wait up to 180 s between polls."""
    profile = yaml.safe_load(PROFILE.read_text())
    assert profile["executor"] == "slurm" and profile["slurm-status-command"] == "squeue"
    default_min_job_age = 300  # SLURM's default
    assert 3 * profile["slurm-init-seconds-before-status-checks"] <= default_min_job_age
    script = (REPO / "tests" / "slurm" / "start_cluster.sh").read_text()
    test_min_job_age = int(re.search(r"^MinJobAge=(\d+)$", script, re.M)[1])
    overlay = yaml.safe_load(OVERLAY.read_text())
    assert 3 * overlay["slurm-init-seconds-before-status-checks"] <= test_min_job_age
    assert 180 <= test_min_job_age


def test_compare_finds_a_one_ulp_change(tmp_path):
    w = np.random.default_rng(0).standard_normal((4, 1, 8)).astype(np.float32)
    for name, data in (("a.h5", w), ("b.h5", w.copy()), ("c.h5", w.copy())):
        with h5py.File(tmp_path / name, "w") as fh:
            fh.attrs["format"] = "facelatent.latents"
            fh["w"] = data
    with h5py.File(tmp_path / "c.h5", "a") as fh:
        fh["w"][2, 0, 3] = np.nextafter(w[2, 0, 3], np.float32(np.inf))
    assert compare_file(tmp_path / "a.h5", tmp_path / "b.h5") == []
    (problem,) = compare_file(tmp_path / "a.h5", tmp_path / "c.h5")
    assert "c.h5::w: differs" in problem


def test_gpu_rules_are_read_off_every_gpu_declaration():
    """`gpu=1` and train_fr's `gpu=FR["training"]["devices"]` both ask SLURM for GPUs; check_run must expect them."""
    assert {"project_shard", "create_references", "train_fr", "evaluate_fr"} <= GPU_RULES
    assert not {"align_shard", "make_benchmark_bin", "compare_fr"} & GPU_RULES


def test_fr_loop_jobs_ask_slurm_for_their_gpus():
    """CI's cluster run builds `all_but_fr`; the FR loop's SLURM resources are checked here, on the demo's dry run."""
    cmd = [*SNAKEMAKE, "-n", "--forceall", "--cores", "2", "--profile", str(PROFILE.parent), "all"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = parse_dry_run(proc.stdout + proc.stderr)
    fr_rules = ("train_fr", "evaluate_fr", "make_benchmark_bin")
    by_rule = {rule: [res for r, res in jobs if r == rule] for rule in fr_rules}
    assert all(by_rule.values()), {rule: len(found) for rule, found in by_rule.items()}
    assert all(res.get("gpu") == "1" and "slurm_partition" in res for res in by_rule["train_fr"])
    assert all(res.get("gpu", "0") == "0" for res in by_rule["make_benchmark_bin"])
    assert all(int(res["mem_mb"]) > 0 and int(res["runtime"]) > 0 for found in by_rule.values() for res in found)


def test_seeding_copies_outputs_with_their_metadata_and_new_mtimes(tmp_path):
    ref, run = tmp_path / "ref", tmp_path / "run"
    out = "results/demo_data/MANIFEST.json"
    for path, text in ((out, "{}"), ("results/demo_data/ckplus/a.png", "png"), ("results/generator/encoder.pt", "pt")):
        (ref / path).parent.mkdir(parents=True, exist_ok=True)
        (ref / path).write_text(text)
    (ref / ".snakemake" / "metadata").mkdir(parents=True)
    (ref / ".snakemake" / "metadata" / metadata_record(out)).write_text('{"rule": "make_demo_data"}')
    old = 1_000_000_000
    os.utime(ref / out, (old, old))
    assert seed_outputs(ref, run, ["results/demo_data"]) == [out]
    assert (run / "results/demo_data/ckplus/a.png").read_text() == "png"
    assert (run / ".snakemake" / "metadata" / metadata_record(out)).is_file()
    assert (run / out).stat().st_mtime > old  # newer than the checkout's inputs, as if built there
    assert not (run / "results/generator").exists()
