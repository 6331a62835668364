"""Rules measure_variation (one variation part) and plot_variation (the run): the per-face variation table, the
per-identity summary and the report figure, with the face gate's redraw counts.

Memory: measure_variation holds one part's embeddings and 256 crops at a time; plot_variation streams the part
tables and keeps per identity one summary row and per face five float32 deviations (20 B; 13 MB at 650,000 faces).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from facelatent.errors import InputFileError
from facelatent.figures import new_figure, save_figure
from facelatent.store import atomic_path, read_table
from facelatent.synthetic.files import REFERENCE_LABEL, read_face_gate
from facelatent.synthetic.variation import SPREADS, angles_to_reference, identity_summary, measure_crops

log = logging.getLogger(__name__)

DEVIATIONS = ("yaw", "pitch", "mouth", "brightness", "asymmetry")


def part_embeddings(
    references: str | Path, variations: str | Path | None
) -> tuple[pd.DataFrame, dict[int, np.ndarray]]:
    """(identity, label, row) of the part's faces with their embeddings stacked in `row` order, and the reference
    embedding of every identity."""
    refs = read_table(references, "facelatent.references", ["identity", "embedding"])
    by_identity = {int(i): e for i, e in zip(refs["identity"], refs["embedding"], strict=True)}
    if variations is None:
        return pd.DataFrame({"identity": refs["identity"], "label": REFERENCE_LABEL}), by_identity
    var = read_table(variations, "facelatent.variations", ["identity", "label", "embedding"])
    keys = pd.DataFrame({"identity": var["identity"].astype(int), "label": var["label"].astype(str)})
    by_identity.update(
        {(int(i), str(lb)): e for i, lb, e in zip(var["identity"], var["label"], var["embedding"], strict=True)}
    )
    return keys, by_identity


def measure_variation(
    *,
    references: str | Path,
    manifest: str | Path,
    crops_dir: str | Path,
    mtcnn_weights: str | Path,
    out_path: str | Path,
    variations: str | Path | None = None,
    device: str = "cpu",
    identities_per_part: int | None = None,
) -> int:
    """Rule measure_variation: variation/{part}.tsv, one row per crop (of the lowest-numbered `identities_per_part`
    identities when given: MTCNN costs about 17 ms per crop on a CPU core) of the part's manifest (paths relative to
    `crops_dir`): identity, label, the measures of variation.measure_images and the FR angle to the reference.
    Returns the row count."""
    from facelatent.detect.mtcnn import MTCNN

    rows = pd.read_csv(manifest, sep="\t", dtype={"identity": np.int64, "label": str, "path": str})
    if identities_per_part is not None:  # a fair sample: identities are drawn independently
        kept = np.sort(rows["identity"].unique())[:identities_per_part]
        rows = rows[rows["identity"].isin(kept)].reset_index(drop=True)
    _, embeddings = part_embeddings(references, variations)
    missing = [
        (i, lb)
        for i, lb in zip(rows["identity"], rows["label"], strict=True)
        if lb != REFERENCE_LABEL and (int(i), lb) not in embeddings
    ]
    if missing:
        raise InputFileError(variations or references, f"no embedding for face {missing[0]} of {manifest}")
    faces = measure_crops(MTCNN(device=device, weights=mtcnn_weights), rows, crops_dir)
    emb = (
        np.stack(
            [
                embeddings[int(i)] if lb == REFERENCE_LABEL else embeddings[(int(i), lb)]
                for i, lb in zip(rows["identity"], rows["label"], strict=True)
            ]
        )
        if len(rows)
        else np.zeros((0, 1))
    )
    refs = {k: v for k, v in embeddings.items() if isinstance(k, int)}
    angle = angles_to_reference(rows["identity"].to_numpy(), emb, refs) if len(rows) else np.zeros(0)
    table = pd.concat([rows[["identity", "label"]].reset_index(drop=True), faces], axis=1).assign(
        angle_to_reference=angle
    )
    with atomic_path(out_path, ".tsv") as tmp:
        table.to_csv(tmp, sep="\t", index=False, float_format="%.5g")
    log.info("measured %d faces; %d without a detected face", len(table), int((table["confidence"] <= 0).sum()))
    return len(table)


def deviations(faces: pd.DataFrame) -> pd.DataFrame:
    """Each face's DEVIATIONS minus its identity's reference value (variations only)."""
    ref = faces[faces["label"] == REFERENCE_LABEL].set_index("identity")[list(DEVIATIONS)]
    var = faces[faces["label"] != REFERENCE_LABEL]
    out = var[list(DEVIATIONS)].to_numpy() - ref.reindex(var["identity"]).to_numpy()
    return pd.DataFrame(out.astype(np.float32), columns=list(DEVIATIONS))


def plot_variation(
    *,
    parts: Sequence[str | Path],
    references: str | Path,
    out_faces: str | Path,
    out_identities: str | Path,
    out_figure: str | Path,
) -> pd.DataFrame:
    """Rule plot_variation: the part tables concatenated (variation.tsv), the per-identity summary with the face
    gate's redraw counts (variation_identities.tsv) and the figure. Returns the summary."""
    summaries, devs = [], []
    with atomic_path(out_faces, ".tsv") as tmp:
        for k, part in enumerate(parts):
            faces = pd.read_csv(part, sep="\t", dtype={"label": str})
            faces.to_csv(tmp, sep="\t", index=False, header=k == 0, mode="w" if k == 0 else "a", float_format="%.5g")
            summaries.append(identity_summary(faces))
            devs.append(deviations(faces))
    summary = pd.concat(summaries, ignore_index=True)
    gate, gate_summary = read_face_gate(references)
    if gate:
        redraws = pd.Series(gate["face_redraws"], index=gate["identity"])
        summary["face_redraws"] = redraws.reindex(summary["identity"]).fillna(0).astype(int).to_numpy()
    with atomic_path(out_identities, ".tsv") as tmp:
        summary.to_csv(tmp, sep="\t", index=False, float_format="%.5g")
    variation_figure(summary, pd.concat(devs, ignore_index=True), gate_summary, out_figure)
    log.info(
        "per identity (median): %s",
        ", ".join(f"{c} {summary[c].median():.4f}" for c in [f"{s}_std" for s in SPREADS] + ["angle_mean"]),
    )
    return summary


