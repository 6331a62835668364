"""bench/scale.py's pass rule: declared mem_mb read from Snakemake's job blocks, measured peaks from the benchmark
files, and a job over its declaration fails the rehearsal."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]

LOG = """
[Sat Dec  5 14:14:05 2026]
localcheckpoint index_dataset:
    input: manifests/wild-dataset-v2.json
    output: results/index/wild.tsv, results/index/wild.shards.tsv, results/index/wild/downloads
    log: logs/index_dataset/wild.log
    jobid: 11
    benchmark: benchmarks/index_dataset/wild.tsv
    reason: Missing output files: results/index/wild.tsv
    wildcards: dataset=wild
    resources: tmpdir=/tmp, runtime=30, mem_mb=4000, mem=4 GB, mem_mib=3815
Shell command: None

[Sat Dec  5 14:15:05 2026]
rule align_shard:
    input: results/index/wild/rows/000.tsv
    output: results/aligned/wild/000.h5
    log: logs/align_shard/wild/000.log
    jobid: 12
    benchmark: benchmarks/align_shard/wild/000.tsv
    reason: Missing output files: results/aligned/wild/000.h5
    wildcards: dataset=wild, shard=000
    resources: tmpdir=/tmp, runtime=60, mem_mb=1531, mem=2 GB, mem_mib=1460
Shell command: None
"""
HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


@pytest.fixture(scope="module")
def scale():
    spec = importlib.util.spec_from_file_location("bench_scale", REPO / "bench" / "scale.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_scale"] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


def write_benchmark(workdir: Path, rel: str, seconds: float, max_rss_mib: float) -> None:
    path = workdir / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + f"{seconds}\t0:00:01\t{max_rss_mib}\t600\t150\t160\t0\t0\t50\t1.0\n")


def test_declared_memory_is_read_from_every_kind_of_job_block(scale):
    assert scale.declared_memory(LOG) == {
        "benchmarks/index_dataset/wild.tsv": ("index_dataset", 4000),
        "benchmarks/align_shard/wild/000.tsv": ("align_shard", 1531),
    }


def test_a_job_over_its_declaration_fails_the_rehearsal(scale, tmp_path):
    write_benchmark(tmp_path, "benchmarks/index_dataset/wild.tsv", 12.0, 280.0)
    write_benchmark(tmp_path, "benchmarks/align_shard/wild/000.tsv", 30.0, 1500.0)  # 1573 MB > 1531
    jobs = scale.job_measurements(tmp_path, scale.declared_memory(LOG))
    over = scale.over_declaration(jobs)
    assert list(over["benchmark"]) == ["benchmarks/align_shard/wild/000.tsv"]
    table = scale.rule_table(jobs)
    assert table.loc["align_shard", "peak_mb"] == pytest.approx(1500 * 1.048576)
    assert "| align_shard | 1 | 1531 | 1573 |" in scale.markdown(table)
    write_benchmark(tmp_path, "benchmarks/align_shard/wild/000.tsv", 30.0, 1400.0)
    assert scale.over_declaration(scale.job_measurements(tmp_path, scale.declared_memory(LOG))).empty


def test_a_job_without_its_benchmark_file_is_named(scale, tmp_path):
    with pytest.raises(FileNotFoundError, match="index_dataset/wild.tsv"):
        scale.job_measurements(tmp_path, scale.declared_memory(LOG))


def test_manifest_entries_have_the_real_structure(scale, tmp_path):
    from facelatent.demo_data.faces import write_png
    from facelatent.demo_data.ffhq import describe_file

    write_png(tmp_path / "x.png", np.zeros((8, 8, 3), np.uint8))
    sources = {kind: [describe_file(tmp_path, "x.png")] for kind in ("image", "thumbnail", "in_the_wild")}
    sources["in_the_wild"][0]["face_landmarks"] = [[1.0, 2.0]] * 68
    entry = json.loads(json.dumps(scale.manifest_entry(1234, sources)))
    assert set(entry) == {"category", "metadata", "image", "thumbnail", "in_the_wild"}
    assert entry["in_the_wild"]["file_path"] == "in-the-wild-images/01000/01234.png"
    assert len(entry["in_the_wild"]["face_landmarks"]) == 68 and "face_quad" in entry["in_the_wild"]
