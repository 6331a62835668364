"""Intra-class variation estimators on known warps of a real demo face, and the per-part / per-run jobs."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import fetched_model

from facelatent.align.crops import arcface_template
from facelatent.attributes.five_points import mouth_width, pose_from_points
from facelatent.attributes.photometric import illumination
from facelatent.detect.mtcnn import MTCNN
from facelatent.generators import load_generator
from facelatent.synthetic.face_gate import best_detections, to_uint8
from facelatent.synthetic.files import FaceTable, write_references, write_variations
from facelatent.synthetic.job import measure_variation, plot_variation
from facelatent.synthetic.render import SAVED_CROP_SIZE, cpu_generator, map_z, randn
from facelatent.synthetic.variation import angles_to_reference, identity_summary, measure_images

SIZE = SAVED_CROP_SIZE


@pytest.fixture(scope="module")
def detector():
    return MTCNN(weights=fetched_model("mtcnn"))


@pytest.fixture(scope="module")
def faces(dcgan_path):
    """Four seeded demo DCGAN faces as 112 px ArcFace crops (uint8)."""
    G = load_generator(dcgan_path)
    w = map_z(G, randn(cpu_generator(0), (4, G.z_dim), G.w_avg.device), 0.7)
    with torch.no_grad():
        images = G.synthesis(w[:, None].expand(-1, G.num_ws, -1), noise_mode="const")
    images = torch.nn.functional.interpolate(images, size=(SIZE, SIZE), mode="bicubic", antialias=True)
    return to_uint8(images)


def test_template_is_frontal_level_and_neutral():
    t = arcface_template(SIZE)[None]
    pose = pose_from_points(t)
    assert pose["yaw"] == pytest.approx([0.0], abs=0.02)  # the template's nose is 0.4 px off the eye midpoint
    assert pose["pitch"] == pytest.approx([0.0], abs=1e-9) and pose["roll"] == pytest.approx(
        [0.0], abs=0.5
    )  # eyes 0.2 px apart in y
    mirrored = t.copy()
    mirrored[0, 2, 0] += 10  # nose moved toward the image's right
    assert pose_from_points(mirrored)["yaw"][0] > pose["yaw"][0] + 0.2
    assert mouth_width(t)[0] == pytest.approx(np.linalg.norm(t[0, 4] - t[0, 3]) / np.linalg.norm(t[0, 1] - t[0, 0]))


def _squeeze_right(image: np.ndarray, centre: float, k: float) -> np.ndarray:
    """Squeeze the part right of `centre` by k (the far side of a head turned to its left shrinks)."""
    xs = np.arange(SIZE, dtype=np.float32)
    src_x = np.where(xs > centre, centre + (xs - centre) / k, xs)  # output x -> source x
    map_x = np.tile(src_x, (SIZE, 1)).astype(np.float32)
    map_y = np.tile(np.arange(SIZE, dtype=np.float32)[:, None], (1, SIZE))
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _stretch_upper(image: np.ndarray, eye_y: float, nose_y: float, k: float) -> np.ndarray:
    """Stretch rows between eye line and nose by k, compressing nose to bottom (the nose drops: head tilts down)."""
    ys = np.arange(SIZE, dtype=np.float32)
    new_nose = eye_y + (nose_y - eye_y) * k
    src_y = np.where(
        ys <= eye_y,
        ys,
        np.where(
            ys <= new_nose,
            eye_y + (ys - eye_y) / k,
            nose_y + (ys - new_nose) * (SIZE - 1 - nose_y) / (SIZE - 1 - new_nose),
        ),
    )
    map_y = np.tile(src_y[:, None], (1, SIZE)).astype(np.float32)
    map_x = np.tile(np.arange(SIZE, dtype=np.float32), (SIZE, 1))
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def test_pose_estimates_move_the_right_way_under_known_warps(faces, detector):
    t = arcface_template(SIZE)
    nose_x, eye_y, nose_y = t[2, 0], t[:2, 1].mean(), t[2, 1]
    base, squeezed, stretched, rotated = [], [], [], []
    for img in faces:
        base.append(img)
        squeezed.append(_squeeze_right(img, nose_x, 0.7))
        stretched.append(_stretch_upper(img, eye_y, nose_y, 1.25))
        rotated.append(
            cv2.warpAffine(
                img,
                cv2.getRotationMatrix2D((SIZE / 2, SIZE / 2), -10, 1.0),
                (SIZE, SIZE),
                borderMode=cv2.BORDER_REPLICATE,
            )
        )
    m = {
        k: measure_images(detector, v)
        for k, v in (("base", base), ("squeezed", squeezed), ("stretched", stretched), ("rotated", rotated))
    }
    assert all((frame["confidence"] > 0.9).all() for frame in m.values())
    # the right eye moves toward the nose: the nose sits right of the new eye midpoint
    assert (m["squeezed"]["yaw"] - m["base"]["yaw"] > 0.04).all()
    # the template's own shift is +0.09 (eye-nose 20 -> 25 px, nose-mouth 20 -> 18); measured 0.03-0.07
    assert (m["stretched"]["pitch"] - m["base"]["pitch"] > 0.015).all()
    # cv2's angle -10 turns the image clockwise on screen: the eye line goes down to the right, roll ~ +10
    assert np.abs(m["rotated"]["roll"] - m["base"]["roll"] - 10).max() < 3
    # in-plane rotation barely moves yaw (measured <= 0.043, detector noise), far less than the squeeze (>= 0.058)
    rot_yaw = np.abs(m["rotated"]["yaw"] - m["base"]["yaw"])
    assert rot_yaw.max() < 0.06 and rot_yaw.mean() < 0.5 * (m["squeezed"]["yaw"] - m["base"]["yaw"]).mean()


def test_illumination_sees_brightness_and_side_light(faces, detector):
    img = faces[0]
    box = best_detections(detector, [img]).box[0]
    dark_left = img.copy()
    dark_left[:, : SIZE // 2] = (dark_left[:, : SIZE // 2] * 0.5).astype(np.uint8)
    b0, a0 = illumination(img, box)
    b1, a1 = illumination(dark_left, box)
    assert b1 < b0 and a1 > a0 + 0.3
    assert illumination(img, np.full(4, np.nan))[0] != illumination(img, np.full(4, np.nan))[0]  # NaN: no face


def test_angles_and_identity_summary():
    e = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    angles = angles_to_reference(np.array([0, 0, 1]), e, {0: np.array([1.0, 0.0]), 1: np.array([1.0, 1.0])})
    assert angles == pytest.approx([0.0, np.pi / 2, 0.0], abs=1e-6)
    faces = pd.DataFrame(
        {
            "identity": [0, 0, 0, 1, 1],
            "label": ["reference", "augmentation_0", "augmentation_1", "reference", "augmentation_0"],
            "confidence": [0.99, 0.99, 0.0, 0.99, 0.99],
            **{k: [0.0, 0.2, 0.4, 1.0, 1.0] for k in ("yaw", "pitch", "mouth", "brightness", "asymmetry")},
            "angle_to_reference": [0.0, 0.3, 0.5, 0.0, 0.1],
        }
    )
    s = identity_summary(faces).set_index("identity")
    assert s.loc[0, "yaw_std"] == pytest.approx(np.std([0.0, 0.2, 0.4])) and s.loc[1, "yaw_std"] == 0
    assert s.loc[0, "angle_mean"] == pytest.approx(0.4) and s.loc[0, "detected"] == pytest.approx(2 / 3)


def test_measure_and_merge_variation_end_to_end(faces, detector, tmp_path):
    ids = np.array([0, 1])
    rng = np.random.default_rng(0)
    ref_e = rng.normal(size=(2, 8)).astype(np.float32)
    write_references(
        tmp_path / "references.h5",
        ids,
        np.zeros((2, 4)),
        ref_e,
        None,
        {},
        "random",
        {},
        {},
        {},
        {"face_redraws": np.array([0, 3]), "face_confidence": np.ones(2), "face_landmark_error": np.zeros(2)},
        {"redraws": 3, "redrawn_identities": 1},
    )
    var_e = np.stack([ref_e[0], -ref_e[1]])  # identity 0's variation equals its reference, identity 1's opposite
    table = FaceTable(ids, np.array(["augmentation_0"] * 2, dtype=object), np.zeros((2, 4), np.float32), var_e)
    write_variations(tmp_path / "000.h5", table, {}, "000", 2, 1, "dispersion", {}, {}, {})
    (tmp_path / "crops" / "000").mkdir(parents=True)
    rows = []
    for i, (identity, label) in enumerate(
        [(0, "reference"), (0, "augmentation_0"), (1, "reference"), (1, "augmentation_0")]
    ):
        cv2.imwrite(str(tmp_path / "crops" / "000" / f"{i}.png"), faces[i][:, :, ::-1])
        rows.append({"identity": identity, "label": label, "path": f"000/{i}.png"})
    pd.DataFrame(rows).to_csv(tmp_path / "manifest.tsv", sep="\t", index=False)
    out = tmp_path / "variation" / "000.tsv"
    n = measure_variation(
        references=tmp_path / "references.h5",
        variations=tmp_path / "000.h5",
        manifest=tmp_path / "manifest.tsv",
        crops_dir=tmp_path / "crops",
        mtcnn_weights=fetched_model("mtcnn"),
        out_path=out,
    )
    part = pd.read_csv(out, sep="\t")
    assert n == 4 and part["angle_to_reference"].to_numpy() == pytest.approx([0, 0, 0, np.pi], abs=1e-3)
    assert (part["confidence"] > 0.9).all()
    summary = plot_variation(
        parts=[out],
        references=tmp_path / "references.h5",
        out_faces=tmp_path / "v.tsv",
        out_identities=tmp_path / "vi.tsv",
        out_figure=tmp_path / "v.png",
    )
    assert summary["face_redraws"].tolist() == [0, 3] and (tmp_path / "v.png").stat().st_size > 0
    assert len(pd.read_csv(tmp_path / "v.tsv", sep="\t")) == 4