def variation_figure(summary: pd.DataFrame, devs: pd.DataFrame, gate_summary: dict, path: str | Path) -> Path:
    """Top: per-identity spreads (one dot per identity), mean angle to the reference, face-gate redraws.
    Bottom: distributions of each variation's change from its reference."""
    fig = new_figure(16.0, 6.4)
    axes = fig.subplots(2, len(DEVIATIONS))
    rng = np.random.default_rng(0)  # jitter only
    ax = axes[0, 0]
    for k, name in enumerate(SPREADS):
        values = summary[f"{name}_std"].to_numpy()
        ax.scatter(k + rng.uniform(-0.2, 0.2, len(values)), values, s=10, alpha=0.6)
    ax.set_xticks(range(len(SPREADS)), [s for s in SPREADS], rotation=30)
    ax.set_title("per-identity std")
    ax = axes[0, 1]
    ax.scatter(summary["identity"], summary["angle_mean"], s=10, label="mean")
    ax.scatter(summary["identity"], summary["angle_max"], s=10, marker="x", label="max")
    ax.set(xlabel="identity", ylabel="radians", title="FR angle of variations to reference")
    ax.legend(fontsize=7)
    ax = axes[0, 2]
    if "face_redraws" in summary:
        ax.bar(summary["identity"], summary["face_redraws"])
        ax.set_title(
            f"face gate redraws: {gate_summary.get('redraws', 0)} over "
            f"{gate_summary.get('redrawn_identities', 0)} identities"
        )
    else:
        ax.set_title("face gate off")
    ax.set(xlabel="identity")
    ax = axes[0, 3]
    ax.scatter(summary["yaw_std"], summary["angle_mean"], s=10)
    ax.set(xlabel="yaw std", ylabel="mean angle (rad)", title="pose spread vs identity drift")
    ax = axes[0, 4]
    ax.axis("off")
    text = "\n".join(f"{c:>16}: {summary[c].median():.4f}" for c in [f"{s}_std" for s in SPREADS] + ["angle_mean"])
    ax.text(0, 1, "median over identities\n" + text, va="top", family="monospace", fontsize=8)
    for k, name in enumerate(DEVIATIONS):
        ax = axes[1, k]
        values = devs[name].to_numpy()
        values = values[np.isfinite(values)]
        ax.hist(values, bins=40)
        ax.set(title=f"{name} - reference", xlabel=name)
    return save_figure(fig, path)
