"""The training augmentations of the synthetics AdaFace recipe (ALGORITHMS.md 5), each applied with its probability:
a random crop kept in place on a black canvas (the face stays aligned), a low-resolution round trip, and a
photometric jitter of brightness, contrast and saturation. Every draw comes from a per-sample seed the sampler
gives, so N processes and a resumed run augment exactly as one uninterrupted process does."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

INTERPOLATIONS = (cv2.INTER_NEAREST, cv2.INTER_LINEAR, cv2.INTER_AREA, cv2.INTER_CUBIC, cv2.INTER_LANCZOS4)


@dataclass
class Augmentation:
    """Probabilities of each augmentation (0 = off); the recipe uses 0.2 for all three."""

    crop_p: float = 0.2
    low_res_p: float = 0.2
    photometric_p: float = 0.2

    @property
    def active(self) -> bool:
        return max(self.crop_p, self.low_res_p, self.photometric_p) > 0


def crop_in_place(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random region (20-100 % of the area, aspect 3:4 to 4:3) kept where it is; the rest black."""
    h, w = image.shape[:2]
    for _ in range(10):  # as RandomResizedCrop: a few tries, then the whole image
        area = h * w * rng.uniform(0.2, 1.0)
        aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        ch, cw = int(round(np.sqrt(area / aspect))), int(round(np.sqrt(area * aspect)))
        if 0 < ch <= h and 0 < cw <= w:
            top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            out = np.zeros_like(image)
            out[top : top + ch, left : left + cw] = image[top : top + ch, left : left + cw]
            return out
    return image


def low_resolution(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Down to 20-100 % of the side with a random interpolation, and back up (a blurred, blocky face)."""
    h, w = image.shape[:2]
    ratio = rng.uniform(0.2, 1.0)
    small = (max(1, int(w * ratio)), max(1, int(h * ratio)))
    down = cv2.resize(image, small, interpolation=INTERPOLATIONS[int(rng.integers(len(INTERPOLATIONS)))])
    return cv2.resize(down, (w, h), interpolation=INTERPOLATIONS[int(rng.integers(len(INTERPOLATIONS)))])


def photometric(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Brightness, contrast and saturation each scaled by a factor in [0.5, 1.5], in a random order."""
    x = image.astype(np.float32)
    for op in rng.permutation(3):
        factor = rng.uniform(0.5, 1.5)
        if op == 0:
            x = x * factor
        elif op == 1:
            x = (x - x.mean()) * factor + x.mean()  # about the mean grey level
        else:
            grey = x @ np.array([0.299, 0.587, 0.114], np.float32)
            x = (x - grey[..., None]) * factor + grey[..., None]
        x = np.clip(x, 0, 255)
    return np.rint(x).astype(np.uint8)


def augment(image: np.ndarray, rng: np.random.Generator, aug: Augmentation) -> np.ndarray:
    """HxWx3 uint8 through each augmentation that its probability draws."""
    assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8, (image.shape, image.dtype)
    draws = rng.random(3)  # drawn first, so one augmentation's randomness never shifts another's decision
    if draws[0] < aug.crop_p:
        image = crop_in_place(image, rng)
    if draws[1] < aug.low_res_p:
        image = low_resolution(image, rng)
    if draws[2] < aug.photometric_p:
        image = photometric(image, rng)
    return image


class Augmented(Dataset):
    """A dataset of (index, flip) keys seen through (index, flip, seed) keys: the base item, then `augment`."""

    def __init__(self, base: Dataset, aug: Augmentation):
        self.base, self.aug = base, aug

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key: tuple[int, bool, int]) -> tuple[torch.Tensor, int]:
        index, flip, seed = key
        chw, label = self.base[(index, flip)]
        if not self.aug.active:
            return chw, label
        image = augment(np.ascontiguousarray(chw.numpy().transpose(1, 2, 0)), np.random.default_rng(seed), self.aug)
        return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))), label
