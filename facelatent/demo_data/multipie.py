"""Multi-PIE fixture tree (DATASETS.md §2.9) with planted yaw, illumination and expression labels.

A protocol-shaped subset, not the full product: every recording has camera 05_1 under the frontal
flash 07 (expressions, E_lit-like); s1r01 and s1r02 (smile) add the other pose cameras at flash 07
(P_center_lit-like); s1r01 and s2r01 add 05_1 under flashes 00, 02, 03, 11, 12 (illumination:
two left and two right flashes per recording, so the left-vs-right SVM sees 44 faces, not 22).
The pictured face is always a frontal DCGAN face: yaw is a planted function of z only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facelatent.datasets.multipie import CAMERA_YAW, EXPRESSIONS, ILLUMINATION_GROUPS
from facelatent.demo_data.faces import Box, paste_face, render_faces, smooth_background, write_png, write_text
from facelatent.demo_data.planted import (
    ILLUMINATION_SCORE,
    PlantedSpace,
    binary_scores,
    identity_bases,
    jitter,
    yaw_score,
)

SUBJECTS = (1, 2, 5, 9, 14, 17, 27, 34, 40, 46, 52, 57)
RECORDINGS = {1: (1, 2), 2: (1, 2, 3), 4: (1, 2, 3)}
POSE_CAMERAS = ("11_0", "13_0", "14_0", "05_1", "05_0", "04_1", "24_0")
POSE_RECORDINGS = {(1, 1), (1, 2)}  # neutral and smile: both sides of the smile label span all poses
ILLUMINATION_FLASHES = (0, 2, 3, 11, 12)
ILLUMINATION_RECORDINGS = {(1, 1), (2, 1)}
EXPRESSION_NAMES = ["smile", "surprise", "squint", "scream"]
SCORE_NAMES = ["yaw", "illumination"] + EXPRESSION_NAMES
SKIPS_SESSION_2 = 2  # the third subject did not attend session 2 (subject_list says so too)


def subject_sessions(n_subjects: int) -> dict[int, tuple[int, ...]]:
    """subject id -> sessions attended."""
    ids = list(SUBJECTS[:n_subjects]) + [60 + i for i in range(max(0, n_subjects - len(SUBJECTS)))]
    return {sid: (1, 4) if k == SKIPS_SESSION_2 else (1, 2, 4) for k, sid in enumerate(ids)}


def shots(session: int, recording: int) -> list[tuple[str, int]]:
    """(camera, flash) pairs recorded for one session/recording in this fixture."""
    out = [("05_1", 7)]
    if (session, recording) in POSE_RECORDINGS:
        out += [(c, 7) for c in POSE_CAMERAS if c != "05_1"]
    if (session, recording) in ILLUMINATION_RECORDINGS:
        out += [("05_1", f) for f in ILLUMINATION_FLASHES]
    return out


def subject_list_text(sessions: dict[int, tuple[int, ...]]) -> str:
    """`id birthyear gender s1 s2 s3 s4` lines; one birth year written `57` (the known quirk)."""
    lines = []
    for k, (sid, attended) in enumerate(sessions.items()):
        year = "57" if k == 1 else str(1960 + 3 * k)
        gender = "Female" if k % 2 else "Male"
        lines.append(" ".join([f"{sid:03d}", year, gender] + ["1" if s in attended else "0" for s in (1, 2, 3, 4)]))
    return "\n".join(lines) + "\n"


def _plan(rng: np.random.Generator, sessions: dict[int, tuple[int, ...]]) -> list[dict]:
    """One record per image with its planted scores (expression scores shared by a recording)."""
    records = []
    for sid, attended in sessions.items():
        for session in attended:
            for recording in RECORDINGS[session]:
                expression = EXPRESSIONS[(session, recording)]
                expr = binary_scores(rng, np.array([expression == e for e in EXPRESSION_NAMES]))
                for camera, flash in shots(session, recording):
                    group = ILLUMINATION_GROUPS[flash]
                    t = [yaw_score(CAMERA_YAW[camera]), ILLUMINATION_SCORE[group], *expr]
                    stem = f"{sid:03d}_{session:02d}_{recording:02d}_{camera.replace('_', '')}_{flash:02d}"
                    rel = f"data/session{session:02d}/multiview/{sid:03d}/{recording:02d}/{camera}/{stem}.png"
                    records.append(
                        dict(
                            id=stem,
                            path=rel,
                            subject=f"{sid:03d}",
                            session=session,
                            recording=recording,
                            expression=expression,
                            camera=camera,
                            yaw=CAMERA_YAW[camera],
                            flash=flash,
                            illumination_group=group,
                            **{f"s_{n}": float(v) for n, v in zip(SCORE_NAMES, t, strict=True)},
                        )
                    )
    return records


def write_multipie(
    root: Path, G, rng: np.random.Generator, space: PlantedSpace, n_subjects: int
) -> tuple[list[dict], np.ndarray]:
    """Write `data/`, `meta/subject_list.txt` and a `.DS_Store`; return records and latents [N, z_dim]."""
    sessions = subject_sessions(n_subjects)
    records = _plan(rng, sessions)
    identity = dict(
        zip(sorted({r["subject"] for r in records}), identity_bases(rng, len(sessions), space.z_dim), strict=False)
    )
    base = np.stack([identity[r["subject"]] for r in records]) + jitter(rng, len(records), space.z_dim)
    scores = np.array([[r[f"s_{n}"] for n in SCORE_NAMES] for r in records])
    z = space.latents(base, SCORE_NAMES, scores)
    backgrounds: dict[tuple[str, int], np.ndarray] = {}  # one studio per subject and session
    for rec, face in zip(records, render_faces(G, z), strict=True):
        key = (rec["subject"], rec["session"])
        if key not in backgrounds:
            backgrounds[key] = smooth_background(rng, 480, 640, 3)
        size = int(rng.integers(176, 209))
        box = Box(int(rng.integers(280, 361)) - size // 2, int(rng.integers(60, 121)), size)
        rec["box"] = box.as_str()
        write_png(root / rec["path"], paste_face(backgrounds[key].copy(), face, box))
    write_text(root / "meta" / "subject_list.txt", subject_list_text(sessions))
    (root / "data" / "session01" / "multiview" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + bytes(26))
    return records, z
