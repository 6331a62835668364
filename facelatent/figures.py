"""Matplotlib figures without pyplot's global state, saved atomically."""

from __future__ import annotations

from pathlib import Path

from facelatent.store import atomic_path


def new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=90, layout="constrained")  # laid out once, at save time
    FigureCanvasAgg(fig)  # Agg canvas without pyplot's global state
    return fig


def save_figure(fig, path: str | Path) -> Path:
    """Write the PNG next to its final name, then rename (no half-written figure is left behind)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return Path(path)
