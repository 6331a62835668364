"""Folder indexer: extensions, hidden entries, subjects, ids; on the demo photo folder and a hand-made tree."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from facelatent.datasets import index_folder
from facelatent.datasets.common import safe_id
from facelatent.demo_data.folder import CASES, SKIPPED, write_folder
from facelatent.demo_data.planted import PlantedSpace, make_directions
from facelatent.errors import InputFileError
from facelatent.generators import load_generator


@pytest.fixture(scope="module")
def demo_folder(tmp_path_factory, dcgan_path):
    root = tmp_path_factory.mktemp("folder")
    space = PlantedSpace(make_directions(np.random.default_rng(0)))
    records, _ = write_folder(root, load_generator(dcgan_path), np.random.default_rng(1), space)
    return root, pd.DataFrame(records)


def test_demo_folder_every_case_indexed_and_junk_skipped(demo_folder):
    root, cases = demo_folder
    df = index_folder(root)
    assert sorted(df.path) == sorted(CASES) == sorted(cases.path)
    assert not set(df.path) & set(SKIPPED)
    assert dict(zip(df.path, df.subject, strict=True))["people/alice/portrait_02.PNG"] == "alice"
    assert dict(zip(df.path, df.id, strict=True))["people/bob/holiday.jpeg"] == "people__bob__holiday.jpeg"
    assert df.id.is_unique and df.id.map(lambda i: "/" not in i).all()


def test_hand_made_tree(tmp_path):
    for rel in (
        "a.JPG",
        "x/b.webp",
        "x/y/c.bmp",
        "x/y/c.png",
        "x/.d.jpg",
        ".git/e.png",
        "x/f.gif",
        "x/g.jpeg.txt",
        "we ird/na me#1.png",
        "we_ird/na_me_1.png",
    ):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    df = index_folder(tmp_path)
    assert df.path.tolist() == [
        "a.JPG",
        "we ird/na me#1.png",
        "we_ird/na_me_1.png",
        "x/b.webp",
        "x/y/c.bmp",
        "x/y/c.png",
    ]
    assert df.subject.tolist() == [tmp_path.name, "we ird", "we_ird", "x", "y", "y"]
    assert df.id.is_unique  # the two 'weird' names collide after sanitising and get hash suffixes
    assert df.id.iloc[4] == safe_id("x/y/c.bmp") == "x__y__c.bmp"
    assert df.id.iloc[1].startswith("we_ird__na_me_1.png_") and df.id.iloc[2].startswith("we_ird__na_me_1.png_")
    assert index_folder(tmp_path, extensions=[".png"]).path.tolist() == [
        "we ird/na me#1.png",
        "we_ird/na_me_1.png",
        "x/y/c.png",
    ]


def test_empty_or_missing_folder(tmp_path):
    with pytest.raises(InputFileError, match="no image files"):
        index_folder(tmp_path)
    with pytest.raises(InputFileError, match="not found"):
        index_folder(tmp_path / "missing")
