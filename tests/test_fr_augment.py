"""The recipe's augmentations: what each does to a face, and that a per-sample seed fixes every draw."""

import numpy as np
import torch

from facelatent.fr.augment import Augmentation, Augmented, augment, crop_in_place, low_resolution, photometric


def face(seed=0):
    return np.random.default_rng(seed).integers(1, 256, (112, 112, 3), dtype=np.uint8)


def test_crop_keeps_one_region_in_place_and_blacks_out_the_rest():
    image = face()
    out = crop_in_place(image, np.random.default_rng(3))
    kept = (out != 0).any(axis=2)
    rows, cols = np.flatnonzero(kept.any(axis=1)), np.flatnonzero(kept.any(axis=0))
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    assert kept[box].all() and kept.sum() == kept[box].size  # one rectangle
    assert np.array_equal(out[box], image[box])  # not moved, not rescaled: the face stays aligned
    assert 0.2 * 112 * 112 * 0.95 <= kept.sum() < 112 * 112


def test_low_resolution_blurs_and_keeps_the_size():
    image = face()
    out = low_resolution(image, np.random.default_rng(1))
    assert out.shape == image.shape and out.dtype == np.uint8
    # a round trip through fewer pixels loses detail: neighbouring pixels agree more than in the noise image
    assert np.abs(np.diff(out.astype(int), axis=1)).mean() < np.abs(np.diff(image.astype(int), axis=1)).mean()


def test_photometric_keeps_grey_grey_and_changes_levels():
    grey = np.full((112, 112, 3), 100, np.uint8)
    grey[:56] = 60
    out = photometric(grey, np.random.default_rng(2))
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()  # saturation leaves grey
    assert not np.array_equal(out, grey)


def test_seed_fixes_every_draw_and_zero_probabilities_change_nothing():
    image = face()
    aug = Augmentation(1.0, 1.0, 1.0)
    first = augment(image, np.random.default_rng(7), aug)
    assert np.array_equal(first, augment(image, np.random.default_rng(7), aug))
    assert not np.array_equal(first, augment(image, np.random.default_rng(8), aug))
    assert np.array_equal(augment(image, np.random.default_rng(7), Augmentation(0, 0, 0)), image)


class Base(torch.utils.data.Dataset):
    def __len__(self):
        return 1

    def __getitem__(self, key):
        index, flip = key
        image = face()[:, ::-1] if flip else face()
        return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))), 4


def test_augmented_view_passes_flip_and_seed():
    view = Augmented(Base(), Augmentation(0.0, 0.0, 1.0))
    a, label = view[(0, True, 5)]
    b, _ = view[(0, True, 5)]
    assert label == 4 and torch.equal(a, b) and a.shape == (3, 112, 112)
    expected = augment(face()[:, ::-1].copy(), np.random.default_rng(5), Augmentation(0.0, 0.0, 1.0))
    assert a.dtype == torch.uint8 and torch.equal(a.permute(1, 2, 0), torch.from_numpy(expected))
    plain, _ = Augmented(Base(), Augmentation(0, 0, 0))[(0, True, 5)]
    assert torch.equal(plain.permute(1, 2, 0), torch.from_numpy(face()[:, ::-1].copy()))
