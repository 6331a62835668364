"""FFHQ alignment (NVlabs recreate_aligned_images), fixed FFHQ->ArcFace crop, 5-point warps."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from facelatent.align import (
    BOX_ANCHORS,
    align_face,
    align_face_5,
    align_face_68,
    arcface_template,
    crop_ffhq_to_arcface,
    ffhq_quad,
    ffhq_quad_from_5,
    ffhq_quad_from_68,
    ffhq_to_arcface_box,
    five_points_from_68,
    gaussian_blur_hw,
    landmarks68_template,
    norm_crop_5pt,
    pad_amounts,
    points_to_aligned,
    similarity_transform_5pt,
    template_landmarks_for_box,
    warp_affine_torch,
)

DATA = Path(__file__).parent / "data"

WORKED_EYES = [(400.0, 500.0), (600.0, 500.0)]
WORKED_MOUTH = [(430.0, 700.0), (570.0, 700.0)]


# ---------------------------------------------------------------------------------------------
# helpers


def smooth_image(h: int, w: int, seed: int, channels: int = 3) -> np.ndarray:
    """Low-frequency random float32 image in [0, 255]."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, size=(max(h // 12, 2), max(w // 12, 2), channels)).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).reshape(h, w, channels)


def blob_image(h: int, w: int, centres, sigma: float) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w].astype(np.float64)
    img = np.zeros((h, w))
    for cx, cy in centres:
        img += np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))
    return img


def centroid(img: np.ndarray, guess, radius: int) -> np.ndarray:
    """Intensity centroid of a 2-D image inside a square window around `guess`."""
    x0, y0 = int(round(guess[0])), int(round(guess[1]))
    win = img[y0 - radius : y0 + radius + 1, x0 - radius : x0 + radius + 1].astype(np.float64)
    win = np.clip(win - np.median(img), 0, None)
    yy, xx = np.mgrid[y0 - radius : y0 + radius + 1, x0 - radius : x0 + radius + 1]
    return np.array([(win * xx).sum() / win.sum(), (win * yy).sum() / win.sum()])


def rotate_points(pts: np.ndarray, angle_deg: float, centre) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    R = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return (np.asarray(pts) - centre) @ R.T + centre


def render_face(h: int, w: int, lm: np.ndarray, seed: int = 0) -> np.ndarray:
    """A cartoon face drawn from 68 landmarks on a smooth background (RGB uint8)."""
    img = smooth_image(h, w, seed)
    forehead = lm[17:27] + (lm[17:27] - lm[8]) * 0.35
    skin = np.concatenate([lm[:17], forehead]).astype(np.float32)
    hull = cv2.convexHull(np.round(skin * 16).astype(np.int32))
    cv2.fillConvexPoly(img, hull, (205, 160, 130), lineType=cv2.LINE_AA, shift=4)

    def poly(points, colour, closed=True, thickness=-1):
        p = np.round(np.asarray(points) * 16).astype(np.int32)
        if thickness < 0:
            cv2.fillPoly(img, [p], colour, lineType=cv2.LINE_AA, shift=4)
        else:
            cv2.polylines(img, [p], closed, colour, thickness, lineType=cv2.LINE_AA, shift=4)

    poly(lm[36:42], (40, 30, 30))
    poly(lm[42:48], (40, 30, 30))
    poly(lm[17:22], (70, 40, 20), closed=False, thickness=2)
    poly(lm[22:27], (70, 40, 20), closed=False, thickness=2)
    poly(lm[27:36], (150, 100, 90), closed=False, thickness=2)
    poly(lm[48:60], (170, 50, 60))
    poly(lm[60:68], (90, 20, 30))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# the FFHQ square


def test_worked_example_quad_and_output_positions():
    quad, qsize = ffhq_quad(*WORKED_EYES, *WORKED_MOUTH)
    np.testing.assert_allclose(quad, [[100, 120], [100, 920], [900, 920], [900, 120]], atol=1e-9)
    assert qsize == pytest.approx(800.0)
    out = points_to_aligned(WORKED_EYES + WORKED_MOUTH, quad, 1024)
    # DATASETS.md 3.3 gives continuous positions; pixel-index coords are 0.5 less
    expected = np.array([[384, 486.4], [640, 486.4], [422.4, 742.4], [601.6, 742.4]])
    np.testing.assert_allclose(out + 0.5, expected, atol=1e-9)
    assert out[1, 0] - out[0, 0] == pytest.approx(256.0)  # eye term dominates -> 256 px


