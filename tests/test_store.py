"""HDF5 store: atomic writes; corrupt, truncated or mislabelled files give one-line errors naming the file."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from facelatent.errors import InputFileError
from facelatent.store import atomic_h5, read_attrs, read_table, write_table


@pytest.fixture()
def latents_file(tmp_path):
    path = tmp_path / "latents.h5"
    write_table(path, "facelatent.latents",
                {"ids": np.array(["a", "b", "c"]), "w": np.random.RandomState(0).randn(3, 1, 100).astype(np.float32)},
                generator={"name": "dcgan", "sha256": "ab"}, config={"steps": 10})
    return path


def assert_one_line_naming(exc: Exception, path) -> None:
    message = str(exc)
    assert str(path) in message and "\n" not in message, message


def test_roundtrip_and_attrs(latents_file):
    table = read_table(latents_file, "facelatent.latents")
    assert list(table["ids"]) == ["a", "b", "c"] and table["w"].shape == (3, 1, 100)
    attrs = read_attrs(latents_file, "facelatent.latents")
    assert attrs["format"] == "facelatent.latents" and attrs["version"] == 1
    assert attrs["generator"]["name"] == "dcgan" and attrs["config"] == {"steps": 10}


def test_truncated_file(latents_file, tmp_path):
    cut = tmp_path / "cut.h5"
    data = latents_file.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputFileError, match="truncated or corrupt") as info:
        read_table(cut, "facelatent.latents")
    assert_one_line_naming(info.value, cut)


def test_corrupt_file(tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"this is not hdf5" * 100)
    with pytest.raises(InputFileError, match="not an HDF5 file") as info:
        read_table(bad, "facelatent.latents")
    assert_one_line_naming(info.value, bad)


def test_empty_and_missing_files(tmp_path):
    empty = tmp_path / "empty.h5"
    empty.touch()
    with pytest.raises(InputFileError, match="empty") as info:
        read_table(empty, "facelatent.latents")
    assert_one_line_naming(info.value, empty)
    with pytest.raises(InputFileError, match="does not exist"):
        read_table(tmp_path / "nope.h5", "facelatent.latents")


def test_wrong_format_tag(latents_file):
    with pytest.raises(InputFileError, match="wrong format tag 'facelatent.latents'") as info:
        read_table(latents_file, "facelatent.aligned")
    assert_one_line_naming(info.value, latents_file)


def test_wrong_version(latents_file):
    with h5py.File(latents_file, "a") as fh:
        fh.attrs["version"] = 99
    with pytest.raises(InputFileError, match="version 99 is not supported") as info:
        read_table(latents_file, "facelatent.latents")
    assert_one_line_naming(info.value, latents_file)


def test_missing_column(latents_file):
    with pytest.raises(InputFileError, match="column 'loss' is missing"):
        read_table(latents_file, "facelatent.latents", columns=["loss"])


def test_failed_write_leaves_nothing(tmp_path):
    path = tmp_path / "out.h5"
    with pytest.raises(RuntimeError):
        with atomic_h5(path, "facelatent.latents") as fh:
            fh.create_dataset("ids", data=np.arange(3))
            raise RuntimeError("killed half-way")
    assert not path.exists() and not (tmp_path / "out.h5.partial").exists()


def test_columns_must_agree(tmp_path):
    with pytest.raises(ValueError, match="differ in length"):
        write_table(tmp_path / "x.h5", "facelatent.latents", {"ids": np.arange(3), "w": np.zeros((2, 4))})
    assert not (tmp_path / "x.h5").exists()


def test_content_digest_and_resume_key_parts(tmp_path):
    from facelatent.store import content_digest, resume_key_mismatch, set_resume_key

    ids, images = np.array(["a", "b"], dtype=object), np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    base = content_digest(ids, images)
    assert base == content_digest(np.array(["a", "b"]), images.copy())  # object or unicode ids: same key
    assert base != content_digest(np.array(["b", "a"], dtype=object), images)
    assert base != content_digest(ids, images.reshape(2, 3, 2))  # same bytes, other shape
    assert base != content_digest(ids, images.astype(np.int16))
    with h5py.File(tmp_path / "x.h5.partial", "w") as fh:
        set_resume_key(fh.attrs, {"config": "c1", "generator": "g1", "input": base})
    with h5py.File(tmp_path / "x.h5.partial", "r") as fh:
        assert resume_key_mismatch(fh.attrs, {"config": "c1", "generator": "g1", "input": base}) == []
        assert resume_key_mismatch(fh.attrs, {"config": "c1", "generator": "g2", "input": "x", "new": "y"}) == [
            "generator", "input", "new"]
