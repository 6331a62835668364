"""Per-AU metrics a FACS researcher trusts: support, ROC-AUC, AP, F1 at a threshold tuned on validation."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, f1_score, precision_recall_curve, roc_auc_score, roc_curve

from facelatent.store import atomic_path


def tune_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The probability threshold with the best F1 on validation (0.5 when validation has no positives)."""
    if y.sum() == 0 or y.sum() == len(y):
        return 0.5
    precision, recall, thresholds = precision_recall_curve(y, p)
    f1 = 2 * precision * recall / np.clip(precision + recall, 1e-12, None)
    return float(thresholds[int(np.argmax(f1[:-1]))])


def au_metrics(y_test: np.ndarray, p_test: np.ndarray, threshold: float) -> dict:
    defined = 0 < y_test.sum() < len(y_test)
    return {
        "support": int(y_test.sum()),
        "roc_auc": float(roc_auc_score(y_test, p_test)) if defined else float("nan"),
        "average_precision": float(average_precision_score(y_test, p_test)) if y_test.sum() > 0 else float("nan"),
        "f1": float(f1_score(y_test, p_test >= threshold, zero_division=0)),
        "threshold": threshold,
    }


def evaluate(
    aus: list[int], y_val: np.ndarray, p_val: np.ndarray, y_test: np.ndarray, p_test: np.ndarray, prefix: str = ""
) -> pd.DataFrame:
    rows = []
    for j, au in enumerate(aus):
        m = au_metrics(y_test[:, j], p_test[:, j], tune_threshold(y_val[:, j], p_val[:, j]))
        rows.append({"au": au, **{f"{prefix}{k}": v for k, v in m.items()}})
    return pd.DataFrame(rows)


def logistic_baseline(
    x_train: np.ndarray, y_train: np.ndarray, x_eval: list[np.ndarray], seed: int
) -> list[np.ndarray]:
    """Per-AU logistic regression (balanced classes) on the same split; probabilities for each eval set."""
    outs = [np.zeros((len(x), y_train.shape[1])) for x in x_eval]
    for j in range(y_train.shape[1]):
        if y_train[:, j].min() == y_train[:, j].max():  # one class in training: predict its rate
            for o in outs:
                o[:, j] = y_train[0, j]
            continue
        clf = LogisticRegression(class_weight="balanced", max_iter=5000, C=1.0, random_state=seed)
        clf.fit(x_train, y_train[:, j])
        for o, x in zip(outs, x_eval, strict=True):
            o[:, j] = clf.predict_proba(x)[:, 1]
    return outs


def macro(table: pd.DataFrame, column: str) -> float:
    values = table[column].dropna()
    return float(values.mean()) if len(values) else float("nan")


def plot_curves(
    aus: list[int], y_test: np.ndarray, p_net: np.ndarray, p_base: np.ndarray, roc_png: str, pr_png: str
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs = {"roc": plt.subplots(figsize=(6, 5)), "pr": plt.subplots(figsize=(6, 5))}
    colors = plt.cm.tab10(np.linspace(0, 1, max(10, len(aus))))
    for j, au in enumerate(aus):
        y = y_test[:, j]
        if not 0 < y.sum() < len(y):
            continue
        for p, style, who in ((p_net[:, j], "-", "net"), (p_base[:, j], "--", "logreg")):
            fpr, tpr, _ = roc_curve(y, p)
            prec, rec, _ = precision_recall_curve(y, p)
            label = f"AU{au} {who}" if who == "net" else None
            figs["roc"][1].plot(fpr, tpr, style, color=colors[j], label=label)
            figs["pr"][1].plot(rec, prec, style, color=colors[j], label=label)
    figs["roc"][1].plot([0, 1], [0, 1], ":", color="grey")
    for key, (fig, ax), (xl, yl), path in (
        ("roc", figs["roc"], ("false positive rate", "true positive rate"), roc_png),
        ("pr", figs["pr"], ("recall", "precision"), pr_png),
    ):
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.set_title(f"{key.upper()} on test subjects (solid: MLP, dashed: logistic baseline)", fontsize=9)
        ax.legend(fontsize=7, loc="lower right" if key == "roc" else "lower left")
        fig.tight_layout()
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=110)
        plt.close(fig)
