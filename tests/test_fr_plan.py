"""Held-out subjects, training subjects and the pairs of a benchmark made from an aligned dataset."""

import numpy as np
import pytest

from facelatent.errors import ConfigError
from facelatent.fr.heldout import genuine_pairs, impostor_pairs, interleave
from facelatent.fr.plan import held_out_counts, held_out_subjects, model_rows, training_subjects


def test_held_out_subjects_are_the_last_in_sorted_order():
    subjects = ["S010", "S002", "S005", "S002", "S007"]
    assert held_out_subjects(subjects, 2) == ["S007", "S010"]
    assert held_out_subjects(subjects, None) == ["S002", "S005", "S007", "S010"]
    with pytest.raises(ConfigError, match="only 4"):
        held_out_subjects(subjects, 5)


def test_training_leaves_out_every_benchmark_subject():
    benchmarks = {
        "a": {"dataset": "ckplus", "subjects": 1},
        "b": {"dataset": "ckplus", "subjects": 2},
        "c": {"bin": "x"},
    }
    counts = held_out_counts(benchmarks, "ckplus")
    assert counts == [1, 2]
    assert training_subjects(["S1", "S2", "S3", "S4"], counts) == ["S1", "S2"]
    assert held_out_counts(benchmarks, "multipie") == []
    with pytest.raises(ConfigError, match="every subject"):
        training_subjects(["S1", "S2"], [None])


def test_model_rows_end_with_the_untrained_backbone():
    assert model_rows({"synthetic": {}, "real": {}}, True) == ["synthetic", "real", "untrained"]
    assert model_rows({"synthetic": {}}, False) == ["synthetic"]
    assert model_rows({}, True) == []
    with pytest.raises(ConfigError, match="reserved"):
        model_rows({"untrained": {}}, True)


def test_pairs_are_distinct_of_the_right_kind_and_interleaved():
    subject_of = np.array(["a"] * 4 + ["b"] * 3 + ["c"] * 1)
    rng = np.random.default_rng(0)
    genuine = genuine_pairs(subject_of, 100, rng)
    assert len(genuine) == 6 + 3  # every same-subject pair, as fewer exist than asked for
    assert all(subject_of[i] == subject_of[j] and i < j for i, j in genuine)
    impostor = impostor_pairs(subject_of, len(genuine), rng)
    assert len({tuple(p) for p in impostor}) == len(genuine)
    assert all(subject_of[i] != subject_of[j] and i < j for i, j in impostor)
    pairs, issame = interleave(genuine, impostor)
    assert issame.tolist() == [True, False] * len(genuine)
    assert all((subject_of[i] == subject_of[j]) == same for (i, j), same in zip(pairs, issame, strict=True))
    with pytest.raises(ValueError, match="impostor pairs exist"):
        impostor_pairs(subject_of, 100, rng)


def test_make_benchmark_bin_holds_only_held_out_subjects(tmp_path):
    """Shards of 5 subjects x 4 images; the benchmark of the last 3 subjects reads back as 112 px pairs of theirs."""
    from facelatent.fr.binfile import read_bin
    from facelatent.fr.job import make_benchmark_bin
    from facelatent.store import write_table

    rng = np.random.default_rng(1)
    ids = [f"S{s}_{k}" for s in range(5) for k in range(4)]
    images = rng.integers(0, 256, (20, 64, 64, 3), dtype=np.uint8)
    images[:, :, :, 0] = np.repeat(np.arange(20, dtype=np.uint8) * 12, 64 * 64).reshape(20, 64, 64)  # id in red
    shards = [tmp_path / "000.h5", tmp_path / "001.h5"]
    for shard, rows in zip(shards, (slice(0, 11), slice(11, 20)), strict=True):
        write_table(shard, "facelatent.aligned", {"ids": np.array(ids[rows], dtype=object), "images": images[rows]})
    index = tmp_path / "index.tsv"
    lines = ["id\tpath\tsubject\tshard"] + [
        f"{i}\t{i}.png\tS{i[1]}\t{'000' if n < 11 else '001'}" for n, i in enumerate(ids)
    ]
    index.write_text("\n".join(lines) + "\n")
    summary = make_benchmark_bin(
        shards=shards, index=index, subjects=3, pairs_per_kind=10, seed=0,
        out_bin=tmp_path / "b.bin", out_json=tmp_path / "b.json",
    )  # fmt: skip
    assert summary["subjects"] == ["S2", "S3", "S4"] and summary["pairs"] == 20 and summary["genuine"] == 10
    pairs = read_bin(tmp_path / "b.bin")
    assert pairs.images.shape == (40, 112, 112, 3) and pairs.issame.tolist() == [True, False] * 10
    red = np.rint(pairs.images[:, 56, 56, 0] / 12).astype(int)  # which source image each crop came from
    subject = red // 4
    assert set(subject) <= {2, 3, 4}
    assert ((subject[0::2] == subject[1::2]) == pairs.issame).all()
