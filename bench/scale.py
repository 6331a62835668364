"""Scale rehearsal: the real workflow, rule for rule, at production cardinalities with stand-in compute.

Production sizes (issue 22): an FFHQ manifest of 70,000 entries in the real JSON structure (metadata, 1024 px
image, thumbnail and in-the-wild sections with 68 landmarks each), a second FFHQ-format dataset of 100,000
in-the-wild photos aligned from their manifest landmarks and embedded, and a synthetic run of 10,000
identities x 64 variations. Every file is real in format and count: `file://` URLs to small pictures (demo
DCGAN faces pasted into photos, with the 68 points where the face is), a tiny random-weight DCGAN with the
production latent width (512), and a tiny random-weight IResNet with the production embedding width (512), so
that per-sample compute is negligible but every array a job holds has its production shape.

It runs `snakemake --cores N` in a scratch folder, reads every job's `max_rss` from its benchmark file and its
declared `mem_mb` from Snakemake's log, prints one row per rule (jobs, declared mem_mb, measured peak, wall
time) and exits 1 when any job's peak exceeds its declaration.

    python bench/scale.py                  # full size: about an hour on 2 cores, ~25 GB of scratch files
    python bench/scale.py --scale 0.1      # one tenth of every count (.ci/run: 0.05, to fit its 90 minutes)
    python bench/scale.py --scale 0.01 --keep --workdir /tmp/scale   # a quick look, files kept
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from facelatent.align.template import template_landmarks_for_box  # noqa: E402
from facelatent.checkpoints import Checkpoint, save_safetensors_checkpoint  # noqa: E402
from facelatent.demo_data.faces import Box, paste_face, render_faces, smooth_background, write_png  # noqa: E402
from facelatent.demo_data.ffhq import KIND_DIRS, describe_file, entry_metadata, file_path  # noqa: E402
from facelatent.generators import load_generator  # noqa: E402
from facelatent.generators.dcgan import DCGANGenerator  # noqa: E402

# production cardinalities; --scale multiplies every count
FFHQ_IMAGES = 70_000
WILD_PHOTOS = 100_000
IDENTITIES = 10_000
VARIATIONS = 64
LATENT_WIDTH = 512  # StyleGAN's w_dim: sample files, latents and directions take their production size
EMBEDDING_WIDTH = 512  # ArcFace IResNet's embedding width
SOURCE_FACES = 32  # distinct pictures behind the manifests' file:// URLs


@dataclass(frozen=True)
class Sizes:
    ffhq: int
    wild: int
    identities: int
    variations: int
    images_per_shard: int
    identities_per_part: int

    @classmethod
    def at_scale(cls, scale: float, images_per_shard: int, identities_per_part: int) -> Sizes:
        def count(n: int) -> int:
            return max(2, round(n * scale))

        return cls(
            count(FFHQ_IMAGES),
            count(WILD_PHOTOS),
            count(IDENTITIES),
            VARIATIONS,
            images_per_shard,
            identities_per_part,
        )


# ---- stand-in models ---------------------------------------------------------------------------------------


def write_tiny_generator(path: Path, seed: int = 0) -> Path:
    """A random-weight DCGAN at 64 px with 2 base channels and a 512-d latent (StyleGAN's w_dim)."""
    torch.manual_seed(seed)
    kwargs = {"z_dim": LATENT_WIDTH, "ngf": 2, "img_resolution": 64}
    save_safetensors_checkpoint(path, Checkpoint("dcgan", kwargs, DCGANGenerator(**kwargs).state_dict()))
    return path


def write_tiny_embedder(path: Path, seed: int = 0) -> Path:
    """An IResNet-4 with narrow stages at 16 px and the production 512-d embedding (~0.1 ms per face)."""
    from facelatent.embeddings.iresnet import IResNetEmbedder

    torch.manual_seed(seed)
    kwargs = {"layers": [1, 1, 1, 1], "num_features": EMBEDDING_WIDTH, "image_size": 16, "widths": [8, 8, 16, 16, 32]}
    save_safetensors_checkpoint(path, Checkpoint("iresnet", kwargs, IResNetEmbedder(**kwargs).state_dict()))
    return path


# ---- stand-in data -----------------------------------------------------------------------------------------


def demo_faces(count: int) -> np.ndarray:
    """`count` faces [N,64,64,3] uint8 from the fetched demo DCGAN (real-looking pictures for the previews)."""
    from facelatent.fetch import model_filename
    from facelatent.paths import models_dir

    G = load_generator(models_dir() / model_filename("dcgan_digiface64"), "cpu")
    z = 0.7 * np.random.default_rng(0).standard_normal((count, G.z_dim))  # truncation 0.7 (the DCGAN's w_avg is 0)
    return render_faces(G, z)


def in_the_wild_photo(face: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A 240x180 photo with the face pasted at a random place and scale, and its 68 landmarks there."""
    side = int(rng.integers(72, 120))
    box = Box(int(rng.integers(0, 240 - side)), int(rng.integers(0, 180 - side)), side)
    photo = paste_face(smooth_background(rng, 180, 240, 3), face, box)
    return photo, template_landmarks_for_box(box.x, box.y, side, side)


def write_sources(folder: Path) -> dict[str, list[dict]]:
    """The pictures behind the manifests: per kind the manifest fields of each file (+ landmarks in the wild)."""
    faces = demo_faces(SOURCE_FACES)
    rng = np.random.default_rng(1)
    sources: dict[str, list[dict]] = {kind: [] for kind in KIND_DIRS}
    for k, face in enumerate(faces):
        photo, landmarks = in_the_wild_photo(face, rng)
        for kind, image in (("image", face), ("thumbnail", face), ("in_the_wild", photo)):
            rel = file_path(kind, k)
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            write_png(folder / rel, image)
            sources[kind].append(describe_file(folder, rel))
        sources["in_the_wild"][-1]["face_landmarks"] = np.round(landmarks, 2).tolist()
    return sources


def manifest_entry(i: int, sources: dict[str, list[dict]]) -> dict:
    """One entry of `ffhq-dataset-v2.json` in the real structure (DATASETS.md §3.2): entry i's files are the
    sources' files (their URL, size and checksums) under entry i's own paths."""

    def section(kind: str) -> dict:
        return {**sources[kind][i % len(sources[kind])], "file_path": file_path(kind, i)}

    wild = section("in_the_wild")
    return {
        "category": "training" if i % 7 else "validation",
        "metadata": entry_metadata(i),
        "image": {**section("image"), "face_landmarks": wild["face_landmarks"]},
        "thumbnail": section("thumbnail"),
        "in_the_wild": {**wild, "face_rect": [0, 0, 240, 180], "face_quad": [[0, 0]] * 4},
    }


def write_manifest(path: Path, n: int, sources: dict[str, list[dict]]) -> Path:
    """`n` entries keyed by their index, written entry by entry (70k entries are ~300 MB, as the real file)."""
    with open(path, "w") as fh:
        fh.write("{")
        for i in range(n):
            fh.write(("" if i == 0 else ", ") + f'"{i}": ' + json.dumps(manifest_entry(i, sources)))
        fh.write("}")
    return path


# ---- the workflow ------------------------------------------------------------------------------------------


def rehearsal_config(sizes: Sizes, generator: Path, embedder: Path) -> dict:
    """Every stage that scales with the data, with the least compute per sample that still runs its code."""
    return {
        "run_name": "scale rehearsal",
        "generator": {
            "kind": "dcgan",
            "checkpoint": str(generator),
            "resolution": 64,
            "w_dim": LATENT_WIDTH,
            "truncation_psi": 1.0,
            "noise_mode": "const",
        },
        "demo": {"enabled": False},
        "datasets": {
            "ffhq": {
                "kind": "ffhq",
                "manifest": "manifests/ffhq-dataset-v2.json",
                "root": "data/ffhq",
                "images_per_shard": sizes.images_per_shard,
            },
            "wild": {
                "kind": "ffhq",
                "manifest": "manifests/wild-dataset-v2.json",
                "root": "data/wild",
                "images_per_shard": sizes.images_per_shard,
                "options": {"kind": "in_the_wild"},
                "project": False,
            },
        },
        "align": {"method": "ffhq"},
        "projection": {
            "loss": "mse",
            "steps": 2,
            "batch_size": 250,
            "checkpoint_every": 1,
            "schedule": {"w_avg_samples": 100},
            "refine": {"iterations": 0},
        },
        "directions": {},
        "visible_subspace": {"energy": 1.0},
        "pca": {"dataset": "ffhq", "components": 3},
        "edits": {"dataset": "ffhq", "n_sources": 4},
        "au": {"dataset": None},
        "embedding": {"model": str(embedder), "crop": "resize", "datasets": ["ffhq", "wild"], "batch_size": 250},
        "metrics": {"impostor": "sample"},
        "synthetic": {
            "runs": {
                "scale": {
                    "num_identities": sizes.identities,
                    "embedder": str(embedder),
                    "crop": "resize",
                    "batch_size": 500,
                    # the stand-in generator renders no faces: the MTCNN face gate would redraw them forever
                    "references": {
                        "algorithm": "langevin",
                        "langevin": {"iterations": 2, "checkpoint_every": 1},
                        "face_gate": {"enabled": False},
                    },
                    "variations": {
                        "algorithm": "dispersion",
                        "identities_per_part": sizes.identities_per_part,
                        "dispersion": {"iterations": 1, "num_augmentations": sizes.variations},
                    },
                    # dlib (0.16 s per crop) and MTCNN (17 ms) are real models on every crop: a sample of identities
                    "judge": {"max_identities": 4},
                    "variation": {"identities_per_part": 2},
                }
            }
        },
    }


def prepare(workdir: Path, sizes: Sizes) -> None:
    """Models, pictures, both manifests and the config in `workdir`."""
    (workdir / "models").mkdir(parents=True, exist_ok=True)
    (workdir / "resources").mkdir(exist_ok=True)
    for fetched in ("models", "demo_photos"):  # fetched already (README): the rehearsal measures, not downloads
        link = workdir / "resources" / fetched
        if not link.exists():
            link.symlink_to(REPO / "resources" / fetched, target_is_directory=True)
    (workdir / "manifests").mkdir(exist_ok=True)
    generator = write_tiny_generator(workdir / "models" / "tiny_dcgan512.safetensors")
    embedder = write_tiny_embedder(workdir / "models" / "tiny_iresnet512.safetensors")
    sources = write_sources(workdir / "sources")
    write_manifest(workdir / "manifests" / "ffhq-dataset-v2.json", sizes.ffhq, sources)
    write_manifest(workdir / "manifests" / "wild-dataset-v2.json", sizes.wild, sources)
    config = rehearsal_config(sizes, generator.resolve(), embedder.resolve())
    (workdir / "scale.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def run_workflow(workdir: Path, cores: int, timeout: float) -> Path:
    """`snakemake --cores N` on the rehearsal config; returns the log Snakemake wrote (raises on failure)."""
    log = workdir / "snakemake.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--configfile", "scale.yaml"]
    cmd += ["--cores", str(cores), "--keep-going", "--printshellcmds"]
    cmd += ["--omit-from", "judge_synthetic"]  # dlib finds no face in the stand-in generator's renders
    with open(log, "w") as fh:
        proc = subprocess.run(cmd, cwd=workdir, env=env, stdout=fh, stderr=subprocess.STDOUT, timeout=timeout)
    if proc.returncode != 0:
        tail = log.read_text().splitlines()[-40:]
        raise RuntimeError("the rehearsal's snakemake run failed:\n" + "\n".join(tail))
    return log


# ---- the table ---------------------------------------------------------------------------------------------

_JOB_START = re.compile(r"^(?:local)?(?:rule|checkpoint) (\w+):$")


def declared_memory(log_text: str) -> dict[str, tuple[str, int]]:
    """{benchmark file: (rule, declared mem_mb)} from the job blocks Snakemake prints before running each job."""
    out, rule, benchmark = {}, None, None
    for line in log_text.splitlines():
        line = line.strip()
        start = _JOB_START.match(line)
        if start:
            rule, benchmark = start.group(1), None
        elif line.startswith("benchmark:"):
            benchmark = line.split(":", 1)[1].strip()
        elif line.startswith("resources:") and rule and benchmark:
            found = re.search(r"\bmem_mb=(\d+)", line)
            if found:
                out[benchmark] = (rule, int(found.group(1)))
    return out


def job_measurements(workdir: Path, declared: dict[str, tuple[str, int]]) -> pd.DataFrame:
    """One row per job: rule, benchmark file, declared mem_mb, measured max_rss (MB) and wall seconds."""
    rows = []
    for benchmark, (rule, mem_mb) in declared.items():
        path = workdir / benchmark
        if not path.is_file():
            raise FileNotFoundError(f"{path}: the job ran but its benchmark file is missing")
        bench = pd.read_csv(path, sep="\t")
        rss_mib = pd.to_numeric(bench["max_rss"], errors="coerce").max()
        rows.append(
            {
                "rule": rule,
                "benchmark": benchmark,
                "mem_mb": mem_mb,
                "peak_mb": float(rss_mib) * 1.048576 if np.isfinite(rss_mib) else math.nan,  # MiB -> MB
                "wall_s": float(bench["s"].max()),
            }
        )
    return pd.DataFrame(rows, columns=["rule", "benchmark", "mem_mb", "peak_mb", "wall_s"])


def rule_table(jobs: pd.DataFrame) -> pd.DataFrame:
    """Per rule: jobs, declared mem_mb (the largest), measured peak (the largest), wall time (sum and longest)."""
    table = jobs.groupby("rule").agg(
        jobs=("benchmark", "size"),
        mem_mb=("mem_mb", "max"),
        peak_mb=("peak_mb", "max"),
        wall_s=("wall_s", "sum"),
        longest_s=("wall_s", "max"),
    )
    table["use"] = table["peak_mb"] / table["mem_mb"]
    return table.sort_values("peak_mb", ascending=False)


def over_declaration(jobs: pd.DataFrame) -> pd.DataFrame:
    return jobs[jobs["peak_mb"] > jobs["mem_mb"]]


def markdown(table: pd.DataFrame) -> str:
    lines = [
        "| rule | jobs | declared mem_mb | measured peak MB | peak / declared | wall s (all jobs) | longest job s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for rule, row in table.iterrows():
        lines.append(
            f"| {rule} | {int(row.jobs)} | {int(row.mem_mb)} | {row.peak_mb:.0f} | {row.use:.0%} | {row.wall_s:.0f} |"
            f" {row.longest_s:.1f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the production counts (default 1)")
    parser.add_argument("--images-per-shard", type=int, default=1000)
    parser.add_argument("--identities-per-part", type=int, default=1000)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a new temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument("--timeout", type=float, default=4 * 3600)
    args = parser.parse_args()

    sizes = Sizes.at_scale(args.scale, args.images_per_shard, args.identities_per_part)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="facelatent-scale-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"scale rehearsal x{args.scale:g} in {workdir}: {sizes}", flush=True)
    try:
        start = time.perf_counter()
        prepare(workdir, sizes)
        prepared = time.perf_counter() - start
        log = run_workflow(workdir, args.cores, args.timeout)
        total = time.perf_counter() - start
        jobs = job_measurements(workdir, declared_memory(log.read_text()))
        print(markdown(rule_table(jobs)))
        print(f"{len(jobs)} jobs; inputs written in {prepared:.0f} s; total wall time {total / 60:.1f} min")
        over = over_declaration(jobs)
        for _, job in over.iterrows():
            print(f"OVER: {job.benchmark}: peak {job.peak_mb:.0f} MB > mem_mb={job.mem_mb} ({job.rule})")
        return 1 if len(over) else 0
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
