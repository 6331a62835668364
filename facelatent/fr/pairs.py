"""LFW-style pair lists (`pairs.txt`) over a folder of aligned face crops, read into the `.bin` reader's `PairSet`.

The official format: an optional header, either `folds pairs_per_fold` (LFW: `10 300`, each fold holding 300
same-person then 300 different-person pairs) or a single pair count; then one pair per line, `name n1 n2` for two
images of one person and `name1 n1 name2 n2` for two people. Image paths come from `pattern` (str.format with
`name` and `num`), LFW's `{name}/{name}_{num:04d}.jpg` by default.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facelatent.errors import InputFileError
from facelatent.fr.binfile import PairSet, resize_rgb

LFW_PATTERN = "{name}/{name}_{num:04d}.jpg"


@dataclass(frozen=True)
class PairLine:
    left: tuple[str, int]  # (name, image number)
    right: tuple[str, int]
    same: bool
    line: int  # 1-based line number in the file, for errors


def _int(text: str, path: Path, line: int) -> int:
    try:
        return int(text)
    except ValueError:
        raise InputFileError(path, f"line {line}: '{text}' is not an image number") from None


def parse_pair_line(fields: list[str], path: Path, line: int) -> PairLine:
    """`name n1 n2` (same person) or `name1 n1 name2 n2` (two people)."""
    if len(fields) == 3:
        name, a, b = fields
        return PairLine((name, _int(a, path, line)), (name, _int(b, path, line)), True, line)
    if len(fields) == 4:
        name1, a, name2, b = fields
        return PairLine((name1, _int(a, path, line)), (name2, _int(b, path, line)), False, line)
    raise InputFileError(path, f"line {line}: expected 3 fields (same person) or 4 (two people), got {len(fields)}")


def _header(fields: list[str]) -> list[int] | None:
    """The header's numbers, or None when the first line is already a pair."""
    if 1 <= len(fields) <= 2 and all(f.isdigit() for f in fields):
        return [int(f) for f in fields]
    return None


def fold_ids(n_pairs: int, header: list[int] | None, path: Path) -> np.ndarray | None:
    """Fold id per pair from a `folds pairs_per_fold` header (None without one): LFW's folds are consecutive
    blocks of 2 x pairs_per_fold pairs (same then different), or of pairs_per_fold in lists that count both."""
    if header is None or len(header) == 1:
        if header is not None and header[0] != n_pairs:
            raise InputFileError(path, f"header announces {header[0]} pairs but the file lists {n_pairs}")
        return None
    folds, per_fold = header
    if folds < 2 or per_fold < 1:
        raise InputFileError(path, f"header '{folds} {per_fold}' is not 'folds pairs_per_fold'")
    if n_pairs == folds * 2 * per_fold:
        block = 2 * per_fold
    elif n_pairs == folds * per_fold:
        block = per_fold
    else:
        raise InputFileError(path, f"header '{folds} {per_fold}' does not fit the {n_pairs} pairs listed")
    return np.arange(n_pairs) // block


def read_pairs_file(path: str | Path) -> tuple[list[PairLine], np.ndarray | None]:
    """(pairs, fold id per pair or None) of a pairs.txt file."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "pair list does not exist")
    lines = [(i, ln.split()) for i, ln in enumerate(path.read_text().splitlines(), start=1) if ln.strip()]
    if not lines:
        raise InputFileError(path, "pair list is empty")
    header = _header(lines[0][1])
    pairs = [parse_pair_line(fields, path, i) for i, fields in lines[1 if header is not None else 0 :]]
    if not pairs:
        raise InputFileError(path, "pair list holds a header but no pairs")
    return pairs, fold_ids(len(pairs), header, path)


def read_rgb(path: Path) -> np.ndarray | None:
    """An image file as (H, W, 3) uint8 RGB, or None when cv2 cannot read it."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_pair_folder(
    pairs_txt: str | Path,
    root: str | Path,
    pattern: str = LFW_PATTERN,
    image_size: tuple[int, int] | None = None,
) -> PairSet:
    """The images of every pair in `pairs_txt` (paths `root / pattern`), decoded into one (2P, H, W, 3) array.

    The crops are expected to be aligned already; `image_size` (H, W), by default the first image's size, is
    what every image is resized to. An image listed twice is read once.
    """
    pairs_txt, root = Path(pairs_txt), Path(root)
    pairs, folds = read_pairs_file(pairs_txt)
    images: np.ndarray | None = None
    seen: dict[Path, int] = {}
    for p, pair in enumerate(pairs):
        for side, (name, num) in enumerate((pair.left, pair.right)):
            i = 2 * p + side
            file = root / pattern.format(name=name, num=num)
            if file in seen:
                images[i] = images[seen[file]]
                continue
            if not file.is_file():
                raise InputFileError(file, f"image of pair line {pair.line} in {pairs_txt} does not exist")
            rgb = read_rgb(file)
            if rgb is None:
                raise InputFileError(file, f"image of pair line {pair.line} in {pairs_txt} cannot be decoded")
            if images is None:
                size = tuple(image_size) if image_size is not None else rgb.shape[:2]
                images = np.empty((2 * len(pairs), *size, 3), dtype=np.uint8)
            images[i] = resize_rgb(rgb, images.shape[1:3])
            seen[file] = i
    issame = np.array([pair.same for pair in pairs], dtype=bool)
    return PairSet(images=images, issame=issame, folds=folds, source=str(pairs_txt))
