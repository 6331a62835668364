"""docs/PREDICTORS.md: the predictor table as Markdown, generated from `predictor_table()`
(`python -m facelatent.attributes.docs docs/PREDICTORS.md`; a test checks the file is current)."""

from __future__ import annotations

import sys
from pathlib import Path

from facelatent.attributes.predictors import predictor_table

HEADER = """# Attribute predictors

Offline scores on RGB images (`facelatent.attributes.predictors.score_images`), one column each. Every one needs
a face: MTCNN's most confident face per image, once per batch; `dlib68` predictors also place dlib's 68 points
inside MTCNN's box (on a crop upscaled to 256 px, so 64 px renders work). An image without a face gets NaN in
every column. Generated from the predictors' docstrings by `python -m facelatent.attributes.docs
docs/PREDICTORS.md`; do not edit by hand.
"""


def predictor_markdown() -> str:
    """The header and one table row per predictor: name, needs, unit, what it measures, where it fails."""
    rows = ["| name | needs | unit | measures | fails on |", "|---|---|---|---|---|"]
    for p in predictor_table().values():
        cells = [f"`{p.name}`", p.needs, p.unit, p.measures, p.fails_on]
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return HEADER + "\n" + "\n".join(rows) + "\n"


def main(argv: list[str]) -> None:
    from facelatent.store import atomic_write_text

    if len(argv) != 1:
        raise SystemExit("usage: python -m facelatent.attributes.docs docs/PREDICTORS.md")
    atomic_write_text(Path(argv[0]), predictor_markdown())


if __name__ == "__main__":
    main(sys.argv[1:])
