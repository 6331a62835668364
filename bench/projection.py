"""Projector speed: images x steps per second, batched against one image at a time.

    python bench/projection.py --threads 1     # CPU (then CUDA fp32/fp16 when a GPU is present)
    python bench/projection.py --steps 10 --lpips-256

Configs: the StyleGAN2 g64tiny widths (64 px, from tests/data) and a random-init StyleGAN2 at
256 px (8 mapping layers, channel_max 512; channel_base 16384 = paper256 on CUDA, 4096 on CPU
by default to keep the run short, `--cpu-channel-base` to change it). Losses: `mse` and
`lpips_vgg16` with the VGG16 stand-in from tests/data (the real network's architecture and
cost; `--vgg16` for NVlabs' file). LPIPS at 256 px runs on CUDA, and on CPU only with `--lpips-256`.

A figure is the steady-state rate: (T(S steps) - T(1 step)) / (S - 1) after a warm-up run,
so set-up (VGG load, target features) is left out. `sequential` is B images projected one
by one, i.e. B runs at B=1; every such run costs the same, so its rate is that of B=1, measured
here on two different images. `ratio` = batched rate / sequential rate (above 1: batching wins).
On CPU the generator runs its non-fused modconv path (faster there); on CUDA, NVlabs' rule.
CUDA rows compare the NVlabs fp16 blocks (num_fp16_res 4) with the same weights all in fp32.
Wall times on a shared machine are noisy; `--threads 1` gives the steadiest comparison.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from facelatent.generators.statistics import w_statistics
from facelatent.generators.stylegan2 import StyleGAN2Generator
from facelatent.projection.project import project

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
VGG16_STANDIN = DATA / "vgg16_standin" / "vgg16_standin_random_init.pt"
BATCHES = (1, 4, 16)


def generator_kwargs(kind: str, channel_base_256: int) -> dict:
    """Constructor kwargs (NVlabs fp16 blocks: num_fp16_res 4) of the two benchmark generators."""
    if kind == "sg2_64":
        return json.loads((DATA / "stylegan2_g64tiny" / "init_kwargs.json").read_text())["init_kwargs"]
    return dict(
        z_dim=512,
        w_dim=512,
        img_resolution=256,
        mapping_kwargs=dict(num_layers=8),
        synthesis_kwargs=dict(channel_base=channel_base_256, channel_max=512, num_fp16_res=4, conv_clamp=256),
    )


def build(kwargs: dict, fp16: bool, device: torch.device, state: dict | None = None) -> StyleGAN2Generator:
    """Random-init G (seed 0), or `state` loaded into it; fp16=False makes every block fp32."""
    kwargs = json.loads(json.dumps(kwargs))
    if not fp16:
        kwargs["synthesis_kwargs"]["num_fp16_res"] = 0
    torch.manual_seed(0)
    G = StyleGAN2Generator(**kwargs)
    if state is not None:
        G.load_state_dict(state)
    return G.eval().requires_grad_(False).to(device)


def run_seconds(
    G: StyleGAN2Generator,
    targets: torch.Tensor,
    steps: int,
    loss: str,
    vgg16: Path,
    w_stats: tuple[torch.Tensor, float],
) -> float:
    """Wall time of one projection (results land on the CPU, which syncs CUDA)."""
    start = time.perf_counter()
    project(G, targets, num_steps=steps, loss=loss, vgg16_path=vgg16, w_stats=w_stats, progress=False)
    return time.perf_counter() - start


def rate(
    G: StyleGAN2Generator,
    targets: torch.Tensor,
    steps: int,
    loss: str,
    vgg16: Path,
    w_stats: tuple[torch.Tensor, float],
) -> float:
    """Steady-state images x steps per second of a batch, set-up excluded (see the module doc)."""
    run_seconds(G, targets, 1, loss, vgg16, w_stats)  # warm-up: oneDNN/cuDNN set-up, first-call JIT
    full = run_seconds(G, targets, steps, loss, vgg16, w_stats)
    one = run_seconds(G, targets, 1, loss, vgg16, w_stats)
    per_step = max(full - one, 1e-9) / (steps - 1)
    return targets.shape[0] / per_step


def sequential_rate(
    G: StyleGAN2Generator,
    targets: torch.Tensor,
    steps: int,
    loss: str,
    vgg16: Path,
    w_stats: tuple[torch.Tensor, float],
) -> float:
    """Images x steps per second of one-by-one projection: the mean per-step time of B=1 runs on two images."""
    seconds = [1 / rate(G, targets[i : i + 1], steps, loss, vgg16, w_stats) for i in range(2)]
    return 1 / (sum(seconds) / len(seconds))


def bench_config(
    kind: str,
    device: torch.device,
    fp16: bool,
    losses: list[str],
    steps: int,
    channel_base_256: int,
    vgg16: Path,
    fp32_state: dict | None = None,
) -> dict:
    kwargs = generator_kwargs(kind, channel_base_256)
    G = build(kwargs, fp16, device, fp32_state)
    R = G.img_resolution
    w_stats = w_statistics(G, 100, device)
    targets = torch.randint(
        0, 256, (max(BATCHES), 3, R, R), generator=torch.Generator().manual_seed(1), dtype=torch.uint8
    )
    params = sum(p.numel() for p in G.parameters()) / 1e6
    prec = "fp16" if fp16 and device.type == "cuda" else "fp32"
    print(
        f"-- {kind}: {R} px, {params:.1f}M parameters, channel_base {kwargs['synthesis_kwargs']['channel_base']}, "
        f"{prec}, {steps} steps",
        flush=True,
    )
    for loss in losses:
        seq = sequential_rate(G, targets, steps, loss, vgg16, w_stats)
        for batch in BATCHES:
            batched = seq if batch == 1 else rate(G, targets[:batch], steps, loss, vgg16, w_stats)
            print(
                f"{device.type:5s} {kind:7s} {prec:5s} {loss:12s} {batch:5d} {batched:14.2f} {seq:14.2f} "
                f"{batched / seq:7.2f}x",
                flush=True,
            )
    return G.state_dict()


def bench_device(device: torch.device, args: argparse.Namespace) -> None:
    print(f"\n== {device} (torch threads {torch.get_num_threads()}) ==")
    print(
        f"{'dev':5s} {'config':7s} {'prec':5s} {'loss':12s} {'B':>5s} {'batched i*s/s':>14s} "
        f"{'sequential':>14s} {'ratio':>8s}"
    )
    cuda = device.type == "cuda"
    channel_base_256 = 16384 if cuda else args.cpu_channel_base
    for kind in args.configs:
        losses = ["mse", "lpips_vgg16"] if kind == "sg2_64" or cuda or args.lpips_256 else ["mse"]
        if cuda:  # the same weights with NVlabs' fp16 blocks, then all in fp32
            state = bench_config(kind, device, True, losses, args.steps, channel_base_256, args.vgg16)
            bench_config(kind, device, False, losses, args.steps, channel_base_256, args.vgg16, fp32_state=state)
        else:
            bench_config(kind, device, False, losses, args.steps, channel_base_256, args.vgg16)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="optimisation steps per timed run (>= 2)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--cpu-channel-base", type=int, default=4096, help="channel_base of the 256 px G on CPU")
    parser.add_argument("--lpips-256", action="store_true", help="also time LPIPS at 256 px on CPU (slow)")
    parser.add_argument("--vgg16", type=Path, default=VGG16_STANDIN, help="TorchScript VGG16 (NVlabs convention)")
    parser.add_argument("--configs", nargs="+", default=["sg2_64", "sg2_256"], choices=["sg2_64", "sg2_256"])
    parser.add_argument("--cpu-only", action="store_true", help="skip CUDA even when it is available")
    args = parser.parse_args()
    if args.steps < 2:
        parser.error("--steps must be at least 2")
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    bench_device(torch.device("cpu"), args)
    if torch.cuda.is_available() and not args.cpu_only:
        bench_device(torch.device("cuda"), args)
    print(f"\ntotal bench time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
