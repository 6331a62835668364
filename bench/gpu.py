"""One GPU check: fp16 vs fp32 generators, batched vs sequential projection, batched vs looped Langevin forces.

    bash bench/gpu.sh                     # the way to run it: under 8 minutes on one H100/H200
    python bench/gpu.py --budget 420      # the same, without the CUDA check or $OUT
    python bench/gpu.py --cpu-smoke       # every row at tiny sizes on the CPU (seconds): exercises the code

Prints one markdown table on stdout (progress goes to stderr) and, with `--out`, writes it there too.
The rows reuse the other benches' helpers:
- generator: a random-init StyleGAN2 of NVlabs' config at 256 px (paper256: channel_base 16384) and at
  1024 px (stylegan2: channel_base 32768), both channel_max 512, 8 mapping layers, num_fp16_res 4,
  conv_clamp 256, against the same weights with every block in fp32 (bench/projection.py `build`), on the
  same z; agreement on the 0..255 scale (clamped, as saved), time per image at batch 8 (bench/generator.py
  `seconds_per_call`: the best of a few calls after a warm-up).
- projection: `facelatent.projection.project.project` with the LPIPS/VGG16 loss (the VGG16 stand-in from
  tests/data: NVlabs' architecture and cost, random weights), images x steps per second from
  bench/projection.py `rate` (steady state, set-up left out). NVlabs projects one image per call; the
  stand-in for that loop is our projector at batch 1 run B times (bench/projection.py `sequential_rate`,
  timed on two images): ratio = batched / sequential rate. The generator keeps its fp16 blocks.
- langevin: one Langevin iteration (embed all, forces, update: `langevin_iteration`) with the batched
  forces of facelatent/synthetic/forces.py against `per_identity_interaction_forces`, the original's loop of
  one forward/backward pass per identity (ALGORITHMS.md 2.4 step 3), from the same latents and the same
  random-force draw, so the updated latents must agree: the check is max_i |w'_batched - w'_loop| over
  max_i |w' - w| (the step), below 0.05 (the oneDNN tolerance of tests/test_synthetic_forces.py).
  Generator: the 256 px StyleGAN2 above; FR model: a random-init IResNet-50 (112 px, the reference run's
  `iresnet50`), crop ffhq_to_iresnet_bob, 64 faces per batched pass (the README run's `-b 64`).
Peak memory is torch.cuda.max_memory_allocated, reset before each measurement.

The budget (seconds) covers the measurements: rows that an estimate from the rows already measured says
would not fit are reported as skipped, never left out. Exit status 1 if a Langevin comparison fails.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generator import seconds_per_call  # noqa: E402
from projection import VGG16_STANDIN, build, generator_kwargs, rate, sequential_rate  # noqa: E402
from synthetic import timed_iteration  # noqa: E402

from facelatent.embeddings.iresnet import IResNetEmbedder  # noqa: E402
from facelatent.generators.statistics import w_statistics  # noqa: E402
from facelatent.projection.job import ProjectionConfig, schedule_kwargs  # noqa: E402
from facelatent.projection.project import psnr  # noqa: E402
from facelatent.synthetic.references import sample_latents  # noqa: E402
from facelatent.synthetic.render import FacePipeline, cpu_generator  # noqa: E402
from facelatent.synthetic.tiny import TINY_KWARGS  # noqa: E402

NOTES = (
    (
        "- ratio: generator fp32 time / fp16 time; projection batched / sequential rate; langevin loop time / "
        "batched time (above 1: ours is faster)."
    ),
    (
        "- projection reference: NVlabs projects one image per call; its stand-in is our projector at B=1 run B "
        "times (bench/projection.py), timed on 2 images."
    ),
    (
        "- micro_batch: the pipeline's policy (facelatent/projection/job.py `micro_batch_for`): "
        "schedule.micro_batch null = projection.batch_size on CUDA and below 256 px, 1 on the CPU from 256 px up."
    ),
    (
        "- peak GPU memory: torch.cuda.max_memory_allocated from a reset just before each measurement, so it "
        "includes the weights resident then (one generator per generator row; G and the FR model for langevin)."
    ),
    (
        "- langevin: one iteration (embed all, forces, update) from the same latents and random-force draw; "
        "reference = the original's per-identity forward/backward loop (ALGORITHMS.md 2.4)."
    ),
)
LANGEVIN_TOLERANCE = 0.05  # as tests/test_synthetic_forces.py allows batched vs looped forces with oneDNN on


@dataclass(frozen=True)
class Plan:
    """What to measure: the GPU sizes, or tiny ones for the CPU smoke run."""

    smoke: bool
    gen_sizes: tuple[int, ...]
    gen_batch: int
    gen_reps: int
    proj: tuple[tuple[int, tuple[int, ...], int], ...]  # (resolution, batches, steps); the first always runs
    loss: str
    lang_n: tuple[int, ...]  # the first always runs
    lang_batch: int
    lang_resolution: int


GPU_PLAN = Plan(
    smoke=False,
    gen_sizes=(256, 1024),
    gen_batch=8,
    gen_reps=5,
    proj=((256, (1, 8, 32), 20), (1024, (1, 8), 10)),
    loss="lpips_vgg16",
    lang_n=(128, 1024),
    lang_batch=64,
    lang_resolution=256,
)
SMOKE_PLAN = Plan(
    smoke=True,
    gen_sizes=(16, 32),
    gen_batch=2,
    gen_reps=1,
    proj=((16, (1, 2, 4), 2), (32, (1, 2), 2)),
    loss="mse",
    lang_n=(4, 8),
    lang_batch=3,
    lang_resolution=16,
)


@dataclass
class Row:
    check: str
    size: str
    ours: str
    reference: str
    ratio: str
    agreement: str
    peak: str
    notes: str = ""


@dataclass
class Bench:
    plan: Plan
    device: torch.device
    budget_s: float
    start: float = field(default_factory=time.perf_counter)
    failed: bool = False

    def left(self) -> float:
        return self.budget_s - (time.perf_counter() - self.start)

    def fits(self, estimate_s: float) -> bool:
        return estimate_s <= self.left()

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def measured(self, fn: Callable[[], object]) -> tuple[object, float, float | None]:
        """fn's result, wall seconds and peak GPU MiB (None on the CPU), the peak counter reset first."""
        cuda = self.device.type == "cuda"
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
        self.sync()
        t0 = time.perf_counter()
        out = fn()
        self.sync()
        seconds = time.perf_counter() - t0
        return out, seconds, (torch.cuda.max_memory_allocated(self.device) / 2**20 if cuda else None)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def mib(peak: float | None) -> str:
    return "n/a (CPU)" if peak is None else f"{peak:,.0f} MiB"


