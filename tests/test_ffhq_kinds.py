"""FFHQ as it really comes: thumbnails are only resized, in-the-wild photos are aligned from the manifest's own 68
landmarks (no detector); every align job reads its shard's rows file, never the whole index; `align.landmarks`
picks the detector of the kinds that detect faces (mtcnn or dlib68).

The fixture is a manifest of the real layout (DATASETS.md §3.2: `image`, `thumbnail` and `in_the_wild` sections with
file:// URLs, md5, size, pixel_size, face_landmarks) made from the demo photos: each in-the-wild photo is a real
photo, its landmarks the 68 points dlib's predictor finds on it (the mean face shape planted in the box dlib finds,
where the predictor is absent), its 1024 image the FFHQ alignment of those points and its thumbnail that image's
Lanczos 128.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from facelatent.align import align_face_68, ffhq_quad_from_68, five_points_from_68, points_to_aligned
from facelatent.align.job import AlignConfig, align_shard, landmark_source, read_rejects
from facelatent.config import check_config
from facelatent.datasets import job as datasets_job
from facelatent.datasets import read_index, read_shard_manifest
from facelatent.demo_data.faces import write_png
from facelatent.demo_data.ffhq import describe_file, file_path
from facelatent.errors import ConfigError, InputFileError
from facelatent.images import read_rgb
from facelatent.store import read_table

REPO = Path(__file__).resolve().parents[1]
PHOTOS = REPO / "resources" / "demo_photos"
PREDICTOR = REPO / "resources" / "models" / "dlib68.dat"
RESOLUTION = 64  # generator.resolution of the workflow runs: the size of every aligned crop

# index -> (demo photo, the face's box x1, y1, x2, y2 as dlib's HOG detector finds it); 1000 exercises the 01000/
# folder, 60000 the validation category; t1.jpg gives two entries, as a photo with several faces does in FFHQ
FACES = {
    0: ("astronaut.png", (179, 83, 267, 171)),
    1000: ("t1.jpg", (452, 300, 578, 425)),
    60000: ("t1.jpg", (65, 284, 170, 389)),
}


def photo(name: str) -> np.ndarray:
    if not (PHOTOS / name).is_file():
        pytest.skip(f"demo photo {name} absent (snakemake resources/demo_photos/{name} fetches it)")
    return read_rgb(PHOTOS / name)


def landmarks_68(image: np.ndarray, box: tuple[int, int, int, int], detector) -> np.ndarray:
    """dlib's 68 points of the face in `box`; without the predictor, the mean face shape planted in that box."""
    from facelatent.align import template_landmarks_for_box

    if detector is None:
        x1, y1, x2, y2 = box
        return template_landmarks_for_box(x1, y1, x2 - x1, y2 - y1)
    faces = detector.detect_arrays(image)
    k = int(np.argmin(np.abs(faces.boxes - np.array(box, np.float64)).sum(axis=1)))
    assert np.abs(faces.boxes[k] - box).max() <= 2, (faces.boxes, box)
    return faces.landmarks[k]


def write_ffhq_fixture(remote: Path, manifest: Path, detector=None) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """The remote tree and `ffhq-dataset-v2.json` of FACES, landmarks from `detector` (a Dlib68; None: planted);
    returns index -> (in-the-wild photo, its 68 points)."""
    entries, truth = {}, {}
    for index, (name, box) in FACES.items():
        wild = photo(name)
        lm = landmarks_68(wild, box, detector)
        quad, qsize = ffhq_quad_from_68(lm)
        # the 1024 image from a 1024 warp, not NVlabs' 4096: only the thumbnail made from it is used here
        image = align_face_68(wild, lm, 1024, transform_size=1024)
        thumb = np.asarray(Image.fromarray(image).resize((128, 128), Image.Resampling.LANCZOS))
        for kind, pixels in (("in_the_wild", wild), ("image", image), ("thumbnail", thumb)):
            write_png(remote / file_path(kind, index), pixels)
        entries[str(index)] = {
            "category": "validation" if index >= 60000 else "training",
            "metadata": {"photo_url": f"https://www.flickr.com/photos/fixture/{index}/", "photo_title": name},
            "image": {
                **describe_file(remote, file_path("image", index)),
                "face_landmarks": points_to_aligned(lm, quad, 1024).tolist(),
            },
            "thumbnail": describe_file(remote, file_path("thumbnail", index)),
            "in_the_wild": {
                **describe_file(remote, file_path("in_the_wild", index)),
                "face_rect": list(box),
                "face_landmarks": lm.tolist(),
                "face_quad": quad.tolist(),
            },
        }
        truth[index] = (wild, lm)
    manifest.write_text(json.dumps(entries))
    return truth


