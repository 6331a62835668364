"""CK+ AU labels from merged latents: AU selection, neutral frames, subject-disjoint seeded splits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, TensorDataset

from facelatent.au.config import AUConfig
from facelatent.config import check_split
from facelatent.datasets.ckplus import au_intensity, has_facs, parse_facs
from facelatent.errors import ConfigError, FaceLatentError, InputFileError
from facelatent.latents import read_latents


@dataclass
class AUData:
    x: np.ndarray  # [N, num_ws, w_dim] float32
    y: np.ndarray  # [N, n_aus] 0/1
    aus: list[int]
    subjects: np.ndarray  # [N]
    ids: np.ndarray  # [N]
    split: np.ndarray  # [N] 'train' | 'val' | 'test'


def parse_au_matrix(aus: pd.Series, vocabulary: list[int]) -> np.ndarray:
    """Presence (intensity >= 0) of each AU; CK+ intensity 0 means present without a coded intensity."""
    return np.stack([au_intensity(aus, au) >= 0 for au in vocabulary], axis=1).astype(np.float32)


def au_vocabulary(aus: pd.Series) -> list[int]:
    return sorted({au for text in aus for au, _ in parse_facs(str(text))})


def select_aus(y: np.ndarray, vocabulary: list[int], sequences: np.ndarray, min_active: float) -> list[int]:
    """AUs present in at least `min_active` of the labelled sequences (SUNY's percent_active, per sequence)."""
    n_seq = max(1, len(np.unique(sequences)))
    share = np.array([len(np.unique(sequences[y[:, j] > 0])) / n_seq for j in range(len(vocabulary))])
    return [au for au, s in zip(vocabulary, share, strict=True) if s >= min_active and s > 0]


def subject_splits(subjects: np.ndarray, fractions: tuple[float, float, float], seed: int) -> dict[str, str]:
    """Seeded assignment of whole subjects to train / val / test (at least one subject each)."""
    fractions = check_split(fractions)
    unique = np.array(sorted(set(subjects)))
    order = np.random.default_rng(seed).permutation(len(unique))
    n = len(unique)
    if n < 3:
        raise FaceLatentError(f"AU training needs at least 3 subjects (one each for train, val and test), found {n}")
    n_test = max(1, int(round(fractions[2] * n)))
    n_val = max(1, int(round(fractions[1] * n)))
    if n - n_test - n_val < 1:
        raise ConfigError(
            f"au.split {list(fractions)} leaves no training subject among {n} subjects ({n_val} val, {n_test} test)"
        )
    names = ["test"] * n_test + ["val"] * n_val + ["train"] * (n - n_test - n_val)
    return {str(unique[i]): names[k] for k, i in enumerate(order)}


def load_au_data(
    latents_h5: str | Path,
    min_active: float,
    use_neutral: bool,
    seed: int,
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
) -> AUData:
    """Peak frames carry the FACS labels; first frames can be all-negative neutrals."""
    w, frame = read_latents(latents_h5)
    if "aus" not in frame.columns or "frame_role" not in frame.columns:
        raise InputFileError(
            latents_h5, "has no CK+ FACS labels (columns 'aus' and 'frame_role'); AU training needs a ckplus dataset"
        )
    peak = (frame["frame_role"] == "peak").to_numpy() & has_facs(frame["aus"])
    if not peak.any():
        raise InputFileError(latents_h5, "has no peak frames with FACS labels")
    vocabulary = au_vocabulary(frame["aus"][peak])
    y_all = parse_au_matrix(frame["aus"], vocabulary)
    sequences = (frame["subject"].astype(str) + "/" + frame["sequence"].astype(str)).to_numpy()
    kept = select_aus(y_all[peak], vocabulary, sequences[peak], min_active)
    if not kept:
        raise FaceLatentError(
            f"no AU is active in at least {min_active:.0%} of the sequences of {latents_h5} "
            f"(au.min_active); lower it (AUs seen: {vocabulary})"
        )
    rows = peak | ((frame["frame_role"] == "neutral").to_numpy() if use_neutral else False)
    y = y_all[:, [vocabulary.index(a) for a in kept]]
    y[~peak] = 0  # neutral first frames: no AU active
    subjects = frame["subject"].astype(str).to_numpy()
    assign = subject_splits(subjects[rows], fractions, seed)
    split = np.array([assign[s] for s in subjects[rows]])
    return AUData(w[rows].astype(np.float32), y[rows], kept, subjects[rows], frame["ids"].to_numpy()[rows], split)


class AUDataModule(L.LightningDataModule):
    """Tensors for the three splits; prepare_data is a no-op because Snakemake made the files."""

    def __init__(self, data: AUData, batch_size: int = AUConfig.batch_size, seed: int = AUConfig.seed):
        super().__init__()
        self.data, self.batch_size, self.seed = data, batch_size, seed

    def _subset(self, name: str) -> TensorDataset:
        mask = self.data.split == name
        return TensorDataset(torch.from_numpy(self.data.x[mask]), torch.from_numpy(self.data.y[mask]))

    def setup(self, stage: str | None = None) -> None:
        self.train_set, self.val_set, self.test_set = (self._subset(n) for n in ("train", "val", "test"))

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            self.train_set, batch_size=self.batch_size, shuffle=True, generator=torch.Generator().manual_seed(self.seed)
        )  # au.seed

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self.batch_size)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.test_set, batch_size=self.batch_size)
