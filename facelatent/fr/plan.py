"""Which subjects of a real dataset are held out for verification and which train; pure, and free of torch.

A benchmark made from an aligned dataset (`fr.benchmarks.<name>: {dataset: NAME, subjects: K}`) holds out the
last K subjects in sorted order (all of them without K); a training set on the same dataset leaves out every
subject any such benchmark holds out, so no benchmark identity is ever seen in training.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from facelatent.errors import ConfigError


def held_out_subjects(subjects: Iterable[str], count: int | None) -> list[str]:
    """The last `count` distinct subjects in sorted order (every subject when `count` is None)."""
    distinct = sorted({str(s) for s in subjects})
    if count is None:
        return distinct
    if count > len(distinct):
        raise ConfigError(f"a benchmark holds out {count} subjects but the dataset has only {len(distinct)}")
    return distinct[len(distinct) - count :]


def held_out_counts(benchmarks: Mapping[str, Mapping], dataset: str) -> list[int | None]:
    """The `subjects` setting of every benchmark made from `dataset` (None = all of its subjects)."""
    return [entry.get("subjects") for entry in benchmarks.values() if entry.get("dataset") == dataset]


def training_subjects(subjects: Iterable[str], counts: Iterable[int | None]) -> list[str]:
    """Every subject that no benchmark of `counts` holds out; an empty result is a config error."""
    distinct = sorted({str(s) for s in subjects})
    held: set[str] = set()
    for count in counts:
        held.update(held_out_subjects(distinct, count))
    kept = [s for s in distinct if s not in held]
    if not kept:
        raise ConfigError("every subject of the training dataset is held out by a benchmark made from it")
    return kept


def model_rows(training_sets: Mapping[str, Mapping], evaluate_untrained: bool) -> list[str]:
    """The rows of the comparison: one per training set, then the untrained backbone."""
    rows = list(training_sets)
    if "untrained" in rows:
        raise ConfigError("config key 'fr.training_sets.untrained': the name is reserved for the untrained row")
    return rows + (["untrained"] if evaluate_untrained and rows else [])
