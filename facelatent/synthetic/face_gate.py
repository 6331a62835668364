"""The face gate: every reference must be a face MTCNN finds with its five points where the ArcFace framing puts
them; failing identities get a fresh seeded latent.

A reference passes when, on its saved 112 px ArcFace crop (the framing of every generator's saved faces, see
render.saved_crops), MTCNN's most confident detection has confidence >= `min_confidence` and its five points lie
within `max_landmark_error` x the template's eye distance of the ArcFace template (largest of the five distances).
On 64 random demo DCGAN faces the error is 0.16 at the median, 0.34 at the 95th percentile and 0.39 at most;
a texture or pattern has no detection at all. A failing identity's k-th redraw is the latent of
z ~ N(0, I) from a generator seeded by hash(seed, "face_gate", identity, k), so runs are deterministic and
the cost is one render and one MTCNN pass (~6 ms on a CPU core) per identity per check.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from facelatent.align.crops import arcface_template
from facelatent.attributes.detections import FacePoints, best_detections
from facelatent.errors import FaceLatentError
from facelatent.synthetic.config import FaceGateConfig
from facelatent.synthetic.render import SAVED_CROP_SIZE, FacePipeline, cpu_generator, map_z, randn, stream_seed

log = logging.getLogger(__name__)

POINT_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


def to_uint8(images: torch.Tensor) -> list[np.ndarray]:
    """[B, 3, H, W] in [-1, 1] -> RGB uint8 HxWx3 arrays, as the crop PNGs store them."""
    pixels = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return list(pixels.permute(0, 2, 3, 1).cpu().numpy())


def landmark_error(points: np.ndarray, size: int = SAVED_CROP_SIZE) -> np.ndarray:
    """[N, 5, 2] -> [N]: the largest distance of a point to the ArcFace template at `size` px, in template eye
    distances (inf where no face was found)."""
    template = arcface_template(112) * (size / 112.0)
    error = np.linalg.norm(points - template[None], axis=2).max(axis=1) / np.linalg.norm(template[1] - template[0])
    return np.where(np.isfinite(error), error, np.inf)


@dataclass
class GateChecks:
    passed: np.ndarray  # [N] bool
    confidence: np.ndarray  # [N]
    error: np.ndarray  # [N]


def gate_verdict(found: FacePoints, cfg: FaceGateConfig, size: int = SAVED_CROP_SIZE) -> GateChecks:
    """Which detections (on ArcFace-framed `size` px crops) pass: confident enough, points near the template."""
    error = landmark_error(found.points, size)
    passed = (found.confidence >= cfg.min_confidence) & (error <= cfg.max_landmark_error)
    return GateChecks(passed, found.confidence, error)


def check_faces(pipe: FacePipeline, detector, w: torch.Tensor, cfg: FaceGateConfig, chunk: int = 512) -> GateChecks:
    """Render w [N, w_dim] as saved crops, `batch_size` at a time, and test each against the gate; `chunk` crops
    (19 MB of 112 px RGB at 512) are held at a time, so memory does not grow with N."""
    parts = [FacePoints(np.zeros(0), np.zeros((0, 5, 2)), np.zeros((0, 4)))]
    for lo in range(0, len(w), chunk):
        rows = w[lo : lo + chunk]
        crops = [pipe.saved_crops(rows[i : i + pipe.batch_size]) for i in range(0, len(rows), pipe.batch_size)]
        parts.append(best_detections(detector, [a for c in crops for a in to_uint8(c)]))
    found = FacePoints(*(np.concatenate([getattr(p, k) for p in parts]) for k in ("confidence", "points", "box")))
    return gate_verdict(found, cfg)


def redraw_latent(pipe: FacePipeline, seed: int, identity: int, k: int, truncation_psi: float) -> torch.Tensor:
    """[w_dim]: the k-th (1-based) replacement latent of `identity`, from its own seeded stream."""
    z = randn(cpu_generator(stream_seed(seed, "face_gate", identity, k)), (1, pipe.G.z_dim), pipe.device)
    return map_z(pipe.G, z, truncation_psi)[0]


class FaceGate:
    """Checks references and redraws the failing ones; counts redraws per identity (kept in checkpoints)."""

    def __init__(self, pipe: FacePipeline, detector, cfg: FaceGateConfig, seed: int, truncation_psi: float, n: int):
        self.pipe, self.detector, self.cfg = pipe, detector, cfg
        self.seed, self.truncation_psi = seed, truncation_psi
        self.redraws = np.zeros(n, np.int64)
        self.last: GateChecks | None = None

    def enforce(self, w: torch.Tensor, when: str = "") -> torch.Tensor:
        """w [N, w_dim] with every failing row replaced by its identity's next redraw, until all pass.

        Each round checks all N rows together: MTCNN's points move by ~1e-6 px with the batch they are found
        in, so only a whole-set check gives the verdict that a later check of the stored references repeats."""
        w = w.clone()
        checks = check_faces(self.pipe, self.detector, w, self.cfg)
        failing = np.flatnonzero(~checks.passed)
        if len(failing):
            log.info("face gate %s: %d of %d reference(s) fail: %s", when, len(failing), len(w), failing.tolist())
        while len(failing):
            if (self.redraws[failing] >= self.cfg.max_redraws).any():
                worst = int(failing[np.argmax(self.redraws[failing])])
                raise FaceLatentError(
                    f"face gate: identity {worst} failed {self.cfg.max_redraws} redraws; raise "
                    "references.face_gate.max_redraws or loosen min_confidence / max_landmark_error"
                )
            self.redraws[failing] += 1
            fresh = [
                redraw_latent(self.pipe, self.seed, int(i), int(k), self.truncation_psi)
                for i, k in zip(failing, self.redraws[failing], strict=True)
            ]
            w[failing] = torch.stack(fresh).to(w)
            checks = check_faces(self.pipe, self.detector, w, self.cfg)
            failing = np.flatnonzero(~checks.passed)
        self.last = checks
        return w

    def accepts(self, w: torch.Tensor, identity: int) -> np.ndarray:
        """[B] bool: which candidate latents of `identity` pass (reject's filter); counts the refused ones."""
        passed = check_faces(self.pipe, self.detector, w, self.cfg).passed
        self.redraws[identity] += int((~passed).sum())
        return passed

    def summary(self) -> dict:
        """The attrs references.h5 keeps: the settings and how many redraws it took."""
        return {
            **{k: getattr(self.cfg, k) for k in ("min_confidence", "max_landmark_error", "max_redraws")},
            "redrawn_identities": int((self.redraws > 0).sum()),
            "redraws": int(self.redraws.sum()),
        }
