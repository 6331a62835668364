"""Identity-labelled face images for FR training: a crops manifest (a synthetic run's crops.tsv) or aligned HDF5
shards with the dataset's index (subject = identity); the seeded sampler that gives every process its share of
the one global batch order, so N processes train on the same batches as one."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import cv2
import h5py
import lightning as L
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from facelatent.errors import ConfigError, InputFileError
from facelatent.fr.augment import Augmentation, Augmented
from facelatent.images import read_rgb

IMAGE_SIZE = 112  # arcface framing


def fit_size(image: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """HxWx3 uint8 resized to size x size (linear up, area down)."""
    if image.shape[:2] == (size, size):
        return image
    interpolation = cv2.INTER_AREA if image.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interpolation)


def to_chw(image: np.ndarray, flip: bool) -> torch.Tensor:
    """uint8 [3, H, W] (the embedder's `preprocess` maps it to [-1, 1] in the training step)."""
    image = image[:, ::-1] if flip else image
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


def encode_labels(identities: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Labels 0..C-1 in sorted identity order, and the identities they stand for."""
    names = sorted(set(identities))
    lookup = {name: i for i, name in enumerate(names)}
    return np.array([lookup[i] for i in identities], dtype=np.int64), names


class CropsDataset(Dataset):
    """A manifest TSV (columns identity, path relative to `root`); each image is read when asked for."""

    def __init__(self, manifest: str | Path, root: str | Path):
        table = pd.read_csv(manifest, sep="\t", dtype=str, keep_default_na=False)
        missing = {"identity", "path"} - set(table.columns)
        if missing:
            raise InputFileError(manifest, f"crops manifest lacks columns {sorted(missing)}")
        if table.empty:
            raise InputFileError(manifest, "crops manifest lists no image")
        self.root = Path(root)
        self.paths = table["path"].tolist()
        self.labels, self.identities = encode_labels(table["identity"].tolist())

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: tuple[int, bool]) -> tuple[torch.Tensor, int]:
        index, flip = key
        return to_chw(fit_size(read_rgb(self.root / self.paths[index])), flip), int(self.labels[index])


def shard_ids(path: str | Path) -> list[str]:
    with h5py.File(path, "r") as fh:
        if "ids" not in fh or "images" not in fh:
            raise InputFileError(path, "aligned shard lacks the 'ids' or 'images' dataset")
        return list(fh["ids"].asstr()[:])


class AlignedDataset(Dataset):
    """Aligned HDF5 shards (`ids`, `images` [N, H, W, 3] uint8) labelled by the index's subject column; only
    `subjects` are kept when given. Each image is read when asked for, through one handle per shard and process."""

    def __init__(self, shards: Sequence[str | Path], index: str | Path, subjects: Sequence[str] | None = None):
        table = pd.read_csv(index, sep="\t", dtype=str, keep_default_na=False)
        if not {"id", "subject"} <= set(table.columns):
            raise InputFileError(index, "dataset index lacks the 'id' or 'subject' column")
        subject_of = dict(zip(table["id"], table["subject"], strict=True))
        keep = None if subjects is None else {str(s) for s in subjects}
        self.shards = [str(s) for s in shards]
        rows, names = [], []
        for k, shard in enumerate(self.shards):
            for row, image_id in enumerate(shard_ids(shard)):
                if image_id not in subject_of:
                    raise InputFileError(shard, f"image id '{image_id}' is not in the index {index}")
                if keep is None or subject_of[image_id] in keep:
                    rows.append((k, row))
                    names.append(subject_of[image_id])
        if not rows:
            raise InputFileError(index, f"no aligned image of the subjects {sorted(keep or [])} in the shards")
        self.rows = rows
        self.labels, self.identities = encode_labels(names)
        self._handles: dict[int, h5py.File] = {}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_handles": {}}  # each worker process opens its own handles

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: tuple[int, bool]) -> tuple[torch.Tensor, int]:
        index, flip = key
        shard, row = self.rows[index]
        if shard not in self._handles:
            self._handles[shard] = h5py.File(self.shards[shard], "r")
        image = self._handles[shard]["images"][row]
        return to_chw(fit_size(image), flip), int(self.labels[index])


def identity_dataset(train_set: Mapping) -> CropsDataset | AlignedDataset:
    """The dataset a `train_set` mapping names: {'kind': 'crops', 'manifest', 'root'} or
    {'kind': 'aligned', 'shards', 'index', 'subjects' (None = all)}."""
    kind = train_set.get("kind")
    if kind == "crops":
        return CropsDataset(train_set["manifest"], train_set["root"])
    if kind == "aligned":
        return AlignedDataset(train_set["shards"], train_set["index"], train_set.get("subjects"))
    raise ConfigError(f"train set kind '{kind}' is not 'crops' or 'aligned'")


class GlobalBatchSampler(Sampler):
    """Batches of (index, flip, augmentation seed) keys: one seeded order, flip and seed draw per epoch for the
    global batch, rank r
    taking its r-th slice; incomplete last batches are dropped so every process steps together."""

    def __init__(self, n: int, batch_size: int, seed: int, flip_p: float, rank: int = 0, world_size: int = 1):
        if batch_size % world_size:
            raise ConfigError(
                f"config key 'fr.training.batch_size': {batch_size} is not a multiple of the {world_size} devices"
            )
        if n < batch_size:
            raise ConfigError(
                f"config key 'fr.training.batch_size': {batch_size} is larger than the {n} training images"
            )
        self.n, self.batch_size, self.seed, self.flip_p = n, batch_size, seed, flip_p
        self.rank, self.world_size, self.epoch = rank, world_size, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n // self.batch_size

    def __iter__(self) -> Iterator[list[tuple[int, bool, int]]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order, flips = rng.permutation(self.n), rng.random(self.n) < self.flip_p
        seeds = rng.integers(0, 2**32, self.n)  # each sample's augmentation draws (augment.py)
        local = self.batch_size // self.world_size
        for b in range(len(self)):
            part = slice(b * self.batch_size + self.rank * local, b * self.batch_size + (self.rank + 1) * local)
            yield [(int(i), bool(f), int(s)) for i, f, s in zip(order[part], flips[part], seeds[part], strict=True)]


class FRDataModule(L.LightningDataModule):
    """Training batches only (verification is `evaluate_fr`'s job); prepare_data is a no-op."""

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        seed: int,
        flip_p: float,
        num_workers: int = 0,
        augmentation: Augmentation | None = None,
    ):
        super().__init__()
        self.dataset = Augmented(dataset, augmentation or Augmentation(0.0, 0.0, 0.0))
        self.batch_size, self.seed = batch_size, seed
        self.flip_p, self.num_workers = flip_p, num_workers

    def train_dataloader(self) -> DataLoader:
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        sampler = GlobalBatchSampler(len(self.dataset), self.batch_size, self.seed, self.flip_p, rank, world)
        return DataLoader(
            self.dataset,
            batch_sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )
