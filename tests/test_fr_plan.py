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
    benchmarks = {"a": {"dataset": "ckplus", "subjects": 1}, "b": {"dataset": "ckplus", "subjects": 2}, "c": {"bin": "x"}}
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
