"""Shard assignment, index TSV round trip (text stays text), shard manifests, atomic writes."""

from __future__ import annotations

import pandas as pd
import pytest

from facelatent.datasets import (
    assign_shards,
    index_and_shard,
    read_index,
    read_shard_manifest,
    write_index,
    write_shard_manifest,
)
from facelatent.errors import InputFileError


def frame(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        dict(
            id=[f"{i:05d}" for i in range(n)],
            path=[f"d/{i}.png" for i in range(n)],
            subject=["007"] * n,
            frame=list(range(n)),
            emotion=[""] * n,
            aus=["1:2;12:0"] * n,
            au12=[0] * n,
        )
    )


def test_assign_shards_widths_and_sizes():
    df = assign_shards(frame(10), 4)
    assert df.shard.tolist() == ["000"] * 4 + ["001"] * 4 + ["002"] * 2
    assert assign_shards(frame(10), 100).shard.unique().tolist() == ["000"]
    wide = assign_shards(frame(1001), 1)
    assert wide.shard.iloc[0] == "0000" and wide.shard.iloc[-1] == "1000"
    assert assign_shards(frame(1000), 1).shard.iloc[-1] == "999"
    with pytest.raises(ValueError):
        assign_shards(frame(3), 0)


def test_index_round_trip_keeps_text_and_ints(tmp_path):
    df = assign_shards(frame(7), 3)
    path = write_index(df, tmp_path / "idx" / "ds.tsv")
    assert not list(path.parent.glob("*.partial"))
    back = read_index(path)
    assert back.id.tolist() == df.id.tolist() and back.subject.iloc[0] == "007"  # zeros kept
    assert back.emotion.tolist() == [""] * 7 and back.shard.tolist() == df.shard.tolist()
    assert back.frame.dtype == "int64" and back.au12.dtype == "int64"
    assert back.frame.tolist() == df.frame.tolist()


def test_shard_manifest(tmp_path):
    df = assign_shards(frame(7), 3)
    write_shard_manifest(df, tmp_path / "shards.tsv")
    assert (tmp_path / "shards.tsv").read_text() == "shard\tn_images\n000\t3\n001\t3\n002\t1\n"
    assert read_shard_manifest(tmp_path / "shards.tsv") == ["000", "001", "002"]
    with pytest.raises(ValueError):
        write_shard_manifest(frame(2), tmp_path / "x.tsv")


def test_bad_indexes_are_refused(tmp_path):
    bad = frame(2)
    bad.loc[1, "path"] = "a\tb.png"
    with pytest.raises(InputFileError, match="tab or newline"):
        write_index(bad, tmp_path / "bad.tsv")
    dup = frame(2)
    dup.loc[1, "id"] = dup.loc[0, "id"]
    with pytest.raises(InputFileError, match="duplicate id"):
        write_index(dup, tmp_path / "dup.tsv")
    (tmp_path / "noid.tsv").write_text("path\tsubject\na.png\ts\n")
    with pytest.raises(InputFileError, match="noid.tsv"):
        read_index(tmp_path / "noid.tsv")
    (tmp_path / "notint.tsv").write_text("id\tpath\tsubject\tframe\na\ta.png\ts\tx\n")
    with pytest.raises(InputFileError, match="frame"):
        read_index(tmp_path / "notint.tsv")


def test_index_and_shard_writes_both_files(tmp_path):
    for i in range(5):
        (tmp_path / "photos" / f"p{i}").mkdir(parents=True)
        (tmp_path / "photos" / f"p{i}" / "img.jpg").write_bytes(b"")
    df = index_and_shard("folder", tmp_path / "photos", tmp_path / "index.tsv", tmp_path / "shards.tsv", 2)
    assert read_shard_manifest(tmp_path / "shards.tsv") == ["000", "001", "002"]
    pd.testing.assert_frame_equal(read_index(tmp_path / "index.tsv"), df, check_dtype=False)
    with pytest.raises(ValueError, match="unknown dataset kind"):
        index_and_shard("celeba", tmp_path, tmp_path / "i.tsv", tmp_path / "s.tsv", 2)


def test_no_per_shard_rule_reads_the_whole_index(repo_root):
    """A per-shard job (its output a *_SHARD path) reads its shard's rows file or download list, never the dataset's
    index: neither its `input:` block nor the input functions it calls (followed through common.smk) name the index
    checkpoint's `index` output. With in-the-wild landmarks the index of FFHQ is ~100 MB; 274 jobs would parse it."""
    import re

    rules = repo_root / "rules"
    functions = dict(re.findall(r"^def (\w+)\(.*\n((?:[ \t]+.*\n|\n)*)", (rules / "common.smk").read_text(), re.M))
    rule_re = re.compile(r"^(?:rule|checkpoint) (\w+):\n((?:[ \t]+.*\n|\n)+)", re.M)
    per_shard = []
    for smk in sorted(rules.glob("*.smk")):
        for name, body in rule_re.findall(smk.read_text()):
            block = dict(re.findall(r"^    (\w+):\n((?:        .*\n)+)", body, re.M))
            if "_SHARD" not in block.get("output", ""):
                continue
            per_shard.append(name)
            text, seen = block.get("input", ""), set()
            while called := set(re.findall(r"\b(get_\w+)", text)) - seen:  # the input functions, transitively
                seen |= called
                text += "".join(functions.get(f, "") for f in sorted(called))
            assert ".output.index" not in text and "{dataset}.tsv" not in text, f"rule {name} reads the whole index"
    assert sorted(per_shard) == ["align_shard", "download_shard", "embed_shard", "project_shard", "sample_latents"]
