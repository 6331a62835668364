"""insightface's verification protocol: 10-fold accuracy against a hand computation, mirror embeddings, TAR@FAR."""

from __future__ import annotations

import math

import numpy as np
import pytest

from facelatent.fr.protocol import (
    THRESHOLDS,
    kfold_ids,
    l2_normalise,
    mirror_embeddings,
    pair_distances,
    tar_at_fars,
    ten_fold_accuracy,
)


def hand_case() -> tuple[np.ndarray, np.ndarray]:
    """20 pairs, KFold(10) folds of 2 (pair 2k genuine, 2k+1 impostor). Folds 0-7: genuine 0.503, impostor 1.503;
    fold 8: genuine 1.004, impostor 1.204; fold 9: genuine 1.304, impostor 0.904 (off the 0.01 grid)."""
    distances = np.array([0.503, 1.503] * 8 + [1.004, 1.204, 1.304, 0.904])
    issame = np.array([True, False] * 10)
    return distances, issame


def test_ten_fold_accuracy_matches_the_hand_computation():
    # Held out 0-7: the other nine score 16/18 first at t in (0.503, 0.904] -> t = 0.51; that fold: both right.
    # Held out 8: 17/18 first on (0.503, 0.904] -> t = 0.51; genuine 1.004 >= 0.51 wrong, impostor right: 1/2.
    # Held out 9: 18/18 only on (1.004, 1.204] -> t = 1.01; genuine 1.304 wrong, impostor 0.904 < 1.01 wrong: 0/2.
    result = ten_fold_accuracy(*hand_case())
    np.testing.assert_array_equal(result.per_fold, [1, 1, 1, 1, 1, 1, 1, 1, 0.5, 0.0])
    np.testing.assert_allclose(result.thresholds, [0.51] * 9 + [1.01], atol=1e-12)
    assert result.accuracy == pytest.approx(0.85, abs=1e-12)
    # std (ddof 0): (8 * 0.15^2 + 0.35^2 + 0.85^2) / 10 = 0.1025
    assert result.std == pytest.approx(math.sqrt(0.1025), abs=1e-12)
    assert result.threshold == pytest.approx((9 * 0.51 + 1.01) / 10, abs=1e-12)


def test_kfold_ids_are_consecutive_blocks_and_own_folds_are_used():
    np.testing.assert_array_equal(kfold_ids(20), np.repeat(np.arange(10), 2))
    np.testing.assert_array_equal(kfold_ids(23)[:9], [0, 0, 0, 1, 1, 1, 2, 2, 2])  # the first 3 folds hold 3
    distances, issame = hand_case()
    same = ten_fold_accuracy(distances, issame, folds=kfold_ids(20))
    np.testing.assert_array_equal(same.per_fold, ten_fold_accuracy(distances, issame).per_fold)
    # Two folds, {KFold folds 0-8} and {fold 9}. Fold 9 alone (genuine 1.304, impostor 0.904) scores 1/2 at best,
    # first at t = 0 (reject all): the 18 pairs then get their 9 impostors right. The 18 pairs train t = 1.01
    # (18/18 on (1.004, 1.204]), which gets both of fold 9's pairs wrong.
    two = ten_fold_accuracy(distances, issame, folds=np.array([0] * 18 + [1] * 2))
    np.testing.assert_allclose(two.thresholds, [0.0, 1.01], atol=1e-12)
    np.testing.assert_array_equal(two.per_fold, [0.5, 0.0])


def insightface_loop(distances: np.ndarray, issame: np.ndarray) -> np.ndarray:
    """insightface's calculate_roc accuracy loop written out threshold by threshold (np.less, argmax)."""
    out = []
    for k in range(10):
        test = kfold_ids(len(distances)) == k
        train_acc = [np.mean(np.less(distances[~test], t) == issame[~test]) for t in THRESHOLDS]
        best = THRESHOLDS[int(np.argmax(train_acc))]
        out.append(np.mean(np.less(distances[test], best) == issame[test]))
    return np.array(out)


def test_ten_fold_accuracy_equals_the_threshold_by_threshold_loop_on_random_pairs():
    rng = np.random.default_rng(0)
    issame = rng.random(137) < 0.5
    distances = np.where(issame, rng.normal(0.9, 0.3, 137), rng.normal(1.5, 0.3, 137)).clip(0, 4)
    result = ten_fold_accuracy(distances, issame)
    np.testing.assert_allclose(result.per_fold, insightface_loop(distances, issame), atol=1e-12)


def test_mirror_embeddings_add_the_mirrored_image_then_normalise():
    # Not flip-invariant: the embedding is the first pixel row's red channel.
    images = np.zeros((5, 2, 3, 3), np.uint8)
    images[:, 0, :, 0] = [1, 2, 6]
    images[4, 0, :, 0] = [3, 0, 0]
    out = mirror_embeddings(lambda b: b[:, 0, :, 0].astype(np.float32), images, batch_size=2, progress=False)
    # [1, 2, 6] + [6, 2, 1] = [7, 4, 7], norm sqrt(114); [3, 0, 0] + [0, 0, 3] = [3, 0, 3], norm sqrt(18)
    np.testing.assert_allclose(out[:4], np.tile(np.array([7, 4, 7]) / math.sqrt(114), (4, 1)), atol=1e-12)
    np.testing.assert_allclose(out[4], np.array([3, 0, 3]) / math.sqrt(18), atol=1e-12)


def test_pair_distances_and_normalisation():
    emb = l2_normalise(np.array([[3.0, 4.0], [3.0, 4.0], [1.0, 0.0], [0.0, 2.0]]))
    np.testing.assert_allclose(pair_distances(emb), [0.0, 2.0], atol=1e-12)


def test_tar_at_far_is_unresolved_when_too_few_impostors():
    distances, issame = hand_case()  # 10 impostor pairs: FAR 1e-2 needs 100
    points = tar_at_fars(distances, issame, fars=(1e-2, 0.1))
    assert not points[1e-2].resolved
    # FAR 0.1 on 10 impostors: one may be accepted (the fold-9 impostor at 0.904, cosine 0.548); the genuine pairs
    # above the next impostor cosine (1 - 1.204 / 2 = 0.398) are 0.503 x 8 and 1.004 (0.498): 9 of 10.
    assert points[0.1].resolved and points[0.1].tar == pytest.approx(0.9)
