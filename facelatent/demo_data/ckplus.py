"""CK+ fixture tree (DATASETS.md §1.10) with planted emotion and AU labels.

Per sequence the latent moves linearly from a neutral first frame (every planted score negative)
to the peak last frame (scores from the emotion and AU rules), so a sequence animates.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facelatent.align.template import template_landmarks_for_box
from facelatent.datasets.ckplus import EMOTIONS, format_aus
from facelatent.demo_data.faces import (
    Box,
    face_anchors,
    matlab_ascii,
    paste_face,
    render_faces,
    smooth_background,
    write_png,
    write_text,
)
from facelatent.demo_data.planted import (
    AU_DIRECTIONS,
    PlantedSpace,
    au_intensity,
    au_scores,
    binary_scores,
    identity_bases,
    jitter,
)

SUBJECTS = ("S005", "S010", "S011", "S014", "S022", "S026", "S032", "S037", "S042", "S050", "S052", "S055")
SCORE_NAMES = ["happy", "surprise", "au1", "au2", "au4", "au6", "au12", "au25"]
AU_NUMBERS = [1, 2, 4, 6, 12, 25]
PRESENCE_ONLY_AUS = {25}  # written with intensity 0 ("present, intensity not coded")
EMOTION_CYCLE = (5, 7, 1, 5, 6, 7, 3, 5, 4, 7, 2, 5)
EMOTION_AUS = {5: {6, 12}, 7: {1, 2, 25}, 1: {4}, 6: {1, 4}, 4: {1, 2, 4, 25}, 3: {4}, 2: {12}}
EXTRA_AU_PROB = 0.15  # chance of each AU not implied by the emotion (emotions without a planted direction)
PLANTED_EMOTIONS = {5: "happy", 7: "surprise"}  # emotion code -> its planted direction
UNLABELLED_AU_PROB = 0.35  # chance of each AU in a sequence without an emotion file
DS_STORE = b"\x00\x00\x00\x01Bud1" + bytes(26)


@dataclass(frozen=True)
class SequenceSpec:
    subject: str
    sequence: str
    emotion: int | None  # code written to the Emotion file, None = unlabelled
    emotion_dir: str  # "file", "empty" (empty Emotion dir) or "absent" (no Emotion dir)
    n_frames: int
    rgb: bool  # 640x480 RGB instead of 640x490 grey


def subject_ids(n: int) -> list[str]:
    return list(SUBJECTS[:n]) + [f"S{100 + i:03d}" for i in range(max(0, n - len(SUBJECTS)))]


def plan_sequences(n_subjects: int, n_frames: int) -> list[SequenceSpec]:
    """S005/S010 carry the quirks of §1.10; other subjects get 2 or 3 labelled sequences (`004` sparse)."""
    if n_subjects < 2 or n_frames < 2:
        raise ValueError("CK+ fixture needs at least 2 subjects and 2 frames per sequence")
    specs = [
        SequenceSpec("S005", "001", 5, "file", n_frames, False),
        SequenceSpec("S005", "002", None, "empty", n_frames, False),
        SequenceSpec("S010", "001", None, "absent", n_frames, True),
        SequenceSpec("S010", "002", 7, "file", max(n_frames, 11), False),
    ]  # frames >= 10: numeric sort
    cycle = itertools.cycle(EMOTION_CYCLE)
    for i, subject in enumerate(subject_ids(n_subjects)[2:]):
        for seq in ("001", "002", "004") if i % 2 else ("001", "002"):
            specs.append(SequenceSpec(subject, seq, next(cycle), "file", n_frames, False))
    return specs


def present_aus(rng: np.random.Generator, emotion: int | None) -> set[int]:
    """AUs present at the peak: those of the emotion plus random extras; at least one.

    Emotions with a planted direction get no extras: their whole expression is one move along it.
    """
    if emotion is None:
        aus = {au for au in AU_NUMBERS if rng.random() < UNLABELLED_AU_PROB}
        return aus or {int(rng.choice(AU_NUMBERS))}
    if emotion in PLANTED_EMOTIONS:
        return set(EMOTION_AUS[emotion])
    return EMOTION_AUS[emotion] | {au for au in AU_NUMBERS if rng.random() < EXTRA_AU_PROB}


def carried_aus(emotion: int | None) -> list[int]:
    """AUs that follow the emotion's planted direction (their parent), not a move of their own."""
    parent = PLANTED_EMOTIONS.get(emotion)
    return [au for au in AU_NUMBERS if parent is not None and AU_DIRECTIONS[f"au{au}"][0] == parent]


