"""CMU Multi-PIE multiview indexer (DATASETS.md §2).

Layout: `data/session{S:02d}/multiview/{subj:03d}/{rec:02d}/{cam}/{subj}_{S}_{rec}_{camtok}_{flash}.png`.
The given root is either the distribution directory holding `data/` (and `meta/`) or `data/` itself;
`path` is relative to the given root. Filters are applied while walking, so an unselected camera's
directories are never listed.

Columns of `index_multipie()`:

| column | type | meaning |
|---|---|---|
| `id` | str | file stem, e.g. `001_01_01_051_07` (unique, filename-safe) |
| `path` | str | PNG path relative to the given root |
| `subject` | str | 3-digit subject id, e.g. `001` |
| `session` | int | 1..4 |
| `recording` | int | 1..3 |
| `expression` | str | from (session, recording), §2.2: neutral, smile, surprise, squint, disgust, scream |
| `camera` | str | directory form, e.g. `05_1` |
| `yaw` | int | degrees, §2.3 (`-` = bob's "left" side); elevated 08_1 = -30, 19_1 = +30 (approximate) |
| `pose_group` | str | synthetics groups: `left`, `frontal` (05_1), `right`; `elevated` for 08_1 / 19_1 |
| `flash` | int | shot 0..19 |
| `illumination_group` | str | synthetics groups §2.4: no_flash {0,19}, left {1,2,3}, frontal {7,16}, |
| | | right {11,12,13}, |
| | | left_discard {4,5,6,14,15}, right_discard {8,9,10,17,18} |
| `gender` | str | from `meta/subject_list.txt` (`""` when the file or subject is absent) |
| `birth_year` | int | idem (-1 when unknown; the known `57` quirk reads as 1957) |
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from facelatent.datasets.common import list_dirs, list_files, posix_rel
from facelatent.errors import InputFileError

log = logging.getLogger(__name__)

EXPRESSIONS = {
    (1, 1): "neutral",
    (1, 2): "smile",
    (2, 1): "neutral",
    (2, 2): "surprise",
    (2, 3): "squint",
    (3, 1): "neutral",
    (3, 2): "smile",
    (3, 3): "disgust",
    (4, 1): "neutral",
    (4, 2): "neutral",
    (4, 3): "scream",
}
CAMERA_YAW = {
    "11_0": -90,
    "12_0": -75,
    "09_0": -60,
    "08_0": -45,
    "13_0": -30,
    "14_0": -15,
    "05_1": 0,
    "05_0": 15,
    "04_1": 30,
    "19_0": 45,
    "20_0": 60,
    "01_0": 75,
    "24_0": 90,
    "08_1": -30,
    "19_1": 30,
}
POSE_GROUPS = {
    **{c: "left" for c in ("11_0", "12_0", "09_0", "08_0", "13_0", "14_0")},
    "05_1": "frontal",
    **{c: "right" for c in ("05_0", "04_1", "19_0", "20_0", "01_0", "24_0")},
    "08_1": "elevated",
    "19_1": "elevated",
}
ILLUMINATION_GROUPS = {
    0: "no_flash",
    19: "no_flash",
    **{f: "left" for f in (1, 2, 3)},
    **{f: "frontal" for f in (7, 16)},
    **{f: "right" for f in (11, 12, 13)},
    **{f: "left_discard" for f in (4, 5, 6, 14, 15)},
    **{f: "right_discard" for f in (8, 9, 10, 17, 18)},
}
COLUMNS = [
    "id",
    "path",
    "subject",
    "session",
    "recording",
    "expression",
    "camera",
    "yaw",
    "pose_group",
    "flash",
    "illumination_group",
    "gender",
    "birth_year",
]

_SESSION_DIR = re.compile(r"^session(\d{2})$")
_FILE = re.compile(r"^(\d{3})_(\d{2})_(\d{2})_(\d{3})_(\d{2})\.png$", re.IGNORECASE)


def locate_multipie_data(root: str | Path) -> Path:
    """The `data/` directory: `root/data` when it holds session dirs, else root itself."""
    root = Path(root)
    for candidate in (root / "data", root):
        if any(_SESSION_DIR.match(d) for d in list_dirs(candidate)):
            return candidate
    raise InputFileError(root, "no session01..session04 directories here or in data/ (not a Multi-PIE root)")


def read_subject_list(path: str | Path) -> pd.DataFrame:
    """`meta/subject_list.txt` (`id birthyear gender s1 s2 s3 s4`) -> subject, birth_year, gender, s1..s4."""
    path = Path(path)
    rows = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 7:
            raise InputFileError(path, f"line {lineno}: expected 7 fields, got {len(fields)}")
        year = int(fields[1])
        rows.append(
            dict(
                subject=f"{int(fields[0]):03d}",
                birth_year=year + 1900 if year < 100 else year,
                gender=fields[2],
                **{f"s{k}": int(fields[2 + k]) for k in range(1, 5)},
            )
        )
    return pd.DataFrame(rows, columns=["subject", "birth_year", "gender", "s1", "s2", "s3", "s4"])


def _subject_table(root: Path, data: Path) -> dict[str, tuple[str, int]]:
    """subject -> (gender, birth_year) from the first subject_list.txt found, else empty."""
    for path in (root / "meta" / "subject_list.txt", data.parent / "meta" / "subject_list.txt"):
        if path.is_file():
            table = read_subject_list(path)
            return {r.subject: (r.gender, int(r.birth_year)) for r in table.itertuples()}
    log.warning("%s: no meta/subject_list.txt; gender and birth_year left empty", root)
    return {}


def _wanted(value, allowed: set | None) -> bool:
    return allowed is None or value in allowed


def _as_set(values: Iterable | None, cast) -> set | None:
    return None if values is None else {cast(v) for v in values}


def _camera_dir_rows(
    cam_dir: Path, subject: str, session: int, recording: int, camera: str, flashes: set | None
) -> list[dict]:
    """Rows for the PNGs of one camera directory; names that disagree with their dirs are skipped (logged)."""
    rows = []
    for name in list_files(cam_dir, ".png"):
        m = _FILE.match(name)
        if not m or (m[1], int(m[2]), int(m[3]), m[4]) != (subject, session, recording, camera.replace("_", "")):
            log.warning("%s: name does not match its directories; skipped", cam_dir / name)
            continue
        flash = int(m[5])
        if not _wanted(flash, flashes):
            continue
        rows.append(
            dict(
                id=name[:-4],
                path=cam_dir / name,
                subject=subject,
                session=session,
                recording=recording,
                expression=EXPRESSIONS.get((session, recording), ""),
                camera=camera,
                yaw=CAMERA_YAW[camera],
                pose_group=POSE_GROUPS[camera],
                flash=flash,
                illumination_group=ILLUMINATION_GROUPS.get(flash, ""),
            )
        )
    return rows


def index_multipie(
    root: str | Path,
    sessions: Iterable[int] | None = None,
    recordings: Iterable[int] | None = None,
    cameras: Iterable[str] | None = None,
    flashes: Iterable[int] | None = None,
    expressions: Iterable[str] | None = None,
    subjects: Iterable[str | int] | None = None,
) -> pd.DataFrame:
    """Index the multiview PNGs, keeping only the given sessions/recordings/cameras/flashes/expressions/subjects.

    Each filter is a collection of allowed values (None = all); a row is kept when it passes all of them.
    E.g. synthetics' E_lit world: `sessions=None, cameras=["05_1"], flashes=[7]`.
    """
    root = Path(root)
    data = locate_multipie_data(root)
    sessions, recordings = _as_set(sessions, int), _as_set(recordings, int)
    cameras, flashes = _as_set(cameras, str), _as_set(flashes, int)
    expressions = _as_set(expressions, str)
    subjects = _as_set(subjects, lambda s: f"{int(s):03d}")
    unknown = (cameras or set()) - set(CAMERA_YAW)
    if unknown:
        raise ValueError(f"unknown Multi-PIE camera(s) {sorted(unknown)}; known: {sorted(CAMERA_YAW)}")
    rows = []
    for session_dir in list_dirs(data):
        m = _SESSION_DIR.match(session_dir)
        if not m or not _wanted(int(m[1]), sessions):
            continue
        session, multiview = int(m[1]), data / session_dir / "multiview"
        for subject in list_dirs(multiview):
            if not _wanted(subject, subjects):
                continue
            for rec_dir in list_dirs(multiview / subject):
                recording = int(rec_dir) if rec_dir.isdigit() else -1
                if not (
                    recording > 0
                    and _wanted(recording, recordings)
                    and _wanted(EXPRESSIONS.get((session, recording), ""), expressions)
                ):
                    continue
                for camera in list_dirs(multiview / subject / rec_dir):
                    if camera not in CAMERA_YAW:
                        log.warning("%s: unknown camera directory; skipped", multiview / subject / rec_dir / camera)
                        continue
                    if _wanted(camera, cameras):
                        rows += _camera_dir_rows(
                            multiview / subject / rec_dir / camera, subject, session, recording, camera, flashes
                        )
    people = _subject_table(root, data)
    for row in rows:
        row["path"] = posix_rel(row["path"], root)
        row["gender"], row["birth_year"] = people.get(row["subject"], ("", -1))
    df = pd.DataFrame(rows, columns=COLUMNS)
    return df.astype({c: np.int64 for c in ("session", "recording", "yaw", "flash", "birth_year")})
