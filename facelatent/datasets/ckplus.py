"""CK+ (Extended Cohn-Kanade) indexer: one row per selected frame, labels read from the label trees.

Layout (DATASETS.md §1): four parallel trees `cohn-kanade-images/`, `Emotion/`, `FACS/`,
`Landmarks/`, each `SXXX/NNN/<files>`, found by name one or two levels below the given root
(`Emotion_labels`, `FACS_labels` and `extended-cohn-kanade-images` are accepted aliases).

Columns of `index_ckplus()`:

| column | type | meaning |
|---|---|---|
| `id` | str | frame stem, e.g. `S005_001_00000006` (unique, filename-safe) |
| `path` | str | PNG path relative to the given root |
| `subject` | str | `S005` |
| `sequence` | str | `001` |
| `frame` | int | 1-based frame index from the file name |
| `n_frames` | int | PNG frames in the sequence |
| `frame_role` | str | `peak` (the labelled last frame), `neutral` (first frame) or `other` |
| `emotion` | str | peak: label of the Emotion file or `""` (no file); neutral: `neutral`; other: `""` |
| `emotion_code` | int | 0..7 as in §1.5, or -1 where `emotion` is empty |
| `aus` | str | peak rows: `AU:intensity` joined by `;` (`1:2;12:0;25:3`; 0 = present, not coded); else `""` |
| `facs` | str | FACS file relative to the root on peak rows; `""` = not coded (a missing one is logged) |
| `landmarks` | str | landmarks file of this frame relative to the root, or `""` |

AUs absent from `aus` are absent (on a peak row with a FACS file). `au_table()` expands `aus`
into one int column per AU (`au{k}`: -1 absent, 0 present without intensity, 1..5 A..E).
This module owns the `aus` format: `format_aus` writes it, `parse_facs` reads it, and `parse_aus`,
`has_facs` and `au_intensity` (used by the directions and the AU classifier) are built on them.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from facelatent.datasets.common import list_dirs, list_files, posix_rel
from facelatent.errors import InputFileError

log = logging.getLogger(__name__)

EMOTIONS = {0: "neutral", 1: "anger", 2: "contempt", 3: "disgust", 4: "fear", 5: "happy", 6: "sadness", 7: "surprise"}
FRAME_SELECTIONS = ("peak", "peak+neutral", "all")
COLUMNS = [
    "id",
    "path",
    "subject",
    "sequence",
    "frame",
    "n_frames",
    "frame_role",
    "emotion",
    "emotion_code",
    "aus",
    "facs",
    "landmarks",
]

# Canonical name first, then aliases seen in real extractions (§1.1).
TREE_NAMES = {
    "images": ("cohn-kanade-images", "extended-cohn-kanade-images"),
    "emotion": ("Emotion", "Emotion_labels"),
    "facs": ("FACS", "FACS_labels"),
    "landmarks": ("Landmarks",),
}

_FRAME_PNG = re.compile(r"^(?P<stem>.+_(?P<frame>\d+))\.png$", re.IGNORECASE)
_LABEL_TXT = re.compile(r"^(?P<stem>.+_(?P<frame>\d+))_(?P<kind>emotion|facs|landmarks)\.txt$", re.IGNORECASE)


@dataclass(frozen=True)
class CKPlusTrees:
    """Where the four trees of one CK+ copy are (None: that tree is absent)."""

    root: Path
    images: Path
    emotion: Path | None
    facs: Path | None
    landmarks: Path | None


def _find_tree(root: Path, names: tuple[str, ...]) -> Path | None:
    """The tree named `names[0]` (else an alias) at depth 1 or 2 below root; canonical and shallow win."""
    found: list[tuple[int, int, str]] = []
    for child in list_dirs(root):
        if child in names:
            found.append((names.index(child), 1, child))
        for grandchild in list_dirs(root / child):
            if grandchild in names:
                found.append((names.index(grandchild), 2, f"{child}/{grandchild}"))
    return root / min(found)[2] if found else None


def locate_ckplus_trees(root: str | Path) -> CKPlusTrees:
    """Find the four trees; a missing image tree is an error naming the root, missing label trees are logged."""
    root = Path(root)
    if not root.is_dir():
        raise InputFileError(root, "CK+ root not found (expected a directory)")
    trees = {key: _find_tree(root, names) for key, names in TREE_NAMES.items()}
    if trees["images"] is None:
        raise InputFileError(root, "no 'cohn-kanade-images' directory one or two levels below this CK+ root")
    for key in ("emotion", "facs", "landmarks"):
        if trees[key] is None:
            log.warning("%s: no %s tree found; its labels are left empty", root, TREE_NAMES[key][0])
    return CKPlusTrees(root=root, **trees)


def _read_numbers(path: Path) -> np.ndarray:
    """All whitespace-separated numbers of a MATLAB `save -ascii` file as a 2-D float array."""
    try:
        rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
        return np.array(rows, dtype=np.float64).reshape(len(rows), -1)
    except (OSError, ValueError) as exc:
        raise InputFileError(path, f"cannot parse numbers: {exc}") from exc


def read_emotion_file(path: str | Path) -> int:
    """The emotion code (0..7) of a `_emotion.txt` file."""
    path = Path(path)
    values = _read_numbers(path).ravel()
    if values.size != 1 or int(values[0]) not in EMOTIONS or values[0] != int(values[0]):
        raise InputFileError(path, f"expected one emotion code 0..7, got {values.tolist()}")
    return int(values[0])


def read_facs_file(path: str | Path) -> list[tuple[int, int]]:
    """(AU, intensity) pairs of a `_facs.txt` file, sorted by AU; intensity 0 = present, not coded."""
    path = Path(path)
    values = _read_numbers(path)
    if values.size == 0:
        return []
    if values.shape[1] != 2:
        raise InputFileError(path, f"expected 2 columns (AU, intensity), got {values.shape[1]}")
    return sorted((int(au), int(k)) for au, k in values)


def read_landmarks_file(path: str | Path) -> np.ndarray:
    """The 68 (x, y) points [68,2] float64 of a `_landmarks.txt` file."""
    path = Path(path)
    values = _read_numbers(path)
    if values.shape != (68, 2):
        raise InputFileError(path, f"expected 68 rows of (x, y), got shape {list(values.shape)}")
    return values


def format_aus(pairs: list[tuple[int, int]]) -> str:
    """`[(1, 2), (12, 0)]` -> `"1:2;12:0"`: the one writer of the `aus` column."""
    return ";".join(f"{au}:{k}" for au, k in sorted(pairs))


def parse_facs(text: str) -> list[tuple[int, int]]:
    """`"1:2;12:0"` -> `[(1, 2), (12, 0)]` in the string's order: the one reader of the `aus` column.

    `""` -> `[]`; empty entries are skipped. Raises ValueError on an entry that is not `AU:intensity`.
    """
    pairs = []
    for part in text.split(";"):
        if not part:
            continue
        number, sep, intensity = part.partition(":")
        if not sep or not number.strip().isdigit() or not intensity.strip().isdigit():
            raise ValueError(f"FACS entry '{part}' in '{text}' is not AU:intensity")
        pairs.append((int(number), int(intensity)))
    return pairs


def parse_aus(text: str) -> dict[int, int]:
    """`"1:2;12:0"` -> `{1: 2, 12: 0}`; `""`, a blank string or a missing value (not a string) -> `{}`."""
    if not isinstance(text, str) or not text.strip():
        return {}
    return dict(parse_facs(text))


def has_facs(aus: pd.Series) -> np.ndarray:
    """Rows whose `aus` holds FACS codes (CK+ codes 327 of 593 sequences; the rest are empty)."""
    return (aus.astype(str).str.len() > 0).to_numpy()


def au_intensity(aus: pd.Series, au: int) -> np.ndarray:
    """Intensity of one AU from `aus` strings (`1:2;12:0`): -1 absent, 0 present uncoded, 1..5.

    The first entry of the AU counts. A missing value is read as its text (`nan`), so it raises ValueError
    like any entry that is not `AU:intensity`.
    """
    return np.array([next((k for a, k in parse_facs(str(t)) if a == au), -1) for t in aus], dtype=np.int64)


def au_table(df: pd.DataFrame, aus: list[int] | None = None) -> pd.DataFrame:
    """One int column `au{k}` per AU (default: every AU seen): -1 absent, 0 present (no intensity), 1..5."""
    parsed = [parse_aus(t) for t in df["aus"]]
    if aus is None:
        aus = sorted({au for p in parsed for au in p})
    data = {f"au{au}": [p.get(au, -1) for p in parsed] for au in aus}
    return pd.DataFrame(data, index=df.index, dtype=np.int64)


def _label_files(tree: Path | None, subject: str, sequence: str, kind: str) -> list[tuple[int, Path]]:
    """(frame, path) of the `_{kind}.txt` files of one sequence, sorted by frame."""
    if tree is None:
        return []
    out = []
    for name in list_files(tree / subject / sequence, f"_{kind}.txt"):
        m = _LABEL_TXT.match(name)
        if m:
            out.append((int(m["frame"]), tree / subject / sequence / name))
    return sorted(out)


def _frames(seq_dir: Path) -> list[tuple[int, str]]:
    """(frame, filename) of the PNG frames, sorted numerically by the frame index."""
    out = []
    for name in list_files(seq_dir, ".png"):
        m = _FRAME_PNG.match(name)
        if m:
            out.append((int(m["frame"]), name))
    return sorted(out)


def _pick_label(files: list[tuple[int, Path]], what: str) -> tuple[int, Path] | None:
    """The label file of a sequence; several files (not expected) -> the highest frame, logged."""
    if len(files) > 1:
        log.warning("%s: %d %s files in one sequence; using the last", files[-1][1].parent, len(files), what)
    return files[-1] if files else None


def _peak_frame(frames: list[tuple[int, str]], labels: list[tuple[int, Path] | None]) -> int:
    """The frame a label file names if that PNG exists, else the highest frame (§1.8)."""
    present = {f for f, _ in frames}
    for label in labels:
        if label is not None and label[0] in present:
            return label[0]
    return frames[-1][0]


def _sequence_rows(trees: CKPlusTrees, subject: str, sequence: str, selection: str) -> list[dict]:
    """Rows of one sequence for the chosen frame selection."""
    frames = _frames(trees.images / subject / sequence)
    if not frames:
        log.warning("%s: no PNG frames; sequence skipped", trees.images / subject / sequence)
        return []
    emotion_file = _pick_label(_label_files(trees.emotion, subject, sequence, "emotion"), "emotion")
    facs_file = _pick_label(_label_files(trees.facs, subject, sequence, "facs"), "FACS")
    peak = _peak_frame(frames, [emotion_file, facs_file])
    first = frames[0][0]
    if facs_file is None:
        log.warning("%s/%s: no FACS file; AUs of the peak frame left empty", subject, sequence)
    rows = []
    for frame, name in frames:
        role = "peak" if frame == peak else "neutral" if frame == first else "other"
        if (selection == "peak" and role != "peak") or (selection == "peak+neutral" and role == "other"):
            continue
        stem = name[:-4]
        code = -1
        if role == "peak" and emotion_file is not None:
            code = read_emotion_file(emotion_file[1])
        elif role == "neutral":
            code = 0
        landmarks = trees.landmarks / subject / sequence / f"{stem}_landmarks.txt" if trees.landmarks else None
        rows.append(
            dict(
                id=stem,
                path=posix_rel(trees.images / subject / sequence / name, trees.root),
                subject=subject,
                sequence=sequence,
                frame=frame,
                n_frames=len(frames),
                frame_role=role,
                emotion=EMOTIONS[code] if code >= 0 else "",
                emotion_code=code,
                aus=format_aus(read_facs_file(facs_file[1])) if role == "peak" and facs_file else "",
                facs=posix_rel(facs_file[1], trees.root) if role == "peak" and facs_file else "",
                landmarks=posix_rel(landmarks, trees.root) if landmarks is not None and landmarks.is_file() else "",
            )
        )
    return rows


def index_ckplus(root: str | Path, frames: str = "peak") -> pd.DataFrame:
    """Index a CK+ copy: `frames` = `peak` (one row per sequence), `peak+neutral` or `all`.

    Every sequence with PNG frames is kept, labelled or not (no Emotion file -> empty `emotion`).
    """
    if frames not in FRAME_SELECTIONS:
        raise ValueError(f"frames must be one of {FRAME_SELECTIONS}, got {frames!r}")
    trees = locate_ckplus_trees(root)
    rows = []
    for subject in list_dirs(trees.images):
        for sequence in list_dirs(trees.images / subject):
            rows += _sequence_rows(trees, subject, sequence, frames)
    df = pd.DataFrame(rows, columns=COLUMNS)
    if df["id"].duplicated().any():
        dup = df.loc[df["id"].duplicated(), "path"].iloc[0]
        raise InputFileError(Path(root) / dup, "duplicate frame id in the CK+ tree")
    return df.astype({"frame": np.int64, "n_frames": np.int64, "emotion_code": np.int64})
