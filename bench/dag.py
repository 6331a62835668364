"""How long Snakemake takes to build this workflow's DAG for FFHQ at 70,000 and 1,000,000 images.

    python bench/dag.py                              # 70k and 1M images, 256 per shard
    python bench/dag.py --sizes 70000 --images-per-shard 1000

For each size, in a scratch directory: a manifest with minimal entries, then the index
checkpoint run locally ("index"; its wall time includes writing the manifest), then three
timings of Snakemake itself:
  dry run    `snakemake -n --profile slurm`: what the submit host does before the first sbatch
  one job    `snakemake -n --target-jobs project_shard:dataset=ffhq,shard=000`: about what
             every SLURM job pays before its rule starts (parse + a one-job DAG), twice per job
  parse      `snakemake --list-rules`: the Snakefile alone, the floor of both
Each figure is "wall / CPU" seconds, the best of --repeats runs: on a shared machine the wall
time follows the load, the CPU time (user + system of Snakemake's process tree) does not.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "slurm"))
from ffhq_workdir import link_profile, make_ffhq_workdir, snakemake  # noqa: E402


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall, CPU) seconds of one call that runs subprocesses."""
    wall, cpu = time.perf_counter(), children_cpu_seconds()
    fn()
    return time.perf_counter() - wall, children_cpu_seconds() - cpu


def best_seconds(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Least wall and least CPU seconds over `repeats` calls (the least disturbed by other load)."""
    runs = [timed(fn) for _ in range(repeats)]
    return min(w for w, _ in runs), min(c for _, c in runs)


def count_jobs(dry_run_output: str) -> int:
    """The `total` row of a dry run's job table."""
    for line in dry_run_output.splitlines():
        if line.startswith("total"):
            return int(line.split()[1])
    raise ValueError("no job table in the dry run output")


def bench_size(root: Path, n_images: int, per_shard: int, repeats: int) -> dict:
    workdir = root / f"ffhq{n_images}"
    workdir.mkdir()
    index_s = timed(lambda: make_ffhq_workdir(workdir, n_images, per_shard))
    link_profile(workdir)
    dry = ["-n", "--cores", "2", "--profile", "slurm", "--quiet", "rules"]
    jobs = count_jobs(snakemake(workdir, *dry).stdout)
    one = [
        "-n",
        "--cores",
        "2",
        "--target-jobs",
        "project_shard:dataset=ffhq,shard=000",
        "--allowed-rules",
        "project_shard",
        "--quiet",
        "rules",
    ]
    return {
        "images": n_images,
        "shards": -(-n_images // per_shard),
        "jobs": jobs,
        "index_s": index_s,
        "dry_run_s": best_seconds(lambda: snakemake(workdir, *dry), repeats),
        "one_job_s": best_seconds(lambda: snakemake(workdir, *one), repeats),
        "parse_s": best_seconds(lambda: snakemake(workdir, "--list-rules"), repeats),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[70_000, 1_000_000])
    parser.add_argument("--images-per-shard", type=int, default=256, help="the schema's default")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    columns = ("index_s", "dry_run_s", "one_job_s", "parse_s")
    print(
        f"{'images':>9} {'shards':>6} {'jobs':>6}"
        + "".join(f"{c[:-2].replace('_', ' '):>15}" for c in columns)
        + "   (wall / CPU s)"
    )
    with tempfile.TemporaryDirectory(prefix="facelatent-dag-") as tmp:
        for n in args.sizes:
            r = bench_size(Path(tmp), n, args.images_per_shard, args.repeats)
            print(
                f"{r['images']:>9} {r['shards']:>6} {r['jobs']:>6}"
                + "".join(f"{r[c][0]:>8.1f} /{r[c][1]:>5.1f}" for c in columns),
                flush=True,
            )


if __name__ == "__main__":
    main()
