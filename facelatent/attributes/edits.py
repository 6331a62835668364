"""evaluate_direction's measurements: held-out latents moved along a direction, rendered, scored and embedded.

Edits use the edit grids' units (facelatent/directions/edit.py `move`, relative mode): strength t adds t unit
normals to the latent, so strength 0 is the unedited sample every change is measured from.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from tqdm.auto import tqdm

from facelatent.attributes.evaluate import zero_index
from facelatent.attributes.sampling import batches
from facelatent.attributes.scoring import Scorer, checked_scores
from facelatent.directions.edit import move
from facelatent.generators import GeneratorBase
from facelatent.grids import render_uint8

Embed = Callable[[np.ndarray], np.ndarray]


def angles_deg(embeddings: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Angle in degrees between matching rows of [..., N, D] embeddings and [N, D] references."""
    a = embeddings / np.linalg.norm(embeddings, axis=-1, keepdims=True).clip(1e-12)
    b = reference / np.linalg.norm(reference, axis=-1, keepdims=True).clip(1e-12)
    return np.degrees(np.arccos(np.clip((a * b).sum(-1), -1.0, 1.0)))


def measure_edits(
    G: GeneratorBase,
    ws: np.ndarray,
    normal: np.ndarray,
    strengths: Sequence[float],
    scorer: Scorer,
    names: Sequence[str],
    embed: Embed,
    batch_size: int,
    noise_mode: str = "const",
    strip_rows: int = 4,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores [S, N, P], FR angles to the unedited render [S, N] (degrees) and the first `strip_rows` samples'
    renders [rows, S, R, R, 3] of latents `ws` [N, num_ws, w_dim] moved by each strength along `normal`."""
    assert ws.ndim == 3, f"ws: expected [N, num_ws, w_dim], got {list(ws.shape)}"
    n, rows = len(ws), min(strip_rows, len(ws))
    scores = np.full((len(strengths), n, len(names)), np.nan)
    embeddings: list[np.ndarray] = []
    strip = np.zeros((rows, len(strengths), G.img_resolution, G.img_resolution, 3), np.uint8)
    steps = [(i, t, part) for i, t in enumerate(strengths) for part in batches(n, batch_size)]
    per_strength: dict[int, list[np.ndarray]] = {i: [] for i in range(len(strengths))}
    for i, t, part in tqdm(steps, desc="edit", disable=not progress, mininterval=5.0):
        images = render_uint8(G, move(ws[part], normal, t, "relative"), noise_mode)
        scores[i, part] = checked_scores(scorer(images), names, len(images))
        per_strength[i].append(np.asarray(embed(images), np.float64))
        lo, hi = part.start, min(part.stop, rows)
        if hi > lo:
            strip[lo:hi, i] = images[: hi - lo]
    embeddings = np.stack([np.concatenate(per_strength[i]) for i in range(len(strengths))])
    angles = angles_deg(embeddings, embeddings[zero_index(strengths)])
    return scores, angles, strip