def skipped(check: str, size: str, why: str) -> Row:
    return Row(check, size, "skipped", "skipped", "-", "-", "-", why)


def nvlabs_kwargs(resolution: int, smoke: bool) -> dict:
    """NVlabs' StyleGAN2 config at this resolution (paper256 below 512 px, the 1024 px stylegan2 config
    above; num_fp16_res 4); the smoke run takes the g64tiny widths from tests/data instead."""
    if smoke:
        kwargs = generator_kwargs("sg2_64", 0)
    else:
        kwargs = generator_kwargs("sg2_256", 16384 if resolution <= 256 else 32768)
    return {**kwargs, "img_resolution": resolution}


# ---- generator: fp16 blocks vs all fp32 ----------------------------------------------------------


def generator_row(bench: Bench, resolution: int) -> Row:
    plan, dev = bench.plan, bench.device
    kwargs = nvlabs_kwargs(resolution, plan.smoke)
    G16 = build(kwargs, True, dev)
    G32 = build(kwargs, False, torch.device("cpu"), state=G16.state_dict())  # on the GPU after G16 leaves it
    z = torch.randn([plan.gen_batch, G16.z_dim], generator=torch.Generator().manual_seed(0)).to(dev)

    def images(G) -> torch.Tensor:
        with torch.inference_mode():
            return G(z, None, noise_mode="const").float()

    def per_image_s(G) -> float:
        with torch.inference_mode():
            return seconds_per_call(lambda: G(z, None, noise_mode="const"), plan.gen_reps, dev) / plan.gen_batch

    (img16, t16), _, peak16 = bench.measured(lambda: (images(G16), per_image_s(G16)))
    G16, G32 = G16.cpu(), G32.to(dev)  # one generator's weights resident per measurement
    (img32, t32), _, peak32 = bench.measured(lambda: (images(G32), per_image_s(G32)))
    diff = (img16 - img32).abs()
    pix16, pix32 = [((x + 1) * 127.5).clamp(0, 255) for x in (img16, img32)]
    worst_psnr = psnr(pix16, pix32).min().item()
    fp16 = dev.type == "cuda"  # fp16 blocks run in fp16 only on CUDA
    agreement = f"max {diff.max().item():.3g}, mean {diff.mean().item():.3g} (of [-1, 1]); " + (
        "identical" if diff.max().item() == 0 else f"PSNR {worst_psnr:.1f} dB (worst image)"
    )
    params = sum(p.numel() for p in G16.parameters()) / 1e6
    return Row(
        "generator fp16 vs fp32",
        f"{resolution} px, B={plan.gen_batch}",
        f"{'fp16' if fp16 else 'fp32 (CPU)'} {1000 * t16:.2f} ms/img",
        f"fp32 {1000 * t32:.2f} ms/img",
        f"{t32 / t16:.2f}x",
        agreement,
        f"{mib(peak16)} / {mib(peak32)}",
        f"channel_base {kwargs['synthesis_kwargs']['channel_base']}, {params:.1f}M params, num_fp16_res 4 "
        "vs 0, same weights and z",
    )