def test_quad_from_68_and_5_use_the_same_anchors():
    lm = template_landmarks_for_box(100, 80, 300, 300)
    lm = rotate_points(lm, 15.0, np.array([250.0, 230.0]))
    q68, s68 = ffhq_quad_from_68(lm)
    q5, s5 = ffhq_quad_from_5(five_points_from_68(lm))
    np.testing.assert_allclose(q68, q5, atol=1e-9)
    assert s68 == pytest.approx(s5)
    # rotate_level follows the 15 degree tilt; without it the square stays axis-aligned
    top = q68[3] - q68[0]
    assert np.degrees(np.arctan2(top[1], top[0])) == pytest.approx(15.0, abs=1.0)
    qn, sn = ffhq_quad_from_68(lm, rotate_level=False)
    np.testing.assert_allclose(qn[3] - qn[0], [sn, 0.0], atol=1e-9)
    assert sn == pytest.approx(s68)


def test_swapped_eyes_are_rejected_or_flip_the_square():
    with pytest.raises(ValueError):  # v_ee - R(v_em) vanishes for the worked example mirrored
        ffhq_quad(WORKED_EYES[1], WORKED_EYES[0], WORKED_MOUTH[1], WORKED_MOUTH[0])
    with pytest.raises(ValueError):
        ffhq_quad_from_5(np.zeros((4, 2)))


