"""The verification protocol as insightface's `eval/verification.py` computes it, on numpy arrays.

- Embedding of an image: model(image) + model(mirrored image), then L2-normalised.
- Score of a pair: squared Euclidean distance of the two normalised embeddings (0..4); a pair is called "same"
  when distance < threshold.
- 10-fold accuracy: the pairs are split by sklearn's KFold(n_splits=10, shuffle=False) (consecutive blocks; or the
  pair list's own folds), and for each fold the threshold of `THRESHOLDS` (0, 0.01, ..., 3.99) with the best
  accuracy on the other nine (the first on ties) is applied to the held-out fold. Reported: the mean and the
  (population) standard deviation of the ten held-out accuracies, and the mean chosen threshold.
- TAR@FAR on the pairs' cosine similarities, by `facelatent.embeddings.verification.tar_at_far` (no folds).
insightface's VAL@FAR (scipy's `interp1d(kind='slinear')` over the training folds' FAR curve) is left out: that call
raises on the repeated FAR values every real curve has under current scipy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import KFold
from tqdm.auto import tqdm

from facelatent.embeddings.verification import OperatingPoint, tar_at_far

THRESHOLDS = np.arange(0, 4, 0.01)  # insightface's grid of squared-distance thresholds
FR_FARS = (1e-2, 1e-3)


@dataclass
class FoldResult:
    accuracy: float  # mean held-out accuracy (0..1)
    std: float  # np.std of the held-out accuracies (ddof 0, as insightface prints it)
    threshold: float  # mean of the thresholds chosen on the training folds
    per_fold: np.ndarray  # held-out accuracy of each fold
    thresholds: np.ndarray  # threshold chosen for each fold


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as sklearn.preprocessing.normalize."""
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norm == 0, 1.0, norm)


def mirror_embeddings(
    embed_fn: Callable[[np.ndarray], np.ndarray],
    images: np.ndarray,
    batch_size: int = 64,
    progress: bool = True,
) -> np.ndarray:
    """L2-normalised embed_fn(image) + embed_fn(mirrored image) for uint8 RGB images (N, H, W, 3) -> (N, D).

    `embed_fn` maps a (B, H, W, 3) uint8 batch to (B, D) embeddings; the sum is taken in float64.
    """
    assert images.ndim == 4 and images.shape[-1] == 3, f"images: expected (N, H, W, 3), got {images.shape}"
    out: list[np.ndarray] = []
    for lo in tqdm(range(0, len(images), batch_size), desc="embed", disable=not progress, mininterval=2.0):
        batch = images[lo : lo + batch_size]
        plain = np.asarray(embed_fn(batch), dtype=np.float64)
        mirrored = np.asarray(embed_fn(np.ascontiguousarray(batch[:, :, ::-1])), dtype=np.float64)
        assert plain.shape == mirrored.shape and plain.shape[0] == len(batch), f"{plain.shape} {mirrored.shape}"
        out.append(plain + mirrored)
    return l2_normalise(np.concatenate(out)) if out else np.zeros((0, 0))


def pair_distances(embeddings: np.ndarray) -> np.ndarray:
    """Squared Euclidean distance of pairs (rows 2i, 2i + 1) -> (P,)."""
    assert embeddings.ndim == 2 and len(embeddings) % 2 == 0, f"embeddings: expected (2P, D), {embeddings.shape}"
    return np.sum(np.square(embeddings[0::2] - embeddings[1::2]), axis=1)


def kfold_ids(n_pairs: int, folds: int = 10) -> np.ndarray:
    """Held-out fold of each pair under KFold(n_splits=folds, shuffle=False)."""
    ids = np.empty(n_pairs, dtype=np.int64)
    for k, (_, test) in enumerate(KFold(n_splits=folds, shuffle=False).split(np.arange(n_pairs))):
        ids[test] = k
    return ids


def correct_counts(distances: np.ndarray, issame: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Number of pairs classified right (same when distance < t) at each threshold t."""
    genuine, impostor = np.sort(distances[issame]), np.sort(distances[~issame])
    accepted_genuine = np.searchsorted(genuine, thresholds, side="left")  # genuine distances < t
    rejected_impostor = len(impostor) - np.searchsorted(impostor, thresholds, side="left")  # impostors >= t
    return accepted_genuine + rejected_impostor


def ten_fold_accuracy(
    distances: np.ndarray,
    issame: np.ndarray,
    folds: int | np.ndarray = 10,
    thresholds: np.ndarray = THRESHOLDS,
) -> FoldResult:
    """insightface's k-fold accuracy; `folds` is the fold count (KFold, no shuffle) or a fold id per pair."""
    distances, issame = np.asarray(distances, dtype=np.float64), np.asarray(issame, dtype=bool)
    assert distances.shape == issame.shape and distances.ndim == 1, f"{distances.shape} vs {issame.shape}"
    ids = kfold_ids(len(distances), folds) if np.isscalar(folds) else np.asarray(folds)
    assert ids.shape == issame.shape, f"fold ids {ids.shape} vs pairs {issame.shape}"
    accuracies, chosen = [], []
    for k in np.unique(ids):
        test = ids == k
        best = int(np.argmax(correct_counts(distances[~test], issame[~test], thresholds)))  # first best on ties
        chosen.append(float(thresholds[best]))
        held_out = correct_counts(distances[test], issame[test], thresholds[best : best + 1])[0]
        accuracies.append(held_out / int(test.sum()))
    per_fold = np.array(accuracies)
    return FoldResult(float(per_fold.mean()), float(per_fold.std()), float(np.mean(chosen)), per_fold, np.array(chosen))


def pair_cosines(distances: np.ndarray) -> np.ndarray:
    """Cosine similarity of unit vectors from their squared distance: cos = 1 - d / 2."""
    return 1.0 - np.asarray(distances, dtype=np.float64) / 2.0


def tar_at_fars(
    distances: np.ndarray, issame: np.ndarray, fars: Sequence[float] = FR_FARS
) -> dict[float, OperatingPoint]:
    """TAR at each FAR on the pairs' cosine similarities (`resolved` False when too few impostor pairs)."""
    cosines, issame = pair_cosines(distances), np.asarray(issame, dtype=bool)
    return {far: tar_at_far(cosines[issame], cosines[~issame], far) for far in fars}
