"""Multi-PIE indexer against the planted ground truth; filters; root forms; stray files."""

from __future__ import annotations

import pandas as pd
import pytest

from facelatent.datasets import index_multipie, read_subject_list
from facelatent.demo_data import make_demo_data
from facelatent.errors import InputFileError

SIZES = dict(ckplus_subjects=2, ckplus_frames=2, multipie_subjects=3, ffhq_images=3, folder=False)


@pytest.fixture(scope="module")
def demo(tmp_path_factory, dcgan_path):
    return make_demo_data(tmp_path_factory.mktemp("demo"), dcgan_path, seed=2, sizes=SIZES)


@pytest.fixture(scope="module")
def truth(demo) -> pd.DataFrame:
    return pd.read_csv(
        demo["ground_truth"] / "multipie_labels.tsv", sep="\t", keep_default_na=False, dtype={"id": str, "subject": str}
    ).set_index("id")


def test_every_image_indexed_with_its_labels(demo, truth):
    df = index_multipie(demo["multipie"])
    assert sorted(df.id) == sorted(truth.index) and df.id.is_unique
    got = df.set_index("id").loc[truth.index]
    for col in (
        "path",
        "subject",
        "session",
        "recording",
        "expression",
        "camera",
        "yaw",
        "flash",
        "illumination_group",
    ):
        assert got[col].tolist() == truth[col].tolist(), col
    assert (demo["multipie"] / df.path).map(lambda p: p.is_file()).all()


def test_protocol_filters(demo, truth):
    root = demo["multipie"]
    e_lit = index_multipie(root, cameras=["05_1"], flashes=[7])
    assert len(e_lit) == ((truth.camera == "05_1") & (truth.flash == 7)).sum()
    pose = index_multipie(root, sessions=[1], recordings=[1], flashes=[7])
    assert set(pose.camera) == {"11_0", "13_0", "14_0", "05_1", "05_0", "04_1", "24_0"}
    by_camera = pose.drop_duplicates("camera").set_index("camera")
    assert by_camera.loc["11_0", "yaw"] == -90 and by_camera.loc["24_0", "pose_group"] == "right"
    s4 = index_multipie(root, sessions=[4], cameras=["05_1"])
    assert s4.groupby("recording").expression.first().to_dict() == {1: "neutral", 2: "neutral", 3: "scream"}
    smile = index_multipie(root, expressions=["smile"])
    assert set(smile.recording) == {2} and set(smile.session) == {1}
    illum = index_multipie(root, flashes=[2, 12])
    assert set(illum.illumination_group) == {"left", "right"}
    assert set(index_multipie(root, subjects=[2]).subject) == {"002"}
    with pytest.raises(ValueError, match="99_9"):
        index_multipie(root, cameras=["99_9"])


def test_subject_list_and_root_forms(demo):
    root = demo["multipie"]
    table = read_subject_list(root / "meta/subject_list.txt")
    assert table.set_index("subject").loc["002", "birth_year"] == 1957
    assert table.set_index("subject").loc["005", "s2"] == 0  # the third subject skipped session 2
    df = index_multipie(root)
    assert (df.birth_year > 1900).all() and set(df.gender) == {"Male", "Female"}
    assert 2 not in set(df[df.subject == "005"].session)
    from_data = index_multipie(root / "data")
    assert (("data/" + from_data.path) == df.path).all()
    assert (from_data.gender == df.gender).all()  # meta/ found beside data/


def test_stray_and_hidden_entries_are_skipped(demo, tmp_path, caplog):
    import shutil

    shutil.copytree(demo["multipie"], tmp_path / "mp")
    cam = tmp_path / "mp/data/session01/multiview/001/01/05_1"
    (cam / "._001_01_01_051_07.png").write_bytes(b"AppleDouble")
    (cam / "001_02_01_051_07.png").write_bytes(b"x")  # session in the name disagrees with the dir
    (cam / "notes.txt").write_text("x")
    (tmp_path / "mp/data/session01/multiview/001/01/.hidden").mkdir()
    df = index_multipie(tmp_path / "mp")
    assert len(df) == len(index_multipie(demo["multipie"]))
    assert any("does not match" in r.getMessage() for r in caplog.records)


def test_not_a_multipie_root(tmp_path):
    with pytest.raises(InputFileError, match=str(tmp_path)):
        index_multipie(tmp_path)
