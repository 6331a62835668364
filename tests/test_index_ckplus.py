"""CK+ indexer against the planted ground truth, and on a quirk tree built here."""

from __future__ import annotations

import logging
import shutil

import pandas as pd
import pytest

from facelatent.datasets import au_table, index_ckplus
from facelatent.datasets.ckplus import (
    au_intensity,
    format_aus,
    has_facs,
    parse_aus,
    parse_facs,
    read_emotion_file,
    read_facs_file,
    read_landmarks_file,
)
from facelatent.demo_data import make_demo_data
from facelatent.errors import InputFileError

SIZES = dict(ckplus_subjects=4, ckplus_frames=3, multipie_subjects=1, ffhq_images=3, folder=False)


@pytest.fixture(scope="module")
def demo(tmp_path_factory, dcgan_path):
    return make_demo_data(tmp_path_factory.mktemp("demo"), dcgan_path, seed=1, sizes=SIZES)


@pytest.fixture(scope="module")
def truth(demo) -> pd.DataFrame:
    return pd.read_csv(
        demo["ground_truth"] / "ckplus_labels.tsv", sep="\t", keep_default_na=False, dtype={"sequence": str, "aus": str}
    ).set_index("id")


def test_every_peak_frame_indexed_with_its_labels(demo, truth):
    df = index_ckplus(demo["ckplus"])
    peaks = truth[truth.frame_role == "peak"]
    assert sorted(df.id) == sorted(peaks.index)
    assert df.id.is_unique and (df.frame_role == "peak").all()
    got = df.set_index("id").loc[peaks.index]
    for col in ("path", "subject", "sequence", "frame", "emotion", "emotion_code", "aus"):
        assert got[col].tolist() == peaks[col].tolist(), col
    assert (demo["ckplus"] / df.path).map(lambda p: p.is_file()).all()


def test_unlabelled_sequences_are_kept_with_empty_emotion(demo):
    df = index_ckplus(demo["ckplus"]).set_index("id")
    for seq_id in ("S005_002_00000003", "S010_001_00000003"):  # empty Emotion dir / no Emotion dir
        row = df.loc[seq_id]
        assert row.emotion == "" and row.emotion_code == -1 and row.aus != "" and row.facs != ""
    assert df.loc["S005_001_00000003", "emotion"] == "happy"
    assert df.loc["S010_002_00000011", "frame"] == 11  # the 11-frame sequence: numeric sort, peak = 11


def test_frame_selections(demo, truth):
    both = index_ckplus(demo["ckplus"], frames="peak+neutral")
    everything = index_ckplus(demo["ckplus"], frames="all")
    assert sorted(everything.id) == sorted(truth.index)
    assert everything.set_index("id").loc[truth.index, "frame_role"].tolist() == truth.frame_role.tolist()
    neutral = both[both.frame_role == "neutral"]
    assert (neutral.frame == 1).all() and (neutral.emotion == "neutral").all() and (neutral.emotion_code == 0).all()
    assert (neutral.aus == "").all() and len(neutral) == (truth.frame_role == "peak").sum()
    others = everything[everything.frame_role == "other"]
    assert (others.emotion == "").all() and (others.emotion_code == -1).all()
    assert everything.landmarks.map(lambda p: read_landmarks_file(demo["ckplus"] / p).shape == (68, 2)).all()
    with pytest.raises(ValueError):
        index_ckplus(demo["ckplus"], frames="last")


def test_au_table_expands_intensities(demo, truth):
    df = index_ckplus(demo["ckplus"])
    table = au_table(df, aus=[1, 2, 4, 6, 12, 25, 9])
    assert list(table.columns) == ["au1", "au2", "au4", "au6", "au12", "au25", "au9"]
    assert (table.au9 == -1).all()
    assert set(table.au25.unique()) <= {-1, 0}  # AU25 is coded without intensity
    for (_, row), (_, t) in zip(df.iterrows(), table.iterrows(), strict=True):
        for au in (1, 2, 4, 6, 12):
            s = truth.loc[row.id, f"s_au{au}"]
            assert (t[f"au{au}"] > 0) == (s > 0)


