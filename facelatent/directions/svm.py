"""Semantic directions: linear-SVM normals (InterFaceGAN / latent-analysis), conditional and PCA.

Quirks of the originals fixed here: the SVM is seeded; side statistics are reported both by
true label and by the sign of the distance; cross-validation keeps each subject on one side;
the normal always has the latent's shape ([w_dim] in W, [num_ws, w_dim] in W+).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.model_selection import GroupKFold
from sklearn.svm import LinearSVC

from facelatent.datasets.ckplus import au_intensity, has_facs
from facelatent.directions.visible import from_subspace, to_subspace
from facelatent.errors import FaceLatentError
from facelatent.projection.config import ProjectionConfig

log = logging.getLogger(__name__)


class DirectionError(FaceLatentError):
    """A direction cannot be fitted; the message names it."""


@dataclass
class LabelRule:
    """How a direction's labels come from the index columns joined into the latents file.

    Categorical: `column` with `positive` and `negative` value lists. Continuous: `column` (or `au`:
    a CK+ AU whose intensity is read from `aus`) with `continuous: true`; InterFaceGAN then takes the
    top and bottom `ratio` of the scores as positives and negatives. `where` filters rows first. Generated samples:
    `score`, a predicted attribute, ranked the same way (facelatent/attributes/fit.py).
    """

    column: str | None = None
    score: str | None = None  # a predicted attribute of generated samples (facelatent/attributes/fit.py reads it)
    positive: list = field(default_factory=list)
    negative: list = field(default_factory=list)
    continuous: bool = False
    au: int | None = None
    ratio: float = 0.3
    where: dict = field(default_factory=dict)


@dataclass
class SVMConfig:
    C: float = 1.0
    intercept: bool = False  # the normal's hyperplane passes through the origin, as the editing assumes
    folds: int = 5
    max_iter: int = 20000
    seed: int = 0
    drop_worst_fits: float = 0.0  # share of the dataset's latents with the lowest projection PSNR left out


def top_and_bottom(values: np.ndarray, ratio: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the top and bottom `ratio` of `values` (InterFaceGAN's selection), ties broken at random.

    A plain stable sort would break ties (a camera's yaw, an absent AU's -1) by file order, taking whole
    subjects at the end of the index; a seeded random order does not.
    """
    order = np.lexsort((np.random.default_rng(seed).random(len(values)), -values))
    chosen = min(int(len(values) * ratio), len(values) // 2)
    return order[:chosen], order[len(order) - chosen :]


def _matches(values: pd.Series, wanted: list) -> np.ndarray:
    as_text = values.astype(str)
    return as_text.isin([str(v) for v in wanted]).to_numpy()


def rows_where(name: str, frame: pd.DataFrame, rule: LabelRule) -> np.ndarray:
    """Boolean mask of the rows that pass the rule's `where` filters."""
    keep = np.ones(len(frame), bool)
    for column, allowed in rule.where.items():
        if column not in frame:
            raise DirectionError(f"direction '{name}': filter column '{column}' is not in the latents' labels")
        keep &= _matches(frame[column], allowed if isinstance(allowed, list) else [allowed])
    return keep


def continuous_scores(name: str, frame: pd.DataFrame, rule: LabelRule) -> tuple[np.ndarray, np.ndarray]:
    """The scores of a continuous rule (an AU intensity or a numeric column) and the mask of rows that have one."""
    if rule.au is not None:
        has = has_facs(frame["aus"])
        try:
            return au_intensity(frame["aus"].where(has, ""), rule.au).astype(float), has
        except ValueError as exc:
            raise DirectionError(f"direction '{name}': {exc}") from exc
    scores = pd.to_numeric(frame[rule.column].replace("", np.nan), errors="coerce").to_numpy(float)
    has = np.isfinite(scores)
    if not has.all():
        log.warning("direction '%s': %d rows without a numeric '%s' left out", name, (~has).sum(), rule.column)
    return scores, has


def select_labels(
    name: str, frame: pd.DataFrame, rule: LabelRule, seed: int = SVMConfig.seed
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices and 0/1 labels for a direction; raises DirectionError naming it.

    Continuous scores: rows without one (empty, NaN) are left out, as InterFaceGAN's `invalid_value`.
    """
    if rule.au is not None and "aus" not in frame:
        raise DirectionError(f"direction '{name}': the latents have no FACS labels (column 'aus')")
    if rule.au is None and (rule.column is None or rule.column not in frame):
        raise DirectionError(
            f"direction '{name}': label column '{rule.column}' is not in the latents' labels "
            f"(have: {', '.join(map(str, frame.columns))})"
        )
    keep = rows_where(name, frame, rule)
    if rule.continuous or rule.au is not None:
        scores, has_score = continuous_scores(name, frame, rule)
        rows = np.flatnonzero(keep & has_score)
        top, bottom = top_and_bottom(scores[rows], rule.ratio, seed)
        pos, neg = rows[top], rows[bottom]
        if len(top) and scores[pos].min() <= scores[neg].max():
            raise DirectionError(
                f"direction '{name}': the top and bottom {rule.ratio:.0%} of the scores overlap; "
                "only one class is present"
            )
    else:
        rows = np.flatnonzero(keep)
        column = frame[rule.column].iloc[rows]
        pos, neg = rows[_matches(column, rule.positive)], rows[_matches(column, rule.negative)]
    if len(pos) == 0 or len(neg) == 0:
        raise DirectionError(f"direction '{name}': only one class present ({len(pos)} positive, {len(neg)} negative)")
    idx = np.concatenate([pos, neg])
    return idx, np.concatenate([np.ones(len(pos), int), np.zeros(len(neg), int)])


def flatten_latents(w: np.ndarray, space: str) -> np.ndarray:
    """[N, num_ws, w_dim] -> [N, w_dim] (W: the ws are identical) or [N, num_ws*w_dim] (W+)."""
    return w[:, 0, :] if space == "w" else w.reshape(len(w), -1)


def fit_svm_normal(X: np.ndarray, y: np.ndarray, cfg: SVMConfig) -> tuple[np.ndarray, float]:
    """Unit normal (float64) and intercept of a seeded LinearSVC."""
    svm = LinearSVC(C=cfg.C, fit_intercept=cfg.intercept, max_iter=cfg.max_iter, dual="auto", random_state=cfg.seed)
    svm.fit(X, y)
    coef = svm.coef_.reshape(-1)
    norm = np.linalg.norm(coef)
    return coef / norm, float(svm.intercept_[0] / norm) if cfg.intercept else 0.0


def cross_validate(name: str, X: np.ndarray, y: np.ndarray, groups: np.ndarray, cfg: SVMConfig) -> dict:
    """Accuracy over folds that keep each subject on one side (GroupKFold)."""
    n_groups = len(np.unique(groups))
    if len(y) < cfg.folds:
        raise DirectionError(
            f"direction '{name}': {len(y)} samples from {n_groups} subjects are fewer than the "
            f"{cfg.folds} cross-validation folds"
        )
    if n_groups < 2:
        raise DirectionError(
            f"direction '{name}': all {len(y)} samples come from one subject; folds that keep "
            "each subject on one side need at least 2"
        )
    folds = min(cfg.folds, n_groups)
    if folds < cfg.folds:
        log.warning(
            "direction '%s': %d subjects, so %d cross-validation folds instead of %d", name, n_groups, folds, cfg.folds
        )
    scores = []
    for train, test in GroupKFold(n_splits=folds).split(X, y, groups):
        if len(np.unique(y[train])) < 2:
            continue
        normal, b = fit_svm_normal(X[train], y[train], cfg)
        scores.append(float(np.mean(((X[test] @ normal + b) > 0).astype(int) == y[test])))
    if not scores:
        raise DirectionError(f"direction '{name}': no fold has both classes in its training part")
    return {
        "folds": len(scores),
        "accuracy_mean": float(np.mean(scores)),
        "accuracy_std": float(np.std(scores)),
        "accuracy_per_fold": scores,
    }


def side_statistics(distances: np.ndarray) -> dict:
    if len(distances) == 0:
        return {"n": 0}
    return {
        "n": int(len(distances)),
        "min": float(distances.min()),
        "max": float(distances.max()),
        "mean": float(distances.mean()),
        "std": float(distances.std()),
    }


def well_fitted(name: str, frame: pd.DataFrame, drop_share: float) -> tuple[np.ndarray, float | None]:
    """Rows kept after leaving out the `drop_share` of latents whose projection fits worst, and the PSNR cut.

    A latent that reproduces its image poorly sits in a wrong basin more often than not (on the demo's
    Multi-PIE fixtures, its error along the planted directions correlates -0.8 with PSNR), and such
    outliers tilt the SVM normal. The fit is `psnr_aligned` where the projection fitted a warp, else `psnr`.
    """
    if drop_share <= 0:
        return np.arange(len(frame)), None
    if "psnr" not in frame:
        raise DirectionError(
            f"direction '{name}': direction_fitting.drop_worst_fits needs projected latents (a psnr column)"
        )
    quality = frame["psnr_aligned" if "psnr_aligned" in frame else "psnr"].to_numpy(dtype=np.float64)
    cut = float(np.quantile(quality, drop_share))
    return np.flatnonzero(quality >= cut), cut


def fit_direction(
    name: str,
    w: np.ndarray,
    frame: pd.DataFrame,
    rule: LabelRule,
    cfg: SVMConfig,
    space: str = ProjectionConfig.space,
    subject_column: str = "subject",
    basis: np.ndarray | None = None,
) -> tuple[np.ndarray, dict]:
    """Fit one direction; returns the float32 unit normal ([w_dim] or [num_ws, w_dim]) and its metrics.

    With `basis` [w_dim, k] (orthonormal columns, see facelatent/directions/visible.py) the SVM sees each latent's
    coordinates in that subspace (per layer in W+), so the normal lies inside it.
    """
    kept, psnr_cut = well_fitted(name, frame, cfg.drop_worst_fits)
    n_dropped = len(frame) - len(kept)
    w, frame = w[kept], frame.iloc[kept].reset_index(drop=True)
    idx, y = select_labels(name, frame, rule, seed=cfg.seed)
    X = flatten_latents(w, space)[idx].astype(np.float64)
    groups = frame[subject_column].astype(str).to_numpy()[idx] if subject_column in frame else np.arange(len(idx))
    normal, metrics = fit_selected(name, X, y, groups, cfg, space, w.shape[1:], basis)
    metrics["worst_fits_dropped"] = {"share": cfg.drop_worst_fits, "n": n_dropped, "psnr_below": psnr_cut}
    return normal, metrics


def fit_selected(
    name: str,
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    cfg: SVMConfig,
    space: str,
    latent_shape: tuple[int, int],
    basis: np.ndarray | None = None,
) -> tuple[np.ndarray, dict]:
    """The SVM part of `fit_direction` on rows already chosen: X [M, D] flattened latents (`flatten_latents`), y 0/1,
    `groups` the subject of each row (folds keep a subject on one side); `latent_shape` (num_ws, w_dim) gives the
    normal its shape ([w_dim] in W, [num_ws, w_dim] in W+)."""
    num_ws, w_dim = latent_shape
    features = X if basis is None else to_subspace(X, basis, w_dim)
    cv = cross_validate(name, features, y, groups, cfg)
    normal, intercept = fit_svm_normal(features, y, cfg)
    if basis is not None:  # back to latent coordinates (still unit length: the basis is orthonormal)
        normal = from_subspace(normal, basis)
    d = X @ normal + intercept  # signed distance to the fitted hyperplane (through the origin without intercept)
    metrics = {
        "name": name,
        "space": space,
        "n_positive": int(y.sum()),
        "n_negative": int((1 - y).sum()),
        "n_subjects": int(len(np.unique(groups))),
        "C": cfg.C,
        "intercept": intercept,
        "cv": cv,
        "subspace_dims": int(w_dim if basis is None else basis.shape[1]),
        "train_accuracy": float(np.mean((d > 0).astype(int) == y)),
        "stats_by_label": {"positive": side_statistics(d[y == 1]), "negative": side_statistics(d[y == 0])},
        "stats_by_side": {"positive": side_statistics(d[d > 0]), "negative": side_statistics(d[d <= 0])},
    }
    shape = (w_dim,) if space == "w" else (num_ws, w_dim)
    return normal.reshape(shape).astype(np.float32), metrics


def conditional_direction(primal: np.ndarray, conditions: list[np.ndarray], name: str = "conditional") -> np.ndarray:
    """Remove the condition directions from `primal` (InterFaceGAN closed forms for 1 and 2, a solve beyond)."""
    shape = primal.shape
    p = primal.reshape(-1).astype(np.float64)
    C = [c.reshape(-1).astype(np.float64) / np.linalg.norm(c) for c in conditions]
    if not C:
        n = p
    elif len(C) == 1:
        n = p - (p @ C[0]) * C[0]
    elif len(C) == 2:
        a, b, g = p @ C[0], p @ C[1], C[0] @ C[1]
        alpha = (a - b * g) / (1 - g**2 + 1e-8)
        beta = (b - a * g) / (1 - g**2 + 1e-8)
        n = p - alpha * C[0] - beta * C[1]
    else:
        M = np.stack(C)
        try:
            x = np.linalg.solve(M @ M.T, M @ p)
        except np.linalg.LinAlgError as exc:
            raise DirectionError(f"direction '{name}': its conditions are linearly dependent ({exc})") from exc
        n = p - x @ M
    return unit_or_error(n, name).reshape(shape).astype(np.float32)


def unit_or_error(n: np.ndarray, name: str) -> np.ndarray:
    norm = np.linalg.norm(n)
    if not norm >= 1e-6:  # also NaN
        raise DirectionError(f"direction '{name}': the primal direction lies in the span of its conditions")
    return n / norm


def conditional_direction_general(
    primal: np.ndarray, conditions: list[np.ndarray], name: str = "conditional"
) -> np.ndarray:
    """The general least-squares solve for any number of conditions (agrees with the closed forms)."""
    shape = primal.shape
    p = primal.reshape(-1).astype(np.float64)
    M = np.stack([c.reshape(-1) / np.linalg.norm(c) for c in conditions]).astype(np.float64)
    n = p - np.linalg.lstsq(M.T, p, rcond=None)[0] @ M
    return unit_or_error(n, name).reshape(shape).astype(np.float32)


def pca_directions(
    w: np.ndarray, n_components: int, space: str = ProjectionConfig.space, seed: int = 0
) -> tuple[np.ndarray, dict]:
    """GANSpace-style principal directions of a latent set: [k, w_dim] (or [k, num_ws, w_dim]) unit vectors."""
    X = flatten_latents(w, space).astype(np.float64)
    k = min(n_components, X.shape[0] - 1, X.shape[1])
    if k < 1:
        raise DirectionError(f"PCA needs at least 2 latents, got {X.shape[0]}")
    pca = PCA(n_components=k, random_state=seed).fit(X)
    comps = pca.components_ / np.linalg.norm(pca.components_, axis=1, keepdims=True)
    shape = (k, w.shape[2]) if space == "w" else (k, *w.shape[1:])
    info = {
        "n_latents": int(X.shape[0]),
        "explained_variance": pca.explained_variance_.tolist(),
        "explained_variance_ratio": pca.explained_variance_ratio_.tolist(),
        "std": np.sqrt(pca.explained_variance_).tolist(),
    }
    return comps.reshape(shape).astype(np.float32), info
