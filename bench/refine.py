"""Levenberg-Marquardt refinement against longer Adam runs: reconstruction PSNR per second of projection.

    python bench/refine.py --threads 2 --images 32       # the demo DCGAN (fetched by `facelatent fetch-models`)

Targets are renders of random latents of the demo DCGAN (their true latents are known, so the table also
gives the latent error). Rows: the NVlabs schedule with `--steps` and with 10x as many steps (the
reference), and `--steps` of Adam followed by `--iterations` of refinement (no warp: the targets are
exact renders). `ratio` = the reference's time / the row's time, next to each row's median PSNR.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from facelatent.generators import load_generator
from facelatent.generators.statistics import w_statistics
from facelatent.projection.project import project, psnr, render
from facelatent.projection.refine import RefineConfig, refine

DCGAN = Path(__file__).resolve().parent.parent / "resources" / "models" / "dcgan_digiface64.safetensors"


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--iterations", type=int, default=8)
    parser.add_argument("--cg-iterations", type=int, default=14)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    G = load_generator(DCGAN)
    for p in G.parameters():
        p.requires_grad_(False)
    z = torch.from_numpy(np.random.RandomState(7).randn(args.images, G.z_dim)).float()
    targets = render(G, G.mapping(z))
    stats = w_statistics(G, 2000, torch.device("cpu"))

    def adam(steps: int):
        return project(G, targets, num_steps=steps, loss="mse", progress=False, w_stats=stats).w

    rows = {}
    w_ref, t_ref = timed(lambda: adam(10 * args.steps))
    rows[f"adam {10 * args.steps} steps (reference)"] = (w_ref, t_ref)
    w_short, t_short = timed(lambda: adam(args.steps))
    rows[f"adam {args.steps} steps"] = (w_short, t_short)
    cfg = RefineConfig(iterations=args.iterations, cg_iterations=args.cg_iterations, fit_alignment=False)
    refined, t_refine = timed(lambda: refine(G, targets, w_short[:, :1], stats, cfg, progress=False).w)
    rows[f"adam {args.steps} + LM {args.iterations} x CG {args.cg_iterations}"] = (refined, t_short + t_refine)

    print(f"{args.images} renders of random DCGAN latents, {args.threads} threads")
    print(f"{'run':36s} {'s':>7s} {'ratio':>6s} {'PSNR med':>9s} {'|w - z| med':>12s}")
    report = {}
    for name, (w, seconds) in rows.items():
        quality = float(psnr(render(G, w), targets).median())
        error = float((w[:, 0] - z).norm(dim=1).median())
        print(f"{name:36s} {seconds:7.1f} {t_ref / seconds:6.2f} {quality:9.2f} {error:12.2f}")
        report[name] = {
            "seconds": round(seconds, 2),
            "ratio": round(t_ref / seconds, 2),
            "psnr_median": round(quality, 2),
            "latent_error_median": round(error, 2),
        }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
