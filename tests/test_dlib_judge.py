"""The dlib ResNet judge: real faces on the demo photos (same face close under a shift and a flip, different
people far, by dlib's 0.6 rule), blank crops, gradients refused, and the Euclidean-threshold counts."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from facelatent.align.crops import arcface_template, similarity_transform_5pt
from facelatent.embeddings.dlib_resnet import SAME_PERSON_DISTANCE, DlibResNetEmbedder
from facelatent.judge.job import embed_crops, judged_identities
from facelatent.judge.separation import euclidean_threshold_shares, finite_rows, separation
from facelatent.paths import resources_dir


@pytest.fixture(scope="module")
def judge() -> DlibResNetEmbedder:
    from conftest import fetched_model

    return DlibResNetEmbedder(fetched_model("dlib_resnet_v1"), fetched_model("dlib68"), batch_size=4)


@pytest.fixture(scope="module")
def detector():
    from conftest import fetched_model

    from facelatent.detect.dlib68 import Dlib68

    return Dlib68(fetched_model("dlib68"))


def load_photo(filename: str) -> np.ndarray:
    path = resources_dir() / "demo_photos" / filename
    if not path.exists():
        from facelatent.fetch import fetch_demo_photo

        fetch_demo_photo(filename, path)
    return np.ascontiguousarray(cv2.imread(str(path), cv2.IMREAD_COLOR)[:, :, ::-1])


def arcface_crop(image: np.ndarray, points5: np.ndarray, shift: float = 0.0) -> np.ndarray:
    """The judge's input domain: an ArcFace 112x112 crop from the detector's 5 points, moved `shift` px."""
    matrix = similarity_transform_5pt(points5 + shift, arcface_template(112))
    return cv2.warpAffine(image, matrix, (112, 112), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b))


# Measured (dlib 20.0.1): the Tom Hanks crop moves 0.071 under a 3 px shift and 0.177 under a flip; the 8 people
# of the three photos (the six Friends of t1.jpg, Tom Hanks, Eileen Collins) lie 0.616-0.96 apart (mean 0.776).
def test_same_face_under_shift_and_flip_is_within_dlibs_threshold(judge, detector):
    image = load_photo("Tom_Hanks_54745.png")
    points = detector.detect_arrays(image).points5()[0]
    face = arcface_crop(image, points)
    desc = judge.embed_arrays([face, arcface_crop(image, points, shift=3.0), np.ascontiguousarray(face[:, ::-1])])
    assert desc.shape == (3, 128) and np.isfinite(desc).all()
    assert distance(desc[0], desc[1]) < SAME_PERSON_DISTANCE
    assert distance(desc[0], desc[2]) < SAME_PERSON_DISTANCE


def test_different_people_are_beyond_dlibs_threshold(judge, detector):
    crops = []
    for name in ("t1.jpg", "Tom_Hanks_54745.png", "astronaut.png"):
        image = load_photo(name)
        crops += [arcface_crop(image, points) for points in detector.detect_arrays(image).points5()]
    assert len(crops) == 8, "the demo photos hold 8 faces of 8 people"
    desc = judge.embed_arrays(crops)
    for i, j in itertools.combinations(range(len(crops)), 2):
        assert distance(desc[i], desc[j]) > SAME_PERSON_DISTANCE, (i, j)


def test_blank_crop_gives_a_nan_row_and_is_dropped(judge, detector):
    image = load_photo("Tom_Hanks_54745.png")
    face = arcface_crop(image, detector.detect_arrays(image).points5()[0])
    blank = np.full((112, 112, 3), 128, np.uint8)
    desc = judge.embed_arrays([face, blank, face])
    assert np.isfinite(desc[0]).all() and np.isnan(desc[1]).all()
    np.testing.assert_array_equal(desc[0], desc[2])
    kept, labels, dropped = finite_rows(desc, np.array([0, 1, 0]))
    assert dropped == 1 and len(kept) == 2 and list(labels) == [0, 0]


def test_gradients_are_refused(judge):
    images = torch.full((1, 3, 112, 112), 100.0, requires_grad=True)
    with pytest.raises(TypeError, match="no gradient"):
        judge.embed(images)
    assert torch.isnan(judge.embed(images.detach())).all()  # blank: NaN, not a made-up descriptor


def test_euclidean_threshold_shares_match_brute_force():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(37, 8)).astype(np.float32) * rng.uniform(0.5, 1.5, size=(37, 1)).astype(np.float32)
    labels = rng.integers(0, 6, size=37)
    d = np.linalg.norm(emb[:, None].astype(np.float64) - emb[None], axis=2)
    i, j = np.triu_indices(len(emb), 1)
    same = labels[i] == labels[j]
    threshold = float(np.median(d[i, j]))
    shares = euclidean_threshold_shares(emb, labels, threshold, block_size=5)
    assert shares.n_genuine == same.sum() and shares.n_impostor == (~same).sum()
    assert shares.genuine_below == (d[i, j][same] < threshold).sum()
    assert shares.impostor_at_or_above == (d[i, j][~same] >= threshold).sum()


def test_separation_drops_nan_rows_and_reports_dlibs_rule():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(4, 16))
    emb = np.repeat(centres, 5, axis=0) + 0.05 * rng.normal(size=(20, 16))
    emb[3] = np.nan
    summary, hists = separation(emb, np.repeat(np.arange(4), 5), distance_threshold=0.6)
    assert summary["dropped_nan_rows"] == 1 and summary["num_faces"] == 19
    assert summary["eer"] == 0.0 and summary["euclidean_threshold"]["genuine_below"] == 1.0
    assert hists.n_genuine == 4 * 10 - 4


def test_judge_embeds_the_crops_of_the_lowest_identities_only(judge, detector, tmp_path):
    """A crops manifest of 3 people x 2 crops (plain and shifted), judged on its 2 lowest identities."""
    image = load_photo("t1.jpg")
    rows = []
    for identity, points in zip((7, 2, 5), detector.detect_arrays(image).points5()[:3], strict=True):
        for label, shift in (("reference", 0.0), ("augmentation_0", 3.0)):
            path = f"000/{identity:05d}/{label}.png"
            (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(tmp_path / path), arcface_crop(image, points, shift)[:, :, ::-1])
            rows.append((identity, label, path))
    manifest = tmp_path / "crops.tsv"
    pd.DataFrame(rows, columns=["identity", "label", "path"]).to_csv(manifest, sep="\t", index=False)
    judged = judged_identities(manifest, 2)
    assert judged.tolist() == [2, 5] and judged_identities(manifest, None).tolist() == [2, 5, 7]
    identity, desc = embed_crops(judge, manifest, tmp_path, judged, block_rows=3)
    assert identity.tolist() == [2, 2, 5, 5] and desc.shape == (4, 128)
    assert distance(desc[0], desc[1]) < SAME_PERSON_DISTANCE < distance(desc[0], desc[2])