def sequence_scores(rng: np.random.Generator, emotion: int | None, aus: set[int]) -> tuple[np.ndarray, np.ndarray]:
    """Scores [len(SCORE_NAMES)] at the neutral first frame and at the peak.

    Every score is negative at the neutral frame. For a planted emotion the latent moves only along
    its direction: the AUs it carries change by cos(AU, emotion) times the emotion's change, their
    neutral scores drawn so that this move takes them from absent to present. So the happy-vs-neutral
    contrast lies along the planted happy direction alone.
    """
    emo = binary_scores(rng, np.array([emotion == 5, emotion == 7]))
    neutral = binary_scores(rng, np.zeros(len(SCORE_NAMES), bool))
    peak = np.concatenate([emo, au_scores(rng, np.array([au in aus for au in AU_NUMBERS]))])
    carried = carried_aus(emotion)
    if carried:
        k = SCORE_NAMES.index(PLANTED_EMOTIONS[emotion])
        peak = np.where(np.arange(len(SCORE_NAMES)) == k, peak, neutral)  # everything else stays put
        for au in carried:
            j = SCORE_NAMES.index(f"au{au}")
            rise = AU_DIRECTIONS[f"au{au}"][1] * (peak[k] - neutral[k])
            neutral[j] = -rng.uniform(0.25, rise - 0.25)
            peak[j] = neutral[j] + rise
    return neutral, peak


def facs_pairs(scores: np.ndarray) -> list[tuple[int, int]]:
    """(AU, intensity) lines of the FACS file from the peak AU scores."""
    pairs = []
    for au, score in zip(AU_NUMBERS, scores[2:], strict=False):
        k = au_intensity(score)
        if k >= 0:
            pairs.append((au, 0 if au in PRESENCE_ONLY_AUS else k))
    return pairs


def _emotion_code(spec: SequenceSpec, role: str) -> int:
    """What an indexer should report: the file's code at the peak, 0 (neutral) at frame 1, else -1."""
    if role == "peak":
        return -1 if spec.emotion is None else spec.emotion
    return 0 if role == "neutral" else -1