@pytest.fixture(scope="module")
def dlib68():
    """dlib's detector and 68-point predictor, loaded once (a few seconds); None where the predictor is absent."""
    if not PREDICTOR.is_file():
        return None
    from facelatent.detect.dlib68 import Dlib68

    return Dlib68(PREDICTOR)


@pytest.fixture(scope="module")
def ffhq_fixture(tmp_path_factory, dlib68) -> tuple[Path, dict[int, tuple[np.ndarray, np.ndarray]]]:
    folder = tmp_path_factory.mktemp("ffhq_fixture")
    manifest = folder / "ffhq-dataset-v2.json"
    return manifest, write_ffhq_fixture(folder / "remote", manifest, dlib68)


def expected_crop(wild: np.ndarray, lm: np.ndarray, size: int) -> np.ndarray:
    """NVlabs' recreate_aligned_images from the 68 points (eye means 36-41 / 42-47, mouth corners 48 / 54)."""
    return align_face_68(wild, lm, size)


# ---- the landmark source of each dataset ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "options", "landmarks", "source"),
    [
        ("ckplus", {}, "mtcnn", "landmarks68"),
        ("ckplus", {}, "dlib68", "landmarks68"),
        ("ffhq", {}, "mtcnn", "none"),
        ("ffhq", {"kind": "image"}, "dlib68", "none"),
        ("ffhq", {"kind": "thumbnail"}, "mtcnn", "none"),
        ("ffhq", {"kind": "wild"}, "mtcnn", "manifest68"),
        ("ffhq", {"kind": "in_the_wild", "landmarks": False}, "dlib68", "manifest68"),
        ("multipie", {}, "mtcnn", "mtcnn"),
        ("multipie", {}, "dlib68", "dlib68"),
        ("folder", {}, "dlib68", "dlib68"),
    ],
)
def test_landmark_source_follows_kind_ffhq_kind_and_align_landmarks(kind, options, landmarks, source):
    assert landmark_source(kind, options, landmarks) == source


def test_a_wrong_align_landmarks_is_a_schema_error_naming_the_key():
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    check_config(copy.deepcopy(config), REPO / "config" / "schema.yaml")  # the demo config passes
    config["align"]["landmarks"] = "retinaface"
    with pytest.raises(ConfigError, match=r"config key 'align\.landmarks': 'retinaface' is not one of") as info:
        check_config(config, REPO / "config" / "schema.yaml")
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match=r"config key 'align\.landmarks': unknown detector 'hog'"):
        AlignConfig(landmarks="hog")


# ---- per-shard rows ------------------------------------------------------------------------------------------


def index_job(work: Path, manifest: Path | None, images_per_shard: int, dataset: str = "ffhq", **options) -> dict:
    kwargs = dict(
        kind=dataset,
        root=work / "data",
        options=options,
        images_per_shard=images_per_shard,
        index=work / "index.tsv",
        shards=work / "shards.tsv",
        rows=work / "rows",
        downloads=work / "downloads",
        manifest=manifest,
    )
    datasets_job.index_dataset(**kwargs)
    return kwargs