# ---- projection: batched vs one image at a time -----------------------------------------------------


def projection_rows(bench: Bench, resolution: int, batches: tuple[int, ...], steps: int) -> tuple[list[Row], dict]:
    """Rows for one resolution and each batch's wall seconds (for the next resolution's estimate)."""
    plan, dev = bench.plan, bench.device
    G = build(nvlabs_kwargs(resolution, plan.smoke), True, dev)
    w_stats = w_statistics(G, 100, dev)
    targets = torch.randint(
        0,
        256,
        (max(max(batches), 2), 3, resolution, resolution),
        generator=torch.Generator().manual_seed(1),
        dtype=torch.uint8,
    )
    args = (steps, plan.loss, VGG16_STANDIN, w_stats)
    seq, seq_s, seq_peak = bench.measured(lambda: sequential_rate(G, targets, *args))
    rows, seconds = [], {1: seq_s}
    for batch in batches:
        if batch == 1:
            batched, peak = seq, seq_peak
        else:
            batched, seconds[batch], peak = bench.measured(lambda b=batch: rate(G, targets[:b], *args))
        micro = schedule_kwargs(ProjectionConfig(batch_size=batch), "cuda")["micro_batch"]
        rows.append(
            Row(
                "projection",
                f"{resolution} px, B={batch}",
                f"{batched:.2f} img*step/s",
                f"{seq:.2f} img*step/s (B=1 x {batch})",
                f"{batched / seq:.2f}x",
                "-",
                mib(peak) if batch == 1 else f"{mib(peak)} / {mib(seq_peak)}",
                f"{plan.loss}, {steps} steps; micro_batch {micro}",
            )
        )
        log(f"projection {resolution} px B={batch}: {batched:.2f} vs {seq:.2f} img*step/s")
    return rows, seconds


# ---- Langevin: batched forces vs the per-identity loop ----------------------------------------------


def langevin_pipe(plan: Plan, device: torch.device) -> FacePipeline:
    G = build(nvlabs_kwargs(plan.lang_resolution, plan.smoke), True, device)
    torch.manual_seed(0)
    if plan.smoke:
        E, crop = IResNetEmbedder(**{**TINY_KWARGS, "image_size": 16}), "resize"  # tests' tiny IResNet, at 16 px
    else:
        E, crop = IResNetEmbedder(layers=(3, 4, 14, 3), num_features=512, image_size=112), "ffhq_to_iresnet_bob"
    return FacePipeline(G, E.eval().to(device), crop=crop, noise_mode="const", batch_size=plan.lang_batch)


def langevin_row(
    bench: Bench, pipe: FacePipeline, n: int, loop_estimate_s: float | None
) -> tuple[Row, float, float | None]:
    """The row for N identities, and its batched and looped seconds per iteration. With `loop_estimate_s`,
    the loop runs only if that estimate fits the budget."""
    size = f"N={n}, {pipe.batch_size}/pass"
    _, w = sample_latents(pipe, n, 0.7, cpu_generator(0))
    (tb, (wb, _, row)), _, peak_b = bench.measured(lambda: timed_iteration(pipe, w, False))
    if loop_estimate_s is not None and not bench.fits(loop_estimate_s):
        return (
            Row(
                "langevin",
                size,
                f"{tb:.3f} s/it",
                "skipped",
                "-",
                "-",
                f"{mib(peak_b)} / -",
                f"per-identity loop skipped: about {loop_estimate_s:.0f} s, {max(bench.left(), 0):.0f} s of budget "
                "left",
            ),
            tb,
            None,
        )
    (tl, (wl, _, _)), _, peak_l = bench.measured(lambda: timed_iteration(pipe, w, True))
    step = (wl - w).norm(dim=1).max().item()
    rel = (wb - wl).norm(dim=1).max().item() / max(step, 1e-30)
    ok = math.isfinite(rel) and rel < LANGEVIN_TOLERANCE and row["intf_max"] > 0  # 0 == 0 would prove nothing
    bench.failed |= not ok
    log(f"langevin N={n}: batched {tb:.3f} s/it, loop {tl:.3f} s/it, step difference {rel:.2e}")
    return (
        Row(
            "langevin",
            size,
            f"{tb:.3f} s/it",
            f"{tl:.3f} s/it (loop)",
            f"{tl / tb:.2f}x",
            f"{'ok' if ok else 'FAIL'}: max dw' {rel:.2e} of the step (< {LANGEVIN_TOLERANCE})",
            f"{mib(peak_b)} / {mib(peak_l)}",
            f"StyleGAN2 {pipe.G.img_resolution} px + {pipe.embedder.arch} (random init), crop {pipe.crop}; "
            f"intf_max {row['intf_max']:.3g}, dist_min {row['dist_min']:.3f} rad; one iteration each",
        ),
        tb,
        tl,
    )


