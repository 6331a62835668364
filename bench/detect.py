"""Throughput of the MTCNN detector: batched `detect(list)` vs one `detect_faces` call per image.

Images: the three demo photos plus synthetic 640x480 frames, each with one DCGAN demo face
pasted at 192 px (or, without the demo generator, crops of t1.jpg).

    .venv/bin/python bench/detect.py [--frames 16] [--repeats 3] [--device cpu] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import cv2
import numpy as np
import torch

from facelatent.detect.mtcnn import MTCNN
from facelatent.paths import models_dir, resources_dir

PHOTOS = ["t1.jpg", "Tom_Hanks_54745.png", "astronaut.png"]


def load_photos() -> list[np.ndarray]:
    """The demo photos as RGB uint8."""
    out = []
    for name in PHOTOS:
        bgr = cv2.imread(str(resources_dir() / "demo_photos" / name), cv2.IMREAD_COLOR)
        if bgr is None:
            raise SystemExit(f"{resources_dir() / 'demo_photos' / name}: missing; fetch the demo photos first")
        out.append(np.ascontiguousarray(bgr[:, :, ::-1]))
    return out


def synthetic_frames(count: int, seed: int = 0) -> list[np.ndarray]:
    """640x480 grey frames, each with one 192 px face from the DCGAN demo generator at a random spot."""
    rng = np.random.RandomState(seed)
    gen_path = models_dir() / "dcgan_digiface64.safetensors"
    if gen_path.exists():
        from facelatent.generators import load_generator

        G = load_generator(gen_path)
        with torch.no_grad():
            img = G(torch.from_numpy(rng.randn(count, G.z_dim)).float())
        faces = ((img.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
        faces = [cv2.resize(f, (192, 192), interpolation=cv2.INTER_LINEAR) for f in faces]
    else:
        t1 = load_photos()[0]
        faces = [np.ascontiguousarray(t1[50:242, 890:1082]) for _ in range(count)]
    frames = []
    for face in faces:
        frame = np.full((480, 640, 3), 128, dtype=np.uint8)
        y, x = rng.randint(0, 480 - 192), rng.randint(0, 640 - 192)
        frame[y : y + 192, x : x + 192] = face
        frames.append(frame)
    return frames


def timed_pair(first, second, repeats: int) -> tuple[float, float, object, object]:
    """Median wall times of two callables, run alternately (after one warm-up each) so that load
    from other processes hits both alike; also their last results."""
    result_a, result_b = first(), second()
    times_a, times_b = [], []
    for _ in range(repeats):
        for fn, times in ((first, times_a), (second, times_b)):
            start = time.perf_counter()
            result = fn()
            times.append(time.perf_counter() - start)
            if fn is first:
                result_a = result
            else:
                result_b = result
    return statistics.median(times_a), statistics.median(times_b), result_a, result_b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    images = load_photos() + synthetic_frames(args.frames)
    det = MTCNN(device=args.device)
    t_batch, t_single, batched, single = timed_pair(
        lambda: det.detect(images), lambda: [det.detect_faces(im) for im in images], args.repeats
    )

    same = all([f["box"] for f in a] == [f["box"] for f in b] for a, b in zip(batched, single, strict=True))
    found = sum(len(r) > 0 for r in batched[len(PHOTOS) :])
    print(
        f"images: {len(images)} ({len(PHOTOS)} photos + {args.frames} frames 640x480), "
        f"torch threads {torch.get_num_threads()}, device {args.device}"
    )
    print(f"batched   detect(list):        {len(images) / t_batch:7.2f} images/s  ({t_batch:.2f} s)")
    print(f"unbatched detect_faces x {len(images):<3}: {len(images) / t_single:7.2f} images/s  ({t_single:.2f} s)")
    print(f"speed-up batched / unbatched: {t_single / t_batch:.2f}x")
    print(f"same boxes batched vs unbatched: {same}; frames with a face found: {found}/{args.frames}")


if __name__ == "__main__":
    main()