@pytest.mark.parametrize(("kind", "keep"), [("image", False), ("thumbnail", True), ("in_the_wild", False)])
def test_index_writes_each_shards_rows_with_landmarks_where_alignment_needs_them(ffhq_fixture, tmp_path, kind, keep):
    manifest, _ = ffhq_fixture
    job = index_job(tmp_path, manifest, 2, kind=kind, landmarks=keep)
    index = read_index(job["index"])
    assert ("landmarks" in index.columns) == keep  # the index keeps them only when the config asks
    shards = read_shard_manifest(job["shards"])
    assert shards == ["000", "001"] and sorted(p.name for p in job["rows"].iterdir()) == ["000.tsv", "001.tsv"]
    rows = pd.concat([read_index(job["rows"] / f"{shard}.tsv") for shard in shards], ignore_index=True)
    pd.testing.assert_frame_equal(
        rows.drop(columns=["landmarks"], errors="ignore"), index.drop(columns=["landmarks"], errors="ignore")
    )
    assert ("landmarks" in rows.columns) == (keep or kind == "in_the_wild")
    if kind == "in_the_wild":
        entries = json.loads(manifest.read_text())
        for row in rows.itertuples():
            assert json.loads(row.landmarks) == entries[str(row.index)]["in_the_wild"]["face_landmarks"]


def test_folder_datasets_get_rows_files_too(tmp_path):
    photos = tmp_path / "data"
    photos.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        (photos / name).write_bytes(b"x")
    job = index_job(tmp_path, None, 2, dataset="folder")
    assert [read_index(job["rows"] / f"{s}.tsv")["path"].tolist() for s in ("000", "001")] == [
        ["a.png", "b.png"],
        ["c.png"],
    ]


def align_in_the_wild_shard(job: dict, shard: str, output: Path) -> dict:
    """align_shard on one shard's rows file with the manifest's landmarks, at 32 px on the CPU."""
    return align_shard(
        rows=job["rows"] / f"{shard}.tsv",
        shard=shard,
        kind="ffhq",
        landmark_source="manifest68",
        root=job["root"],
        align={"output_size": 32},
        output=output,
        device="cpu",
        progress=False,
    )


def test_an_in_the_wild_shard_aligns_from_its_rows_file_alone(ffhq_fixture, tmp_path):
    """Index, download one shard, then delete the index, the shard manifest, the other shards' rows and the
    manifest: the align job still aligns its shard, from the rows file's landmarks, as the FFHQ procedure does."""
    manifest, truth = ffhq_fixture
    work_manifest = tmp_path / "ffhq-dataset-v2.json"
    shutil.copy(manifest, work_manifest)
    job = index_job(tmp_path, work_manifest, 2, kind="in_the_wild")
    datasets_job.download_shard(
        download_list=job["downloads"] / "001.jsonl", shard="001", root=job["root"], output=tmp_path / "001.json"
    )
    for path in (job["index"], job["shards"], job["rows"] / "000.tsv", work_manifest):
        path.unlink()
    summary = align_in_the_wild_shard(job, "001", tmp_path / "001.h5")
    assert summary == {"aligned": 1, "rejected": 0}
    table = read_table(tmp_path / "001.h5", "facelatent.aligned")
    wild, lm = truth[60000]
    assert list(table["ids"]) == ["60000"]
    np.testing.assert_array_equal(table["images"][0], expected_crop(wild, lm, 32))
    np.testing.assert_allclose(table["points5"][0], five_points_from_68(lm), atol=1e-4)


def test_rows_without_landmarks_are_refused_for_in_the_wild_alignment(ffhq_fixture, tmp_path):
    manifest, _ = ffhq_fixture
    job = index_job(tmp_path, manifest, 4, kind="thumbnail")
    with pytest.raises(InputFileError, match=r"000\.tsv: has no 'landmarks' column"):
        align_in_the_wild_shard(job, "000", tmp_path / "000.h5")


def test_bad_manifest_landmarks_are_rejects(tmp_path):
    from facelatent.align.job import align_rows

    write_png(tmp_path / "a.png", np.zeros((64, 64, 3), np.uint8))
    rows = pd.DataFrame(
        [
            {"id": "00000", "path": "a.png", "subject": "00000", "landmarks": "[]"},
            {"id": "00001", "path": "a.png", "subject": "00001", "landmarks": "[[1,2],[3,"},
            {"id": "00002", "path": "a.png", "subject": "00002", "landmarks": json.dumps([[5.0, 5.0]] * 68)},
        ]
    )
    out = tmp_path / "000.h5"
    summary = align_rows(rows, tmp_path, "ffhq", out, AlignConfig(output_size=16), progress=False, source="manifest68")
    assert summary == {"aligned": 0, "rejected": 3}
    reasons = read_rejects(out)["reason"].tolist()
    assert "expected 68 [x, y] points" in reasons[0]
    assert "not a JSON list" in reasons[1]
    assert "degenerate" in reasons[2]


