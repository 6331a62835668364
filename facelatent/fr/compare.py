"""Every model's evaluation in one table, laid out as the papers print it, and one plot.

Rows are training sets (and the untrained backbone), columns the benchmarks and their average; a cell is the
10-fold accuracy in percent with its standard deviation over the folds.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from facelatent.errors import InputFileError
from facelatent.figures import new_figure, save_figure

log = logging.getLogger(__name__)

EVALUATION_COLUMNS = ("model", "benchmark", "accuracy", "accuracy_std")


def read_evaluations(paths: Sequence[str | Path]) -> pd.DataFrame:
    """All evaluate_fr tables stacked, in the order given."""
    frames = []
    for path in paths:
        frame = pd.read_csv(path, sep="\t")
        missing = [c for c in EVALUATION_COLUMNS if c not in frame.columns]
        if missing:
            raise InputFileError(path, f"not an evaluate_fr table (missing {', '.join(missing)})")
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def comparison_frame(evaluations: pd.DataFrame) -> pd.DataFrame:
    """One row per model, one 'accuracy ± std' column per benchmark, then 'avg' (mean accuracy)."""
    order = list(dict.fromkeys(evaluations["model"]))
    benchmarks = [b for b in dict.fromkeys(evaluations["benchmark"]) if b != "average"]
    cells = evaluations.assign(cell=[f"{a:.2f} ± {s:.2f}" for a, s in evaluations[["accuracy", "accuracy_std"]].values])
    table = cells[cells["benchmark"] != "average"].pivot(index="model", columns="benchmark", values="cell")
    table = table.reindex(index=order, columns=benchmarks)
    # evaluate_fr's 'average' row (the mean of unrounded accuracies); the mean of the cells where it is missing
    means = evaluations[evaluations["benchmark"] != "average"].groupby("model")["accuracy"].mean()
    means.update(evaluations[evaluations["benchmark"] == "average"].set_index("model")["accuracy"])
    table["avg"] = [f"{means[m]:.2f}" for m in order]
    return table.rename_axis("training set").reset_index()


def plot_comparison(evaluations: pd.DataFrame, out_png: str | Path) -> Path:
    """Grouped bars: accuracy per benchmark for each model, with the fold standard deviation."""
    rows = evaluations[evaluations["benchmark"] != "average"]
    models = list(dict.fromkeys(rows["model"]))
    benchmarks = list(dict.fromkeys(rows["benchmark"]))
    fig = new_figure(1.6 + 1.4 * len(benchmarks), 3.6)
    ax = fig.add_subplot()
    width = 0.8 / len(models)
    for k, model in enumerate(models):
        mine = rows[rows["model"] == model].set_index("benchmark").reindex(benchmarks)
        x = np.arange(len(benchmarks)) + (k - (len(models) - 1) / 2) * width
        ax.bar(x, mine["accuracy"], width, yerr=mine["accuracy_std"], capsize=3, label=model)
    ax.axhline(50, color="grey", linestyle=":", linewidth=1)  # chance on balanced pairs
    ax.set_xticks(np.arange(len(benchmarks)), benchmarks)
    ax.set_ylabel("10-fold verification accuracy (%)")
    ax.set_ylim(min(40, float(rows["accuracy"].min()) - 5), 100)
    ax.legend(title="training set", fontsize=8)
    return save_figure(fig, out_png)


def comparison_markdown(table: pd.DataFrame) -> str:
    """The comparison table as Markdown, as papers print it."""
    lines = ["| " + " | ".join(table.columns) + " |", "|---" * len(table.columns) + "|"]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"
