"""An uploaded photo -> the largest face, aligned as the pipeline aligns -> projected with the configured
projection settings in a background thread whose progress the page polls."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from facelatent.align.job import AlignConfig, align_from_points, largest_face, mtcnn_points
from facelatent.config import projection_for
from facelatent.errors import FaceLatentError
from facelatent.generators import GeneratorBase, generator_provenance
from facelatent.projection.config import ProjectionConfig
from facelatent.store import atomic_h5, write_column

log = logging.getLogger(__name__)


def align_photo(rgb: np.ndarray, cfg: AlignConfig, detect: Callable[[np.ndarray], list[dict]]) -> np.ndarray:
    """The photo's largest face aligned as `align_shard` aligns it; FaceLatentError when there is none."""
    detections = detect(rgb)
    if not detections:
        raise FaceLatentError("no face found in the photo")
    best, _ = largest_face(detections)
    return align_from_points(rgb, mtcnn_points(best), cfg)


def write_aligned(path: Path, token: str, image: np.ndarray, config: Mapping) -> None:
    """A one-face aligned shard (the `facelatent.aligned` layout `project_aligned` reads)."""
    with atomic_h5(path, "facelatent.aligned", {}, dict(config)) as fh:
        write_column(fh, "ids", np.array([token], dtype=object))
        write_column(fh, "images", image[None])
        write_column(fh, "points5", np.full((1, 5, 2), np.nan, np.float32))
        write_column(fh, "notes", np.array(["uploaded to the editor"], dtype=object))
        group = fh.create_group("rejects")
        for name in ("ids", "paths", "reasons"):
            write_column(group, name, np.array([], dtype=object))


def upload_projection(config: Mapping, dataset: str | None, max_steps: int | None) -> ProjectionConfig:
    """The `projection:` section (with `datasets.<dataset>.projection` on top when named), Adam steps capped at
    `max_steps` so an upload stays interactive; one image, so a batch of one."""
    section = projection_for(config, dataset) if dataset else dict(config["projection"])
    cfg = ProjectionConfig(**section)
    steps = cfg.steps if max_steps is None else min(cfg.steps, max_steps)
    # a checkpoint every ~5% of the steps: each one is a progress report (checkpoints do not change results)
    return replace(cfg, steps=steps, batch_size=1, checkpoint_every=max(1, steps // 20))


@dataclass
class UploadJob:
    """What the page polls: state (running, done, error), the fraction done, and the latest message."""

    token: str
    state: str = "running"
    fraction: float = 0.0
    message: str = "projecting"
    started: float = 0.0

    def as_json(self) -> dict:
        return {
            "token": self.token,
            "state": self.state,
            "fraction": round(self.fraction, 3),
            "message": self.message,
            "elapsed_s": round(time.monotonic() - self.started, 1),
            "face": f"upload/{self.token}" if self.state == "done" else None,
        }


class _ProgressLog(logging.Handler):
    """Turns the projection job's checkpoint log lines into the job's fraction done (Adam steps, then LM
    iterations)."""

    def __init__(self, job: UploadJob, steps: int, iterations: int):
        super().__init__(logging.INFO)
        self.job, self.steps, self.total = job, steps, max(1, steps + iterations)

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        adam, lm = re.search(r"checkpoint at step (\d+)", text), re.search(r"checkpoint at iteration (\d+)", text)
        if adam:
            self.job.fraction, self.job.message = int(adam[1]) / self.total, f"Adam step {adam[1]} of {self.steps}"
        elif lm:
            done = self.steps + int(lm[1])
            self.job.fraction, self.job.message = done / self.total, f"refinement iteration {lm[1]}"


def project_upload(
    G: GeneratorBase,
    job: UploadJob,
    aligned: Path,
    out: Path,
    cfg: ProjectionConfig,
    encoder: object | None,
    facenet: Path | None,
) -> None:
    """Project the uploaded face (run in a thread); the job ends `done` or `error` with the reason."""
    from facelatent.projection.job import project_aligned

    logger = logging.getLogger("facelatent.projection")
    handler = _ProgressLog(job, cfg.steps, int(cfg.refine.get("iterations", 0)))
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.INFO)
    try:
        project_aligned(
            G, aligned, out, cfg, generator_provenance(G), progress=False, encoder=encoder, facenet_weights=facenet
        )
        job.fraction, job.state, job.message = 1.0, "done", "projected"
    except Exception as exc:  # noqa: BLE001 - the page shows the reason; the server keeps serving
        log.exception("projecting upload %s failed", job.token)
        job.state, job.message = "error", f"projection failed: {str(exc).splitlines()[0][:200]}"
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def start_projection(jobs: dict[str, UploadJob], lock: threading.Lock, token: str, run: Callable[[], None]) -> None:
    """Register the job and run `run` in a daemon thread, one projection at a time (`lock`)."""

    def serial() -> None:
        with lock:
            jobs[token].started = time.monotonic()
            run()

    jobs[token] = UploadJob(token, message="waiting for the projection before it", started=time.monotonic())
    threading.Thread(target=serial, name=f"project-{token}", daemon=True).start()
