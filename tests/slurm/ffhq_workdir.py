"""A working directory that runs this repository's workflow on an FFHQ manifest of N images.

Used by tests/test_slurm_profile.py and bench/dag.py: the manifest has minimal valid entries
(no image files exist; the index keeps every row because FFHQ shards are downloaded after
indexing), the config holds only that dataset, and the `index_dataset` checkpoint is run
locally, so that a later dry run knows every shard.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def write_ffhq_manifest(path: Path, n_images: int) -> Path:
    """An `ffhq-dataset-v2.json` with `n_images` entries carrying only what the indexer reads."""

    def entry(i: int) -> str:
        name = f"images1024x1024/{i // 1000 * 1000:05d}/{i:05d}.png"
        return (
            f'"{i}":{{"category":"training","image":{{"file_url":"file:///absent/{name}",'
            f'"file_path":"{name}","file_size":1,"file_md5":"","pixel_size":[1024,1024]}}}}'
        )

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:  # streamed: a million entries would not fit a json.dumps comfortably
        fh.write("{")
        fh.write(",".join(entry(i) for i in range(n_images)))
        fh.write("}")
    return path


def ffhq_config(manifest: str, images_per_shard: int) -> dict:
    """A config with one FFHQ dataset and no stage that needs another dataset."""
    return {
        "demo": {"enabled": False},
        "datasets": {
            "ffhq": {"kind": "ffhq", "manifest": manifest, "root": "data/ffhq", "images_per_shard": images_per_shard}
        },
        "directions": {},
        "pca": {"dataset": "ffhq", "components": 0},
        "edits": {"dataset": "ffhq"},
        "au": {"dataset": None},
    }


def snakemake(workdir: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run this repository's Snakefile in `workdir` with the FFHQ config; raises on failure."""
    cmd = [*SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--configfile", "ffhq.yaml", *args]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed in {workdir}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def make_ffhq_workdir(workdir: Path, n_images: int, images_per_shard: int) -> Path:
    """Manifest + config in `workdir`, with the index checkpoint already run (locally)."""
    write_ffhq_manifest(workdir / "ffhq-dataset-v2.json", n_images)
    config = ffhq_config("ffhq-dataset-v2.json", images_per_shard)
    (workdir / "ffhq.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    snakemake(workdir, "--cores", "1", "results/index/ffhq.tsv")
    return workdir


def link_profile(workdir: Path) -> Path:
    """The documented setup line, run in `workdir`: `ln -s profiles/slurm slurm`."""
    link = workdir / "slurm"
    if not link.exists():
        link.symlink_to(REPO / "profiles" / "slurm", target_is_directory=True)
    return link
