"""FFHQ indexer from the manifest: ids, categories, checksums, missing files, escaping paths."""

from __future__ import annotations

import hashlib
import json
import shutil

import pandas as pd
import pytest

from facelatent.datasets import index_ffhq, iter_ffhq_manifest
from facelatent.demo_data import make_demo_data
from facelatent.download import download_ffhq
from facelatent.errors import InputFileError

SIZES = dict(ckplus_subjects=2, ckplus_frames=2, multipie_subjects=1, ffhq_images=5, folder=False)


@pytest.fixture(scope="module")
def demo(tmp_path_factory, dcgan_path):
    return make_demo_data(tmp_path_factory.mktemp("demo"), dcgan_path, seed=3, sizes=SIZES)


@pytest.fixture(scope="module")
def data_root(demo, tmp_path_factory):
    root = tmp_path_factory.mktemp("ffhq")
    download_ffhq(demo["ffhq_manifest"], root, kinds=("image", "thumbnail"), progress=False)
    return root


def test_every_image_indexed_with_manifest_fields(demo, data_root):
    truth = pd.read_csv(demo["ground_truth"] / "ffhq_labels.tsv", sep="\t", dtype={"id": str})
    df = index_ffhq(data_root)  # manifest copied into the root by the download
    assert df.id.tolist() == truth.id.tolist() == ["00000", "00001", "00002", "01000", "60000"]
    assert df.path.tolist() == truth.path.tolist()
    assert df.category.tolist() == truth.category.tolist()
    assert df.set_index("id").loc["60000", "category"] == "validation"
    assert (df.subject == df.id).all() and (df.width == 1024).all() and (df.height == 1024).all()
    for row in df.itertuples():
        data = (data_root / row.path).read_bytes()
        assert len(data) == row.file_size and hashlib.md5(data).hexdigest() == row.file_md5
    thumbs = index_ffhq(data_root, kind="thumbnail")
    assert thumbs.path.str.startswith("thumbnails128x128/").all() and (thumbs.width == 128).all()


def test_filters_and_landmarks(data_root):
    assert index_ffhq(data_root, categories=["validation"]).id.tolist() == ["60000"]
    assert index_ffhq(data_root, indices=[1000, 1]).id.tolist() == ["00001", "01000"]
    df = index_ffhq(data_root, landmarks=True)
    assert len(json.loads(df.landmarks.iloc[0])) == 68
    with pytest.raises(ValueError):
        index_ffhq(data_root, kind="tfrecords")


def test_missing_files_error_or_skip(data_root, tmp_path):
    root = tmp_path / "partial"
    shutil.copytree(data_root, root)
    (root / "images1024x1024/01000/01000.png").unlink()
    with pytest.raises(InputFileError, match=r"01000\.png.*1 of 5 files missing"):
        index_ffhq(root)
    assert "01000" not in index_ffhq(root, missing="skip").id.tolist()
    with pytest.raises(InputFileError, match="in-the-wild"):
        index_ffhq(root, kind="wild")  # not downloaded


def test_manifest_path_escaping_the_root_is_refused(demo, tmp_path):
    manifest = json.loads(demo["ffhq_manifest"].read_text())
    manifest["0"]["image"]["file_path"] = "../../etc/passwd"
    bad = tmp_path / "ffhq-dataset-v2.json"
    bad.write_text(json.dumps(manifest))
    with pytest.raises(InputFileError, match="escapes the data root"):
        index_ffhq(tmp_path, manifest=bad, missing="skip")
    bad.write_text("{not json")
    with pytest.raises(InputFileError, match="ffhq-dataset-v2.json"):
        index_ffhq(tmp_path)


def test_streamed_manifest_equals_the_parsed_document(demo, tmp_path):
    """The manifest is read entry by entry in chunks; any chunk size gives the document json.loads gives."""
    text = demo["ffhq_manifest"].read_text()
    expected = [(int(key), value) for key, value in json.loads(text).items()]
    for chunk in (1, 7, 4096):
        assert list(iter_ffhq_manifest(demo["ffhq_manifest"], chunk_chars=chunk)) == expected
    spaced = tmp_path / "spaced.json"
    spaced.write_text(' \n{ "3" : {"a": [1.5e3, -2]} ,\n"12":{} }\n')
    assert list(iter_ffhq_manifest(spaced, chunk_chars=2)) == [(3, {"a": [1500.0, -2]}), (12, {})]
    for bad, why in (
        ("[]", "expected one of"),
        ('{"1": 3}', "not an object keyed by its image index"),
        ('{"x": {}}', "not an object keyed by its image index"),
        ('{"1": {}', "expected one of"),
        ('{"1": {"a": [1,,2]}}', "Expecting value at character 15"),
        ('{"1": {}} {}', "extra data"),
    ):
        spaced.write_text(bad)
        with pytest.raises(InputFileError, match=why):
            list(iter_ffhq_manifest(spaced, chunk_chars=3))