def langevin_rows(bench: Bench) -> list[Row]:
    """The first N always runs; later ones (and their loops) only when an estimate scaled from the
    seconds per identity measured so far, plus a fifth, fits the budget."""
    plan = bench.plan
    pipe = langevin_pipe(plan, bench.device)
    warm = sample_latents(pipe, 4, 0.7, cpu_generator(0))[1]
    batched_s = timed_iteration(pipe, warm, False)[0] / len(warm)  # also the warm-up: kernels, allocator
    loop_s = timed_iteration(pipe, warm, True)[0] / len(warm)
    rows = []
    for k, n in enumerate(plan.lang_n):
        if k > 0 and not bench.fits(1.2 * n * batched_s):
            rows.append(
                skipped(
                    "langevin",
                    f"N={n}, {pipe.batch_size}/pass",
                    f"about {1.2 * n * batched_s:.0f} s, {max(bench.left(), 0):.0f} s of budget left",
                )
            )
            continue
        row, tb, tl = langevin_row(bench, pipe, n, 1.2 * n * loop_s if k > 0 else None)
        rows.append(row)
        batched_s, loop_s = tb / n, (tl / n if tl is not None else loop_s)
    return rows


# ---- the table -------------------------------------------------------------------------------------


def table(rows: list[Row], bench: Bench) -> str:
    dev = bench.device
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"
    head = ["check", "size", "ours", "reference", "ratio", "agreement", "peak GPU memory (ours / ref)", "notes"]
    lines = [
        (
            f"bench/gpu.py{' --cpu-smoke' if bench.plan.smoke else ''}: {name}, torch {torch.__version__}, "
            f"{time.perf_counter() - bench.start:.0f} s of a {bench.budget_s:.0f} s budget"
        ),
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    lines += [
        "| " + " | ".join([r.check, r.size, r.ours, r.reference, r.ratio, r.agreement, r.peak, r.notes]) + " |"
        for r in rows
    ]
    lines += ["", *NOTES]
    return "\n".join(lines) + "\n"


def run(plan: Plan, device: torch.device, budget_s: float) -> tuple[str, bool]:
    bench = Bench(plan, device, budget_s)
    gen, proj = [], []
    for resolution in plan.gen_sizes:
        gen.append(generator_row(bench, resolution))
        log(f"generator {resolution} px: {gen[-1].ours} vs {gen[-1].reference}; {gen[-1].agreement}")
    (res0, batches0, steps0), *later = plan.proj
    rows0, seconds0 = projection_rows(bench, res0, batches0, steps0)
    proj += rows0
    lang = langevin_rows(bench)
    for resolution, batches, steps in later:  # after Langevin: "if time allows"
        pixels = (resolution / res0) ** 2
        estimate = sum(seconds0.get(b, seconds0[max(seconds0)]) for b in batches) * pixels * steps / steps0
        if bench.fits(estimate):
            proj += projection_rows(bench, resolution, batches, steps)[0]
        else:
            proj += [
                skipped(
                    "projection",
                    f"{resolution} px, B={b}",
                    f"about {estimate:.0f} s, {max(bench.left(), 0):.0f} s of budget left",
                )
                for b in batches
            ]
    return table(gen + proj + lang, bench), bench.failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=420.0, help="seconds for the measurements")
    parser.add_argument("--cpu-smoke", action="store_true", help="every row at tiny sizes on the CPU")
    parser.add_argument("--out", type=Path, default=None, help="also write the table to this file")
    args = parser.parse_args()
    if args.cpu_smoke:
        plan, device = SMOKE_PLAN, torch.device("cpu")
    elif torch.cuda.is_available():
        plan, device = GPU_PLAN, torch.device("cuda:0")
    else:
        parser.error("no CUDA device (torch.cuda.is_available() is False); use --cpu-smoke, or bench/gpu.sh")
    text, failed = run(plan, device, args.budget)
    print(text, end="", flush=True)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
