"""Peak resident memory of a projection job by resolution and batch: the figures behind project_shard's mem_mb.

Each (resolution, batch) runs in a fresh process: a random-init StyleGAN2 of the config-f widths at that
resolution (channel_base 32768, channel_max 512: FFHQ's 1024 px network and its smaller siblings), two Adam
steps of our projector on the CPU with each loss (lpips_vgg16 on the VGG16 stand-in from tests/data, the real
network's architecture; mse), and the process's peak RSS (ru_maxrss) is printed. On a GPU the activations live
in GPU memory, so host memory stays below these CPU figures.

    python bench/projection_memory.py                          # 256 and 1024 px, batch 1 and 2, both losses: ~10 min
    python bench/projection_memory.py --resolutions 64 256 --batches 1 4 8
    python bench/projection_memory.py --resolutions 0 --losses mse --batches 1 64   # 0: the demo's DCGAN
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VGG16_STANDIN = REPO / "tests" / "data" / "vgg16_standin" / "vgg16_standin_random_init.pt"


def build_generator(resolution: int):
    """The config-f StyleGAN2 at `resolution` (random init), or with resolution 0 the demo's DCGAN (fetched weights)."""
    import torch

    from facelatent.generators import load_generator
    from facelatent.generators.stylegan2 import StyleGAN2Generator

    if resolution == 0:
        return load_generator(REPO / "resources" / "models" / "dcgan_digiface64.safetensors", "cpu")
    torch.manual_seed(0)
    G = StyleGAN2Generator(
        z_dim=512,
        w_dim=512,
        img_resolution=resolution,
        mapping_kwargs=dict(num_layers=8),
        synthesis_kwargs=dict(channel_base=32768, channel_max=512, num_fp16_res=4, conv_clamp=256),
    )
    return G.eval().requires_grad_(False)


def one_run(resolution: int, batch: int, steps: int, loss: str) -> float:
    """Project `batch` random targets for `steps` steps; returns this process's peak RSS in MB."""
    import torch

    from facelatent.generators.statistics import w_statistics
    from facelatent.projection.project import project

    torch.set_num_threads(1)
    G = build_generator(resolution)
    resolution = G.img_resolution
    targets = torch.randint(0, 256, (batch, 3, resolution, resolution), dtype=torch.uint8)
    w_stats = w_statistics(G, 100, torch.device("cpu"))
    project(G, targets, num_steps=steps, loss=loss, vgg16_path=VGG16_STANDIN, w_stats=w_stats, progress=False)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 * 1.048576  # KiB -> MB


def measure(resolution: int, batch: int, steps: int, loss: str) -> float:
    """Peak RSS (MB) of `one_run` in a fresh interpreter, so earlier runs leave nothing behind."""
    code = f"import sys; sys.path.insert(0, {str(REPO)!r}); import projection_memory as m; "
    code += f"print(m.one_run({resolution}, {batch}, {steps}, {loss!r}))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=Path(__file__).parent, capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--losses", nargs="+", default=["lpips_vgg16", "mse"])
    args = parser.parse_args()
    rows = []
    print(f"{'loss':>12s} {'resolution':>10s} {'batch':>5s} {'peak MB':>8s}", flush=True)
    for loss in args.losses:
        for resolution in args.resolutions:
            for batch in args.batches:
                peak = measure(resolution, batch, args.steps, loss)
                rows.append({"loss": loss, "resolution": resolution, "batch": batch, "peak_mb": round(peak)})
                print(f"{loss:>12s} {resolution:10d} {batch:5d} {peak:8.0f}", flush=True)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
