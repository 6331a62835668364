"""Time per Langevin iteration: batched forces (ours) vs the original's one forward/backward pass per identity.

One iteration = embed all N faces (no grad), interaction forces, update, stats; both schemes start from
the same latents and alternate, so load from other jobs hits both alike. The generator is the demo
DCGAN (64 px); the FR model is the fetched FaceNet (160 px) at batch 8, the demo's setting. `--fr
small_iresnet` swaps in a random-weight IResNet with one block per stage (112 px, 512-d: IResNet's stem
and widths, 1/12 of IResNet-50's depth). Both schemes give the same forces (tests/test_synthetic_forces.py);
this measures only speed.

    .venv/bin/python bench/synthetic.py                      # N = 32, 128; about 1-3 minutes on 2 cores
    .venv/bin/python bench/synthetic.py --fr small_iresnet
    .venv/bin/python bench/synthetic.py --device cuda --n 128 1024 --batch-size 64
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from facelatent.checkpoints import Checkpoint, save_safetensors_checkpoint
from facelatent.embeddings import IResNetEmbedder, load_embedder
from facelatent.generators import load_generator
from facelatent.synthetic.langevin import LangevinConfig, langevin_iteration
from facelatent.synthetic.references import sample_latents
from facelatent.synthetic.render import FacePipeline, cpu_generator

REPO = Path(__file__).resolve().parents[1]


def small_iresnet(path: Path) -> Path:
    torch.manual_seed(0)
    kwargs = {"layers": [1, 1, 1, 1], "num_features": 512, "image_size": 112}
    save_safetensors_checkpoint(path, Checkpoint("iresnet", kwargs, IResNetEmbedder(**kwargs).state_dict()))
    return path


def one_iteration(pipe: FacePipeline, w: torch.Tensor, per_identity: bool) -> float:
    """Seconds for one Langevin iteration from latents w (the state is not carried over between calls)."""
    return timed_iteration(pipe, w, per_identity)[0]


def timed_iteration(
    pipe: FacePipeline, w: torch.Tensor, per_identity: bool
) -> tuple[float, tuple[torch.Tensor, torch.Tensor, dict[str, float]]]:
    """Seconds for one Langevin iteration from latents w, and its (new w, E, stats row). The random force is
    drawn from the same seed every call, so both schemes' results can be compared (bench/gpu.py)."""
    sync = torch.cuda.synchronize if pipe.device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    out = langevin_iteration(pipe, w, LangevinConfig(), cpu_generator(1), per_identity=per_identity)
    sync()
    return time.perf_counter() - t0, out


def compare(pipe: FacePipeline, n: int, rounds: int, budget_s: float) -> dict[str, list[float]]:
    """Alternate batched and per-identity iterations on the same latents, so load from other jobs on a
    shared machine hits both schemes alike; stops after `rounds` or once `budget_s` is spent (>= 1 round)."""
    _, w = sample_latents(pipe, n, 0.7, cpu_generator(0))
    times: dict[str, list[float]] = {"batched": [], "per_identity": []}
    start = time.perf_counter()
    while len(times["batched"]) < rounds and (not times["batched"] or time.perf_counter() - start < budget_s):
        times["batched"].append(one_iteration(pipe, w, False))
        times["per_identity"].append(one_iteration(pipe, w, True))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[32, 128], help="identity counts")
    parser.add_argument("--fr", choices=["facenet", "small_iresnet"], default="facenet")
    parser.add_argument("--batch-size", type=int, default=8, help="faces per batched pass (8 is fastest on CPU)")
    parser.add_argument("--repeats", type=int, default=2, help="alternated rounds per N (at most)")
    parser.add_argument("--budget", type=float, default=30.0, help="seconds per N after which no new round starts")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    G = load_generator(REPO / "resources" / "models" / "dcgan_digiface64.safetensors", device=device)
    with tempfile.TemporaryDirectory() as tmp:
        spec = small_iresnet(Path(tmp) / "iresnet.safetensors") if args.fr == "small_iresnet" else "facenet_casia"
        embedder = load_embedder(spec, device=device)
    pipe = FacePipeline(G, embedder, crop="resize", noise_mode="const", batch_size=args.batch_size)
    print(
        f"generator DCGAN 64 px; FR {args.fr} {tuple(embedder.input_size)}; device {device}; "
        f"torch threads {torch.get_num_threads()}; batch {args.batch_size}"
    )
    print(f"{'N':>6} {'batched s/it':>14} {'per-identity s/it':>18} {'ratio':>7}")
    one_iteration(pipe, sample_latents(pipe, 4, 0.7, cpu_generator(0))[1], False)  # warm-up
    one_iteration(pipe, sample_latents(pipe, 4, 0.7, cpu_generator(0))[1], True)
    rows = []
    for n in args.n:
        times = compare(pipe, n, args.repeats, args.budget)
        batched, looped = min(times["batched"]), min(times["per_identity"])
        rows.append({"n": n, **times, "speedup_best": looped / batched})
        print(
            f"{n:>6} {batched:>14.3f} {looped:>18.3f} {looped / batched:>6.2f}x   (best of "
            f"{len(times['batched'])} alternated run(s); medians {statistics.median(times['batched']):.3f} / "
            f"{statistics.median(times['per_identity']):.3f})"
        )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
