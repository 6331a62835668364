"""Encoder start against Adam from w_avg, both followed by the same refinement: seconds per image and fit.

    python bench/encoder_start.py --threads 2 --images 64     # the demo DCGAN (`facelatent fetch-models`)

Targets are renders of random DCGAN latents (so the latent error is known), each moved by a random
similarity warp (std 0.02, as MTCNN framing moves the demo's crops) and half of them made grey, as CK+
frames are. Rows: the demo's former Multi-PIE setting, Adam `--steps` from w_avg then the refinement
(the reference); the encoder's guess then the same refinement. `ratio` = the reference's seconds per image
/ the row's. The encoder's training is a one-off per generator and is reported separately, with the number
of images after which it has paid for itself.
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
from facelatent.projection.encoder import ConfiguredEncoder, EncoderConfig, train_encoder
from facelatent.projection.losses import LUMA
from facelatent.projection.project import project
from facelatent.projection.refine import RefineConfig, refine, similarity_warp

DCGAN = Path(__file__).resolve().parent.parent / "resources" / "models" / "dcgan_digiface64.safetensors"


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def crop_like_targets(G, z: torch.Tensor, seed: int) -> torch.Tensor:
    """uint8 renders of z, warped a little and greyed for every other image."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        images = similarity_warp(G.synthesis(G.mapping(z)).clamp(-1, 1), torch.randn(len(z), 4, generator=g) * 0.02)
        luma = (images * torch.tensor(LUMA).view(1, 3, 1, 1)).sum(1, keepdim=True).expand_as(images)
        images = torch.where((torch.arange(len(z)) % 2 == 1)[:, None, None, None], luma, images)
    return ((images + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--iterations", type=int, default=8)
    parser.add_argument("--cg-iterations", type=int, default=14)
    parser.add_argument("--encoder-samples", type=int, default=10000)
    parser.add_argument("--encoder-steps", type=int, default=1000)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    G = load_generator(DCGAN)
    for p in G.parameters():
        p.requires_grad_(False)
    z = torch.from_numpy(np.random.RandomState(7).randn(args.images, G.z_dim)).float()
    targets = crop_like_targets(G, z, seed=7)
    stats = w_statistics(G, 2000, torch.device("cpu"))
    cfg = RefineConfig(iterations=args.iterations, cg_iterations=args.cg_iterations)

    def adam_then_refine():
        w = project(G, targets, num_steps=args.steps, loss="mse", progress=False, w_stats=stats, micro_batch=64).w
        return refine(G, targets, w[:, :1], stats, cfg, progress=False)

    (network, metrics), t_train = timed(
        lambda: train_encoder(
            G, stats, EncoderConfig(samples=args.encoder_samples, steps=args.encoder_steps), progress=False
        )
    )
    encoder = ConfiguredEncoder(network, *stats)
    rows = {}
    rows[f"adam {args.steps} + LM {args.iterations} x CG {args.cg_iterations} (reference)"] = timed(adam_then_refine)
    rows[f"encoder + LM {args.iterations} x CG {args.cg_iterations}"] = timed(
        lambda: refine(G, targets, encoder(targets), stats, cfg, progress=False)
    )

    t_ref = next(iter(rows.values()))[1]
    n = args.images
    print(f"{n} warped renders of random DCGAN latents (every other one grey), {args.threads} threads")
    print(f"{'run':40s} {'s/image':>8s} {'ratio':>6s} {'PSNR med':>9s} {'|w - z| med':>12s}")
    report = {}
    for name, (result, seconds) in rows.items():
        error = float((result.w[:, 0] - z).norm(dim=1).median())
        quality = float(result.psnr.median())
        print(f"{name:40s} {seconds / n:8.3f} {t_ref / seconds:6.2f} {quality:9.2f} {error:12.2f}")
        report[name] = {
            "seconds_per_image": round(seconds / n, 3),
            "ratio": round(t_ref / seconds, 2),
            "psnr_aligned_median": round(quality, 2),
            "latent_error_median": round(error, 2),
        }
    t_enc = list(rows.values())[1][1]
    saved = (t_ref - t_enc) / n
    print(
        f"encoder training: {t_train:.0f} s once per generator (held-out mse {metrics['heldout_mse']:.2f} of the "
        f"latent variance); it pays for itself after {t_train / saved:.0f} images"
        if saved > 0
        else f"encoder training: {t_train:.0f} s; the encoder start is not faster per image here"
    )
    report["encoder_training_seconds"] = round(t_train, 1)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