def _box_track(rng: np.random.Generator, n_frames: int, height: int) -> list[Box]:
    """A face box drifting a few pixels over the sequence."""
    size = int(rng.integers(176, 209))
    x0 = int(rng.integers(320 - size // 2 - 40, 320 - size // 2 + 41))
    y0 = int(rng.integers(height // 2 - size // 2 - 30, height // 2 - size // 2 + 21))
    dx, dy = rng.integers(-4, 5, size=2)
    alphas = np.linspace(0, 1, n_frames)
    return [Box(int(round(x0 + a * dx)), int(round(y0 + a * dy)), size) for a in alphas]


def _write_labels(root: Path, spec: SequenceSpec, last_stem: str, pairs: list[tuple[int, int]]) -> None:
    rel = Path(spec.subject) / spec.sequence
    write_text(root / "FACS" / rel / f"{last_stem}_facs.txt", matlab_ascii(pairs))
    if spec.emotion_dir == "file":
        write_text(root / "Emotion" / rel / f"{last_stem}_emotion.txt", matlab_ascii([[spec.emotion]]))
    elif spec.emotion_dir == "empty":
        (root / "Emotion" / rel).mkdir(parents=True, exist_ok=True)


def write_ckplus(
    root: Path,
    G,
    rng: np.random.Generator,
    space: PlantedSpace,
    n_subjects: int,
    n_frames: int,
    mtcnn_weights: str | Path | None = None,
) -> tuple[list[dict], np.ndarray]:
    """Write the CK+ tree under root; return one ground-truth record per frame and the latents [N, z_dim]."""
    specs = plan_sequences(n_subjects, n_frames)
    subjects = sorted({s.subject for s in specs})
    identity = dict(zip(subjects, identity_bases(rng, len(subjects), space.z_dim), strict=True))
    records, latents = [], []
    for spec in specs:
        aus = present_aus(rng, spec.emotion)
        t_neutral, t_peak = sequence_scores(rng, spec.emotion, aus)
        alphas = np.linspace(0.0, 1.0, spec.n_frames)[:, None]
        scores = (1 - alphas) * t_neutral + alphas * t_peak
        base = identity[spec.subject] + jitter(rng, spec.n_frames, space.z_dim)
        latents.append(space.latents(base, SCORE_NAMES, scores))
        boxes = _box_track(rng, spec.n_frames, 480 if spec.rgb else 490)
        pairs = facs_pairs(t_peak)
        for f in range(spec.n_frames):
            role = "peak" if f == spec.n_frames - 1 else "neutral" if f == 0 else "other"
            code = _emotion_code(spec, role)
            records.append(
                dict(
                    id=f"{spec.subject}_{spec.sequence}_{f + 1:08d}",
                    subject=spec.subject,
                    sequence=spec.sequence,
                    frame=f + 1,
                    frame_role=role,
                    emotion=EMOTIONS[code] if code >= 0 else "",
                    emotion_code=code,
                    aus=format_aus(pairs) if role == "peak" else "",
                    rgb=spec.rgb,
                    emotion_dir=spec.emotion_dir,
                    box=boxes[f].as_str(),
                    **{f"s_{n}": float(v) for n, v in zip(SCORE_NAMES, scores[f], strict=True)},
                )
            )
        _write_labels(root, spec, records[-1]["id"], pairs)
    z = np.concatenate(latents)
    _write_frames(root, G, rng, records, z, mtcnn_weights)
    _write_ds_store(root)
    return records, z


def _write_frames(
    root: Path, G, rng: np.random.Generator, records: list[dict], z: np.ndarray, mtcnn_weights: str | Path | None = None
) -> None:
    """Render every frame, paste it on its sequence's background, write PNG + 68 landmarks."""
    faces = render_faces(G, z)
    anchors = face_anchors(faces, grey=np.array([not rec["rgb"] for rec in records]), mtcnn_weights=mtcnn_weights)
    backgrounds: dict[tuple[str, str], np.ndarray] = {}
    for rec, face, anchor in zip(records, faces, anchors, strict=True):
        key = (rec["subject"], rec["sequence"])
        if key not in backgrounds:
            bg = smooth_background(rng, 480, 640, 3) if rec["rgb"] else smooth_background(rng, 490, 640, 1)[..., 0]
            backgrounds[key] = bg
        x, y, size, _ = map(int, rec["box"].split(","))
        image = paste_face(backgrounds[key].copy(), face, Box(x, y, size))
        rel = Path(rec["subject"]) / rec["sequence"]
        write_png(root / "cohn-kanade-images" / rel / f"{rec['id']}.png", image)
        landmarks = template_landmarks_for_box(x, y, size, size, anchors=anchor)
        write_text(root / "Landmarks" / rel / f"{rec['id']}_landmarks.txt", matlab_ascii(landmarks))


def _write_ds_store(root: Path) -> None:
    """macOS debris where real copies have it: a subject dir, a sequence dir, an Emotion subject dir."""
    for rel in ("cohn-kanade-images/S005", "cohn-kanade-images/S005/001", "Emotion/S005"):
        (root / rel).mkdir(parents=True, exist_ok=True)
        (root / rel / ".DS_Store").write_bytes(DS_STORE)
