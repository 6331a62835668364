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
    write_table(
        path,
        "facelatent.latents",
        {"ids": np.array(["a", "b", "c"]), "w": np.random.RandomState(0).randn(3, 1, 100).astype(np.float32)},
        generator={"name": "dcgan", "sha256": "ab"},
        config={"steps": 10},
    )
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


def test_atomic_path_renames_on_success_and_removes_on_error(tmp_path):
    from facelatent.store import atomic_path, atomic_write_json

    target = tmp_path / "sub" / "out.txt"
    with atomic_path(target) as tmp:
        tmp.write_text("done")
        assert not target.exists()  # nothing under the final name until the block finishes
    assert target.read_text() == "done"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "done"  # the old file survives a failed rewrite
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]
    atomic_write_json(tmp_path / "m.json", {"a": 1})
    assert (tmp_path / "m.json").read_text() == '{\n  "a": 1\n}\n'


def test_atomic_path_writes_folders_whole_and_never_through_a_planted_link(tmp_path):
    from facelatent.store import atomic_path

    folder = tmp_path / "crops"
    folder.mkdir()
    (folder / "stale.png").write_text("old")
    with atomic_path(folder) as tmp:
        tmp.mkdir()
        (tmp / "new.png").write_text("new")
    assert [p.name for p in folder.iterdir()] == ["new.png"]
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    (tmp_path / "out.txt.partial").symlink_to(victim)
    with atomic_path(tmp_path / "out.txt") as tmp:
        tmp.write_text("mine")
    assert victim.read_text() == "keep"
    assert (tmp_path / "out.txt").read_text() == "mine"


def test_every_writer_goes_through_the_one_atomic_helper(repo_root):
    """No module hand-rolls `<name>.partial` + rename: store.atomic_path is the one place that does it.

    Resumable progress files keep a `.partial` on purpose: projection and synthetic checkpoints name it
    through store.partial_path, and download.py appends HTTP ranges to it and renames it only after its md5."""
    import re

    hand_rolled = re.compile(r"""\+ ?["']\.partial|\.replace\((?:out|path|target|\w*_path|\w*_json)\)|os\.replace\(""")
    offenders = []
    for folder in ("facelatent", "workflow_scripts"):
        for path in sorted((repo_root / folder).rglob("*.py")):
            if path.relative_to(repo_root).as_posix() in ("facelatent/store.py", "facelatent/download.py"):
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if hand_rolled.search(line) and "resum" not in line:
                    offenders.append(f"{path.relative_to(repo_root)}:{number}: {line.strip()}")
    assert not offenders, "hand-written .partial/rename writes:\n" + "\n".join(offenders)


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
            "generator",
            "input",
            "new",
        ]


def test_demo_manifest_leaves_out_temporary_files_of_any_suffix(tmp_path):
    from facelatent.demo_data.manifest import write_manifest

    (tmp_path / "a.png").write_bytes(b"x")
    (tmp_path / "b.png.partial.png").write_bytes(b"half")  # a writer killed between write and rename
    (tmp_path / "c.json.partial").write_bytes(b"half")
    assert sorted(write_manifest(tmp_path, tmp_path / "MANIFEST.json")["files"]) == ["a.png"]


def test_concat_columns_streams_blocks_into_the_layout_write_column_gives(tmp_path):
    """Merged columns equal np.concatenate of the sources, with the chunking write_column would choose,
    and the copy runs in blocks smaller than one source (block_rows=3 over sources of 5 and 7 rows)."""
    import h5py

    from facelatent.store import atomic_h5, concat_columns, read_table, write_column, write_table

    rng = np.random.default_rng(0)
    sources, parts = [], []
    for k, n in enumerate((5, 7)):
        cols = {
            "ids": np.array([f"s{k}_{i}" for i in range(n)]),
            "w": rng.standard_normal((n, 2, 4)).astype(np.float32),
            "steps": rng.integers(0, 9, n).astype(np.int32),
        }
        sources.append(write_table(tmp_path / f"{k}.h5", "facelatent.latents", cols))
        parts.append(cols)
    with atomic_h5(tmp_path / "merged.h5", "facelatent.latents") as fh:
        assert concat_columns(fh, sources, "facelatent.latents", ["ids", "w", "steps"], block_rows=3) == 12
    with atomic_h5(tmp_path / "whole.h5", "facelatent.latents") as fh:
        for name in ("ids", "w", "steps"):
            write_column(fh, name, np.concatenate([p[name] for p in parts]))
    merged = read_table(tmp_path / "merged.h5", "facelatent.latents")
    for name in ("ids", "w", "steps"):
        np.testing.assert_array_equal(merged[name], np.concatenate([p[name] for p in parts]))
    with h5py.File(tmp_path / "merged.h5") as a, h5py.File(tmp_path / "whole.h5") as b:
        for name in ("ids", "w", "steps"):
            assert (a[name].chunks, a[name].compression, a[name].dtype) == (
                b[name].chunks,
                b[name].compression,
                b[name].dtype,
            )


def test_concat_columns_names_the_file_whose_rows_do_not_fit(tmp_path):
    from facelatent.store import atomic_h5, concat_columns, write_table

    a = write_table(tmp_path / "a.h5", "facelatent.latents", {"w": np.zeros((2, 4), np.float32)})
    b = write_table(tmp_path / "b.h5", "facelatent.latents", {"w": np.zeros((2, 5), np.float32)})
    with pytest.raises(InputFileError, match="column 'w' has row shapes"):
        with atomic_h5(tmp_path / "m.h5", "facelatent.latents") as fh:
            concat_columns(fh, [a, b], "facelatent.latents", ["w"])
    assert not (tmp_path / "m.h5").exists()