def test_mtcnn_left_eye_is_image_left():
    ref = json.loads((DATA / "mtcnn" / "official_mtcnn_reference.json").read_text())
    n = 0
    for entry in ref.values():
        for det in entry["detections"]:
            if det["confidence"] < 0.99:
                continue
            kp = det["keypoints"]
            pts = np.array(
                [kp[k] for k in ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")], dtype=np.float64
            )
            assert pts[0, 0] < pts[1, 0] and pts[3, 0] < pts[4, 0]
            quad, _ = ffhq_quad_from_5(pts)
            top = quad[3] - quad[0]
            assert abs(np.degrees(np.arctan2(top[1], top[0]))) < 45  # upright square, not flipped
            n += 1
    assert n >= 3


# ---------------------------------------------------------------------------------------------
# the image pipeline


@pytest.mark.parametrize("angle", [0.0, 20.0])
def test_blobs_land_where_the_quad_mapping_says(angle):
    # worked example scaled by 1/4: qsize 200 -> output 256, no shrink, no padding
    anchors = np.array(WORKED_EYES + WORKED_MOUTH) / 4
    anchors = rotate_points(anchors, angle, np.array([125.0, 140.0]))
    blobs = blob_image(300, 300, anchors, sigma=2.0)
    img = np.repeat(np.uint8(np.rint(40 + 200 * blobs))[:, :, None], 3, axis=2)
    quad, qsize = ffhq_quad(*anchors)
    assert qsize == pytest.approx(200.0)
    out = align_face(img, quad, qsize, output_size=256).astype(np.float64)[:, :, 0]
    expected = points_to_aligned(anchors, quad, 256)
    for guess in expected:
        np.testing.assert_allclose(centroid(out, guess, 10), guess, atol=0.05)


def test_shrink_path_keeps_points_within_a_quarter_pixel():
    # qsize 800 for a 64 output -> NVlabs shrinks by 6 first
    anchors = np.array(WORKED_EYES + WORKED_MOUTH)
    blobs = blob_image(1000, 1000, anchors, sigma=8.0)
    img = np.repeat(np.uint8(np.rint(40 + 200 * blobs))[:, :, None], 3, axis=2)
    quad, qsize = ffhq_quad(*anchors)
    out = align_face(img, quad, qsize, output_size=64).astype(np.float64)[:, :, 0]
    expected = points_to_aligned(anchors, quad, 64)
    for guess in expected:
        # NVlabs divides the quad by k in index units: (k-1)/2 source px = 0.2 output px here
        np.testing.assert_allclose(centroid(out, guess, 3), guess, atol=0.25)


def test_align_from_68_vs_5_points_on_a_rendered_face():
    lm = rotate_points(template_landmarks_for_box(60, 50, 200, 200), -12.0, np.array([160.0, 150.0]))
    img = render_face(320, 320, lm, seed=3)
    a68 = align_face_68(img, lm, output_size=128)
    a5 = align_face_5(img, five_points_from_68(lm), output_size=128)
    assert np.array_equal(a68, a5)  # same anchors -> bit-identical crop
    # detector-style 5 points: eye centre = midpoint of the eye corners
    det = five_points_from_68(lm)
    det[0] = (lm[36] + lm[39]) / 2
    det[1] = (lm[42] + lm[45]) / 2
    a5d = align_face_5(img, det, output_size=128).astype(np.float64)
    q68, _ = ffhq_quad_from_68(lm)
    q5, _ = ffhq_quad_from_5(det)
    corner_shift = np.abs(points_to_aligned(q5, q68, 128) - points_to_aligned(q68, q68, 128)).max()
    assert corner_shift < 1.0  # measured 0.97 px at 128
    rel = np.abs(a5d - a68).mean() / 255.0
    assert rel < 0.03, f"mean abs diff {100 * rel:.2f}% of range"  # measured 2.15%: sharp cartoon edges
    # and the face is upright in the output: eyes level within 0.5 px
    quad, _ = ffhq_quad_from_68(lm)
    eyes = points_to_aligned(five_points_from_68(lm)[:2], quad, 128)
    assert abs(eyes[0, 1] - eyes[1, 1]) < 0.5


def test_padding_path_near_the_border():
    lm = template_landmarks_for_box(-30, 10, 150, 150)  # face hangs off the left edge
    img = render_face(200, 220, lm, seed=5)
    quad, qsize = ffhq_quad_from_68(lm)
    border = max(int(np.rint(qsize * 0.1)), 3)
    pad = pad_amounts(quad, img.shape[1], img.shape[0], border)
    assert max(pad) > border - 4  # the reflect/blur branch runs
    padded = align_face(img, quad, qsize, output_size=96).astype(np.float64)
    bare = align_face(img, quad, qsize, output_size=96, enable_padding=False).astype(np.float64)
    # outside the image: black without padding, filled (near the median colour) with it
    corner = (slice(0, 8), slice(0, 8))
    assert bare[corner].max() == 0
    assert padded[corner].min() > 20
    med = np.median(img.reshape(-1, 3).astype(np.float64), axis=0)
    assert np.abs(padded[corner].mean((0, 1)) - med).max() < 40
    # inside the image the two agree closely (the blend only touches the padded band)
    inner = (slice(40, 90), slice(50, 90))
    assert np.abs(padded[inner] - bare[inner]).mean() < 2.0


def test_greyscale_input_becomes_rgb():
    lm = template_landmarks_for_box(40, 40, 120, 120)
    grey = render_face(200, 200, lm, seed=1)[:, :, 1]
    out = align_face_68(grey, lm, output_size=64)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    assert np.array_equal(out[:, :, 0], out[:, :, 2])
    with pytest.raises(ValueError):
        align_face_68(grey.astype(np.float32), lm, output_size=64)


def _scipy_gaussian_reference(img: np.ndarray, sigma: float) -> np.ndarray:
    """scipy.ndimage.gaussian_filter(img, [s, s, 0]) restated in float64 numpy ('reflect' mode)."""
    radius = int(4.0 * sigma + 0.5)
    x = np.arange(-radius, radius + 1)
    k = np.exp(-0.5 * x**2 / sigma**2)
    k /= k.sum()
    out = img.astype(np.float64)
    for axis in (0, 1):
        pad = [(0, 0)] * 3
        pad[axis] = (radius, radius)
        p = np.pad(out, pad, mode="symmetric")  # numpy 'symmetric' == scipy 'reflect'
        n = out.shape[axis]
        out = sum(k[i] * np.take(p, np.arange(i, i + n), axis=axis) for i in range(2 * radius + 1))
    return out


@pytest.mark.parametrize("sigma", [0.7, 2.3, 6.0])
def test_gaussian_blur_matches_scipy_semantics(sigma):
    img = np.random.default_rng(0).uniform(0, 255, (37, 53, 3)).astype(np.float32)
    ours = gaussian_blur_hw(img, sigma)
    ref = _scipy_gaussian_reference(img, sigma)
    assert ours.dtype == np.float32 and ours.shape == img.shape
    np.testing.assert_allclose(ours, ref, atol=2e-4)


# ---------------------------------------------------------------------------------------------
# fixed FFHQ -> ArcFace crop


def test_arcface_box_numbers():
    assert ffhq_to_arcface_box(1024) == (83, 942, 86, 944)
    assert ffhq_to_arcface_box(1024, "iresnet_bob") == (84, 942, 86, 944)
    assert ffhq_to_arcface_box(256) == (20, 235, 21, 236)
    assert ffhq_to_arcface_box(256, "iresnet_bob") == (21, 235, 21, 236)
    with pytest.raises(ValueError):
        ffhq_to_arcface_box(1024, "nope")


def test_crop_ffhq_to_arcface_puts_ffhq_eyes_on_the_template():
    # blobs at synthetics' assumed FFHQ eye positions (1024: 380/650, 480) on a 256 image
    eyes256 = np.array([[380.0, 480.0], [650.0, 480.0]]) / 4 - 0.5
    img = torch.from_numpy(blob_image(256, 256, eyes256, sigma=3.0)).float()[None, None].repeat(2, 3, 1, 1)
    out = crop_ffhq_to_arcface(img)
    assert out.shape == (2, 3, 112, 112)
    got = out[0, 0].numpy()
    for target in arcface_template(112)[:2]:
        # int truncation of the box shifts by < 1 px at 256 (~0.52 px at 112)
        np.testing.assert_allclose(centroid(got, target, 6), target, atol=0.6)


def test_crop_ffhq_to_arcface_gradcheck():
    x = torch.rand(1, 2, 32, 32, dtype=torch.float64, requires_grad=True)
    assert ffhq_to_arcface_box(32) == (2, 29, 2, 29)
    assert torch.autograd.gradcheck(lambda t: crop_ffhq_to_arcface(t, out_size=7), (x,))


# ---------------------------------------------------------------------------------------------
# 5-point similarity and warps


FFHQ5_512 = np.array(
    [
        [192.98138, 239.94708],
        [318.90277, 240.1936],
        [256.63416, 314.01935],
        [201.26117, 371.41043],
        [313.08905, 371.15118],
    ]
)


def _umeyama_svd(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Textbook Umeyama (1991) with the reflection fix, for comparison."""
    ms, md = src.mean(0), dst.mean(0)
    a, b = src - ms, dst - md
    U, S, Vt = np.linalg.svd(b.T @ a / len(src))
    d = np.array([1.0, np.sign(np.linalg.det(U @ Vt))])
    R = U @ np.diag(d) @ Vt
    s = (S * d).sum() / a.var(0).sum()
    return np.concatenate([s * R, (md - s * R @ ms)[:, None]], axis=1)


def test_similarity_ffhq_template_to_arcface_matches_spec():
    M = similarity_transform_5pt(FFHQ5_512 * 2, arcface_template(112))
    spec = [[0.146045, 0.000022, -18.930140], [-0.000022, 0.146045, -17.860021]]
    np.testing.assert_allclose(M, spec, atol=2e-6)


def test_similarity_recovers_and_matches_umeyama():
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 100, (5, 2))
    a, s, t = 0.4, 1.7, np.array([3.0, -8.0])
    R = s * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    M = similarity_transform_5pt(src, src @ R.T + t)
    np.testing.assert_allclose(M, np.concatenate([R, t[:, None]], 1), atol=1e-10)
    for seed in range(5):
        r = np.random.default_rng(seed)
        p, q = r.normal(size=(5, 2)) * 30, r.normal(size=(5, 2)) * 30
        np.testing.assert_allclose(similarity_transform_5pt(p, q), _umeyama_svd(p, q), atol=1e-9)
    # mirrored targets: still a proper rotation (no reflection)
    Mm = similarity_transform_5pt(src, src * [-1, 1])
    assert np.linalg.det(Mm[:, :2]) >= 0
    # torch: batched, same numbers, differentiable
    srct = torch.from_numpy(np.stack([src, src + 1])).requires_grad_(True)
    dstt = torch.from_numpy(np.stack([src @ R.T + t] * 2))
    Mt = similarity_transform_5pt(srct, dstt)
    assert Mt.shape == (2, 2, 3)
    np.testing.assert_allclose(Mt[0].detach().numpy(), M, atol=1e-10)
    assert torch.autograd.gradcheck(lambda p: similarity_transform_5pt(p, dstt), (srct,))


def test_arcface_template_scaling():
    np.testing.assert_allclose(arcface_template(112)[0], [38.2946, 51.6963])
    np.testing.assert_allclose(arcface_template(224), arcface_template(112) * 2)
    np.testing.assert_allclose(arcface_template(128), arcface_template(112) + [8.0, 0.0])
    np.testing.assert_allclose(arcface_template(256), arcface_template(112) * 2 + [16.0, 0.0])


def test_warp_affine_torch_matches_cv2():
    img = smooth_image(90, 100, seed=7)
    M = np.array([[0.9 * np.cos(0.3), -0.9 * np.sin(0.3), 20.0], [0.9 * np.sin(0.3), 0.9 * np.cos(0.3), -12.5]])
    ref = cv2.warpAffine(img, M, (112, 96), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    x = torch.from_numpy(img).permute(2, 0, 1)[None]
    ours = warp_affine_torch(x, torch.from_numpy(M).float()[None], (96, 112))[0].permute(1, 2, 0).numpy()
    rel = np.abs(ours - ref).max() / (img.max() - img.min())
    assert rel < 1e-4, f"max abs diff {rel:.2e} of range"  # measured 1.6e-5 (float32 rounding)


def test_warp_affine_torch_gradcheck():
    x = torch.rand(1, 1, 9, 8, dtype=torch.float64, requires_grad=True)
    M = torch.tensor([[[0.8, 0.1, 0.3], [-0.1, 0.8, 0.7]]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: warp_affine_torch(a, b, 6), (x, M))


def test_norm_crop_5pt_puts_each_items_points_on_the_template():
    tmpl = arcface_template(112)
    pts, imgs = [], []
    for angle, scale, shift in [(10.0, 1.4, (30.0, 20.0)), (-25.0, 0.9, (15.0, 40.0))]:
        p = rotate_points(tmpl * scale, angle, np.array([56.0, 56.0])) + shift
        pts.append(p)
        imgs.append(blob_image(180, 170, p, sigma=2.0 * scale))
    images = torch.from_numpy(np.stack(imgs)).float()[:, None]
    out = norm_crop_5pt(images, torch.from_numpy(np.stack(pts)).float(), size=112)
    assert out.shape == (2, 1, 112, 112)
    for b in range(2):
        for target in tmpl:
            np.testing.assert_allclose(centroid(out[b, 0].numpy(), target, 5), target, atol=0.1)


# ---------------------------------------------------------------------------------------------
# 68-point template


def test_landmarks68_template_is_a_plausible_face():
    lm = landmarks68_template()
    assert lm.shape == (68, 2)
    doc = json.loads((Path(__file__).parents[1] / "resources" / "landmarks68_template.json").read_text())
    assert "meanshape_68" in doc["source"]
    assert lm[36:42, 0].mean() < lm[42:48, 0].mean()  # eye A is image-left
    assert lm[8, 1] > lm[48:60, 1].max() > lm[30, 1] > lm[36:48, 1].max()  # chin, mouth, nose, eyes
    assert lm[0, 0] < lm[30, 0] < lm[16, 0]


def test_template_landmarks_for_box_match_dcgan_positions():
    lm = template_landmarks_for_box(10, 20, 64, 64)
    anchors = five_points_from_68(lm)[[0, 1, 3, 4]]
    target = BOX_ANCHORS * 64 + [10, 20]
    assert np.abs(anchors - target).max() < 0.01 * 64
    quad, qsize = ffhq_quad_from_68(lm)
    assert 75 < qsize < 95  # ~1.3x the box: ArcFace-style frames are tighter than FFHQ (measured 83.7)