# ---- end to end through snakemake: index_dataset -> download_shard -> align_shard -> align_report --------------


def run_workflow(work: Path, manifest: Path, with_photos: bool) -> None:
    """One snakemake run over FFHQ thumbnails and FFHQ in-the-wild photos (both downloaded from the fixture's file://
    URLs) and, with `with_photos`, a folder of demo photos under align.landmarks dlib68: its declared input is the
    work folder's resources/models/dlib68.dat (a link to the real one), and the package's own resources folder
    points nowhere, so the job can only have read the declared file."""
    shutil.copy(manifest, work / "ffhq-dataset-v2.json")
    ffhq = {"kind": "ffhq", "manifest": "ffhq-dataset-v2.json", "root": "data/ffhq", "images_per_shard": 4}
    datasets = {
        "thumbs": {**ffhq, "options": {"kind": "thumbnail"}, "project": False},
        "wild": {**ffhq, "options": {"kind": "in_the_wild"}, "project": False},
    }
    targets = ["results/aligned/thumbs/preview.png", "results/aligned/wild/preview.png"]
    if with_photos:
        (work / "photos").mkdir()
        for name in ("astronaut.png", "t1.jpg"):
            shutil.copy(PHOTOS / name, work / "photos" / name)
        (work / "resources" / "models").mkdir(parents=True)
        (work / "resources" / "models" / "dlib68.dat").symlink_to(PREDICTOR)
        datasets["photos"] = {"kind": "folder", "root": "photos", "images_per_shard": 4, "project": False}
        targets.append("results/aligned/photos/000.h5")  # its one shard: the report is checked on the FFHQ sets
    config = {
        "demo": {"enabled": False},
        "generator": {"resolution": RESOLUTION},
        "datasets": datasets,
        "align": {"landmarks": "dlib68"},
        "directions": {},
        "pca": {"components": 0, "dataset": ""},
        "edits": {"dataset": ""},
        "au": {"dataset": None},
        "embedding": {"datasets": []},
    }
    (work / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "FACELATENT_RESOURCES": str(work / "nowhere"),
    }
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--configfile", "config.yaml"]
    proc = subprocess.run(
        [*cmd, "--cores", "2", "--quiet", "rules", "--", *targets],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    logs = "".join(p.read_text() for p in (work / "logs").rglob("*.log")) if (work / "logs").exists() else ""
    assert proc.returncode == 0, (proc.stderr[-3000:], logs[-3000:])


def aligned_config(path: Path) -> dict:
    import h5py

    with h5py.File(path, "r") as fh:
        return json.loads(fh.attrs["config"])


@pytest.mark.slow
def test_thumbnails_and_in_the_wild_photos_end_to_end(ffhq_fixture, dlib68, tmp_path):
    """Thumbnails land resized at the generator's resolution; in-the-wild photos are aligned from the manifest's
    landmarks exactly as the FFHQ procedure aligns them; no rejects. One run (its parse and imports cost most of
    its time), so the folder dataset that checks align.landmarks dlib68 in the workflow rides along when the
    predictor is here."""
    manifest, truth = ffhq_fixture
    run_workflow(tmp_path, manifest, with_photos=dlib68 is not None)
    order = (0, 1000, 60000)

    # Thumbnails: the downloaded 128 px files, area-resized; the 1024 images were never fetched.
    thumbs = read_table(tmp_path / "results/aligned/thumbs/000.h5", "facelatent.aligned")
    assert list(thumbs["ids"]) == ["00000", "01000", "60000"]
    assert thumbs["images"].shape == (3, RESOLUTION, RESOLUTION, 3) and thumbs["images"].dtype == np.uint8
    assert np.isnan(thumbs["points5"]).all()  # nothing located: only resized
    for k, index in enumerate(order):
        thumb = read_rgb(tmp_path / "data/ffhq" / file_path("thumbnail", index))
        resized = cv2.resize(thumb, (RESOLUTION, RESOLUTION), interpolation=cv2.INTER_AREA)
        np.testing.assert_array_equal(thumbs["images"][k], resized)
    assert sorted(p.name for p in (tmp_path / "data/ffhq").iterdir()) == ["in-the-wild-images", "thumbnails128x128"]

    # In-the-wild photos: the FFHQ crop of the manifest's 68 points, from the rows file (the index has none), not
    # from a detector (align.landmarks is dlib68 in this config).
    wild = read_table(tmp_path / "results/aligned/wild/000.h5", "facelatent.aligned")
    assert list(wild["ids"]) == ["00000", "01000", "60000"]
    for k, index in enumerate(order):
        photo_, lm = truth[index]
        assert np.abs(wild["images"][k].astype(int) - expected_crop(photo_, lm, RESOLUTION)).max() <= 1, index
        np.testing.assert_allclose(wild["points5"][k], five_points_from_68(lm), atol=1e-4)
    assert aligned_config(tmp_path / "results/aligned/wild/000.h5")["landmark_source"] == "manifest68"
    assert "landmarks" in read_index(tmp_path / "results/index/wild/rows/000.tsv").columns
    assert "landmarks" not in read_index(tmp_path / "results/index/wild.tsv").columns
    for name in ("thumbs", "wild"):
        assert (tmp_path / f"results/aligned/{name}/rejects.tsv").read_text() == "id\tpath\treason\n"
        assert (tmp_path / f"results/aligned/{name}/preview.png").stat().st_size > 0

    # The folder under align.landmarks dlib68: both photos aligned from dlib's points, the largest of t1's 6 faces.
    if dlib68 is not None:
        out = tmp_path / "results/aligned/photos/000.h5"
        table = read_table(out, "facelatent.aligned")
        assert table["images"].shape == (2, RESOLUTION, RESOLUTION, 3) and len(read_rejects(out)) == 0
        assert aligned_config(out)["landmark_source"] == "dlib68"
        paths = read_index(tmp_path / "results/index/photos/rows/000.tsv").set_index("id")["path"]
        notes = {paths[i]: note for i, note in zip(table["ids"], table["notes"], strict=True)}
        assert notes == {"astronaut.png": "", "t1.jpg": "kept the largest of 6 faces"}


def test_align_landmarks_dlib68_aligns_a_folder_of_demo_photos(dlib68, tmp_path):
    """A folder dataset under align.landmarks dlib68: the align job detects with dlib's predictor file (the rule's
    input) and keeps the largest face, whose eye means and mouth corners are the crop's points."""
    if dlib68 is None:
        pytest.skip(f"{PREDICTOR} absent (`facelatent fetch-models dlib68` fetches it)")
    names = ("astronaut.png", "t1.jpg", "Tom_Hanks_54745.png")
    (tmp_path / "data").mkdir()
    for name in names:
        shutil.copy(PHOTOS / name, tmp_path / "data" / name)
    job = index_job(tmp_path, None, 8, dataset="folder")
    root, rows = job["root"], job["rows"] / "000.tsv"
    assert sorted(read_index(rows)["path"]) == sorted(names)
    summary = align_shard(
        rows=rows,
        shard="000",
        kind="folder",
        landmark_source=landmark_source("folder", {}, "dlib68"),
        root=root,
        align={"output_size": 32, "landmarks": "dlib68"},
        dlib68=PREDICTOR,
        output=tmp_path / "000.h5",
        device="cpu",
        progress=False,
    )
    assert summary == {"aligned": 3, "rejected": 0}
    table = read_table(tmp_path / "000.h5", "facelatent.aligned")
    paths = read_index(rows).set_index("id")["path"]
    for k, id_ in enumerate(table["ids"]):
        image = read_rgb(root / paths[id_])
        faces = dlib68.detect_faces(image)
        best = max(faces, key=lambda d: d["box"][2] * d["box"][3])
        np.testing.assert_allclose(table["points5"][k], list(best["keypoints"].values()), atol=1e-3)
        expected = align_face_68(image, np.array(best["landmarks"]), 32)
        assert np.abs(table["images"][k].astype(int) - expected).max() <= 1, paths[id_]