def _quirk_tree(src, dst):
    """Wrapper dirs, Emotion_labels alias, label frame without PNG, missing FACS, CRLF label file."""
    shutil.copytree(src / "cohn-kanade-images", dst / "extended-cohn-kanade-images" / "cohn-kanade-images")
    shutil.copytree(src / "Emotion", dst / "Emotion_labels")  # alias holding subject dirs directly
    shutil.copytree(src / "FACS", dst / "labels" / "FACS")  # wrapper, two levels down
    shutil.copytree(src / "Landmarks", dst / "Landmarks")
    (dst / "Emotion_labels" / "S011" / ".hidden_dir").mkdir()
    (dst / "extended-cohn-kanade-images/cohn-kanade-images/S011/001/S011_001_00000003.png").unlink()
    (dst / "labels/FACS/S005/001/S005_001_00000003_facs.txt").unlink()
    emo = dst / "Emotion_labels/S011/002/S011_002_00000003_emotion.txt"
    emo.write_bytes(emo.read_bytes().replace(b"\n", b"  \r\n"))


def test_quirk_tree(demo, tmp_path, caplog):
    _quirk_tree(demo["ckplus"], tmp_path)
    clean = index_ckplus(demo["ckplus"]).set_index(["subject", "sequence"])
    with caplog.at_level(logging.WARNING):
        df = index_ckplus(tmp_path).set_index(["subject", "sequence"])
    assert len(df) == len(clean)
    # label frame 3 has no PNG: the highest existing frame (2) is the peak and carries the labels
    row = df.loc[("S011", "001")]
    assert row.frame == 2 and row.frame_role == "peak" and row.emotion == clean.loc[("S011", "001"), "emotion"]
    assert row.path == "extended-cohn-kanade-images/cohn-kanade-images/S011/001/S011_001_00000002.png"
    assert row.facs == "labels/FACS/S011/001/S011_001_00000003_facs.txt"
    # missing FACS file: row kept, AUs empty, and the gap is logged
    row = df.loc[("S005", "001")]
    assert row.aus == "" and row.facs == "" and row.emotion == "happy"
    assert any("S005/001: no FACS file" in r.getMessage() for r in caplog.records)
    # CRLF + trailing blanks still parse
    assert df.loc[("S011", "002"), "emotion"] == clean.loc[("S011", "002"), "emotion"]


def test_missing_image_tree_names_the_root(tmp_path):
    (tmp_path / "Emotion").mkdir()
    with pytest.raises(InputFileError, match=str(tmp_path)):
        index_ckplus(tmp_path)
    with pytest.raises(InputFileError, match="not found"):
        index_ckplus(tmp_path / "nowhere")


def test_label_file_parsers(tmp_path):
    p = tmp_path / "S1_001_00000001_facs.txt"
    p.write_text("   1.2000000e+01   0.0000000e+00\n")
    assert read_facs_file(p) == [(12, 0)]
    p.write_text("   1.2000000e+01\n")
    with pytest.raises(InputFileError, match="2 columns"):
        read_facs_file(p)
    e = tmp_path / "S1_001_00000001_emotion.txt"
    e.write_text("   7.0000000e+00\n")
    assert read_emotion_file(e) == 7
    for bad in ("   9.0000000e+00\n", "   2.5000000e+00\n", "happy\n", ""):
        e.write_text(bad)
        with pytest.raises(InputFileError, match=e.name):
            read_emotion_file(e)


def test_aus_column_has_one_writer_and_one_reader():
    """format_aus writes the `aus` column and parse_facs reads it back; the helpers built on it agree."""
    pairs = [(1, 2), (12, 0), (25, 3)]
    text = format_aus(pairs)
    assert text == "1:2;12:0;25:3" and parse_facs(text) == pairs and parse_aus(text) == dict(pairs)
    aus = pd.Series([text, "", "12:4"])
    assert au_intensity(aus, 12).tolist() == [0, -1, 4] and has_facs(aus).tolist() == [True, False, True]
    # a missing cell: no AUs for au_table, an error (naming the entry) for the directions and AU training
    assert parse_aus(float("nan")) == {} and parse_aus(None) == {} and parse_aus(" ") == {}
    with pytest.raises(ValueError, match="FACS entry 'nan' in 'nan' is not AU:intensity"):
        au_intensity(pd.Series([float("nan")]), 12)
    with pytest.raises(ValueError, match="FACS entry '12' in '1:2;12' is not AU:intensity"):
        parse_facs("1:2;12")
