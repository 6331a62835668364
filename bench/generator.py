"""Generator speed: ms/image for mapping + synthesis, fused vs non-fused modulated conv.

    python bench/generator.py            # CPU (and CUDA fp32/fp16 when a GPU is present)
    python bench/generator.py --quick    # fewer repetitions

Configs: the StyleGAN2 g64tiny widths (64 px) from tests/data, a random-init paper256-like
StyleGAN2 (channel_base 16384, channel_max 512, 8 mapping layers, 256 px) and the StyleGAN3
t64tiny widths. For StyleGAN2 at batch 8 it also times a straightforward baseline, one image
at a time through the non-fused path, and prints its cost relative to our batched fused and
non-fused paths (above 1x: the batched path is faster). Wall times on a shared machine are
noisy: the best of a few runs is shown, and `--threads 1` gives the steadiest comparison.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch

from facelatent.generators.base import GeneratorBase
from facelatent.generators.stylegan2 import StyleGAN2Generator
from facelatent.generators.stylegan3 import StyleGAN3Generator

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"


def seconds_per_call(fn: Callable[[], object], reps: int, device: torch.device, warmup: bool = True) -> float:
    """Best wall time of `reps` calls (the least disturbed by other load), after one warm-up call."""

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    if warmup:
        fn()
        sync()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return min(times)


def build(kind: str) -> GeneratorBase:
    """Random-init generators; the tiny ones take their widths from the reference init kwargs."""
    torch.manual_seed(0)
    if kind == "sg2_64":
        kwargs = json.loads((DATA / "stylegan2_g64tiny" / "init_kwargs.json").read_text())["init_kwargs"]
        return StyleGAN2Generator(**kwargs).eval().requires_grad_(False)
    if kind == "sg2_256":
        return (
            StyleGAN2Generator(
                z_dim=512,
                w_dim=512,
                img_resolution=256,
                mapping_kwargs=dict(num_layers=8),
                synthesis_kwargs=dict(channel_base=16384, channel_max=512, num_fp16_res=4, conv_clamp=256),
            )
            .eval()
            .requires_grad_(False)
        )
    kwargs = json.loads((DATA / "stylegan3_t64tiny" / "init_kwargs.json").read_text())["init_kwargs"]
    return StyleGAN3Generator(**kwargs).eval().requires_grad_(False)


def heavy_on_cpu(G: GeneratorBase, device: torch.device) -> bool:
    """Seconds per image: a warm-up call would only add time (oneDNN set-up is milliseconds)."""
    return device.type == "cpu" and G.img_resolution >= 256


def per_image_ms(G: GeneratorBase, batch: int, reps: int, device: torch.device, **synthesis_kwargs) -> float:
    z = torch.randn([batch, G.z_dim], device=device)
    with torch.inference_mode():
        seconds = seconds_per_call(
            lambda: G(z, None, noise_mode="const", **synthesis_kwargs), reps, device, warmup=not heavy_on_cpu(G, device)
        )
    return 1000 * seconds / batch


def one_by_one_nonfused_ms(G: GeneratorBase, batch: int, reps: int, device: torch.device) -> float:
    """Baseline: each image separately through the non-fused (shared weight) path."""
    z = torch.randn([batch, G.z_dim], device=device)

    def run() -> None:
        for i in range(batch):
            G(z[i : i + 1], None, noise_mode="const", fused_modconv=False, force_fp32=True)

    with torch.inference_mode():
        return 1000 * seconds_per_call(run, reps, device, warmup=not heavy_on_cpu(G, device)) / batch


def bench_device(device: torch.device, quick: bool) -> None:
    reps = {"sg2_64": 3 if quick else 5, "sg2_256": 1, "sg3_64": 1 if quick else 3}
    precisions = [("fp32", True)] + ([("fp16", False)] if device.type == "cuda" else [])
    print(f"\n== {device} (torch threads {torch.get_num_threads()}) ==")
    print(
        f"{'config':10s} {'prec':5s} {'batch':>5s} {'fused ms/img':>13s} {'nonfused ms/img':>16s} "
        f"{'1-by-1 nonfused':>16s} {'1-by-1 / fused':>15s} {'1-by-1 / nonfused':>18s}"
    )
    for kind in ("sg2_64", "sg2_256", "sg3_64"):
        G = build(kind).to(device)
        params = sum(p.numel() for p in G.parameters()) / 1e6
        print(f"-- {kind}: {params:.1f}M parameters, {G.num_ws} ws, {G.img_resolution} px")
        for prec, force_fp32 in precisions:
            for batch in (1, 8):
                fused = per_image_ms(G, batch, reps[kind], device, force_fp32=force_fp32, fused_modconv=True)
                if kind.startswith("sg3"):
                    print(f"{kind:10s} {prec:5s} {batch:5d} {fused:13.1f} {'-':>16s} {'-':>16s} {'-':>15s} {'-':>18s}")
                    continue
                nonfused = per_image_ms(G, batch, reps[kind], device, force_fp32=force_fp32, fused_modconv=False)
                if batch == 8 and prec == "fp32":
                    loop = one_by_one_nonfused_ms(G, batch, reps[kind], device)
                    tail = f"{loop:16.1f} {loop / fused:14.2f}x {loop / nonfused:17.2f}x"
                else:
                    tail = f"{'-':>16s} {'-':>15s} {'-':>18s}"
                print(f"{kind:10s} {prec:5s} {batch:5d} {fused:13.1f} {nonfused:16.1f} {tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions of the small configs")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    bench_device(torch.device("cpu"), args.quick)
    if torch.cuda.is_available():
        bench_device(torch.device("cuda"), args.quick)
    print(f"\ntotal bench time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
