"""Demo fixtures: planted ground truth is self-consistent, files follow the real layouts, runs are deterministic."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import h5py
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from facelatent.datasets import index_folder
from facelatent.demo_data import DemoSizes, make_demo_data
from facelatent.demo_data.ckplus import PRESENCE_ONLY_AUS
from facelatent.demo_data.planted import ILLUMINATION_SCORE, MARGIN, au_intensity
from facelatent.generators import load_generator

SMALL = dict(ckplus_subjects=3, ckplus_frames=3, multipie_subjects=2, ffhq_images=3)
MINIMAL = dict(ckplus_subjects=2, ckplus_frames=2, multipie_subjects=1, ffhq_images=3, folder=False)


@pytest.fixture(scope="module")
def demo(tmp_path_factory, dcgan_path):
    out = tmp_path_factory.mktemp("demo")
    return make_demo_data(out, dcgan_path, seed=0, sizes=SMALL)


def labels(demo, name: str) -> pd.DataFrame:
    return pd.read_csv(
        demo["ground_truth"] / f"{name}_labels.tsv",
        sep="\t",
        dtype={"id": str, "subject": str, "sequence": str, "aus": str},
        keep_default_na=False,
    )


def read_latents(demo) -> dict:
    with h5py.File(demo["latents"], "r") as f:
        return {
            name: dict(
                ids=[i.decode() for i in g["ids"][:]],
                z=g["z"][:],
                scores=g["scores"][:],
                names=list(g["scores"].attrs["names"]),
            )
            for name, g in f.items()
        }


def test_directions_are_unit_with_the_planted_correlations(demo):
    d = dict(np.load(demo["directions"]))
    assert all(v.shape == (100,) and abs(np.linalg.norm(v) - 1) < 1e-12 for v in d.values())
    base = ["yaw", "illumination", "surprise", "squint", "scream", "happy"]
    gram = np.stack([d[n] for n in base]) @ np.stack([d[n] for n in base]).T
    assert np.abs(gram - np.eye(len(base))).max() < 1e-12
    assert d["smile"] @ d["happy"] == pytest.approx(0.5) and abs(d["smile"] @ d["yaw"]) < 1e-12
    assert d["au12"] @ d["happy"] == pytest.approx(0.6)
    assert d["au6"] @ d["happy"] == pytest.approx(0.5)
    assert d["au1"] @ d["surprise"] == pytest.approx(0.5)
    assert abs(d["au4"] @ d["happy"]) < 1e-12 and abs(d["au12"] @ d["yaw"]) < 1e-12


def test_scores_are_exact_projections_of_the_latents(demo):
    d = dict(np.load(demo["directions"]))
    for name, g in read_latents(demo).items():
        proj = g["z"].astype(np.float64) @ np.stack([d[n] for n in g["names"]]).T
        assert np.abs(proj - g["scores"]).max() < 1e-4, name
        if name != "folder":
            gt = labels(demo, name)
            assert gt["id"].tolist() == g["ids"]
            cols = np.stack([gt[f"s_{n}"] for n in g["names"]], axis=1)
            assert np.abs(cols - proj).max() < 1e-4, name


def test_ckplus_labels_follow_the_rules(demo):
    gt = labels(demo, "ckplus")
    peak, neutral = gt[gt.frame_role == "peak"], gt[gt.frame_role == "neutral"]
    score_cols = [c for c in gt.columns if c.startswith("s_")]
    assert (neutral[score_cols] < -0.25 + 1e-9).all().all()
    # a happy sequence moves along the planted happy direction alone: its AU6/AU12 scores rise by cos * its rise
    for _, seq in gt[gt.emotion_dir == "file"].groupby(["subject", "sequence"]):
        first, last = seq.iloc[0], seq.iloc[-1]
        if last.emotion == "happy":
            rise = last.s_happy - first.s_happy
            assert last.s_au12 - first.s_au12 == pytest.approx(0.6 * rise) and last.s_au4 == pytest.approx(first.s_au4)
            assert last.s_surprise == pytest.approx(first.s_surprise)
    assert ((peak.s_happy > 0) == (peak.emotion == "happy")).all()
    assert ((peak.s_surprise > 0) == (peak.emotion == "surprise")).all()
    assert (peak[["s_happy", "s_surprise"]].abs() >= MARGIN[0] - 1e-9).all().all()
    for row in peak.itertuples():
        expected = {}
        for au in (1, 2, 4, 6, 12, 25):
            k = au_intensity(getattr(row, f"s_au{au}"))
            if k >= 0:
                expected[au] = 0 if au in PRESENCE_ONLY_AUS else k
        assert row.aus == ";".join(f"{a}:{k}" for a, k in sorted(expected.items())), row.id
        assert "6:" in row.aus and "12:" in row.aus if row.emotion == "happy" else True
    # frames between interpolate: scores are linear in the frame index within a sequence
    seq = gt[(gt.subject == "S010") & (gt.sequence == "002")]
    assert len(seq) == 11 and np.abs(np.diff(seq.s_happy, 2)).max() < 1e-9


def test_multipie_labels_follow_the_rules(demo):
    gt = labels(demo, "multipie")
    assert np.allclose(gt.s_yaw, gt.yaw / 45.0)
    assert np.allclose(gt.s_illumination, gt.illumination_group.map(ILLUMINATION_SCORE))
    for expr in ("smile", "surprise", "squint", "scream"):
        assert ((gt[f"s_{expr}"] > 0) == (gt.expression == expr)).all()
        assert (gt[f"s_{expr}"].abs() >= MARGIN[0] - 1e-9).all()
    assert set(gt[gt.session == 4].groupby("recording").expression.first()) == {"neutral", "scream"}


def test_images_show_the_latents_face_at_its_box(demo, dcgan_path):
    """Re-render z from latents.h5 and find it, edge to edge, in the written image at the recorded box."""
    G = load_generator(dcgan_path)
    lat = read_latents(demo)
    cases = [("ckplus", 0), ("ckplus", -1), ("multipie", 5)]
    for name, k in cases:
        gt = labels(demo, name).iloc[k]
        root = demo[name]
        img = np.array(Image.open(root / gt.path).convert("RGB"))
        x, y, w, h = map(int, gt.box.split(","))
        crop = cv2.resize(img[y : y + h, x : x + w], (64, 64), interpolation=cv2.INTER_AREA).astype(np.float64)
        with torch.no_grad():
            face = G(torch.from_numpy(lat[name]["z"][[k]]))[0].permute(1, 2, 0).numpy()
        face = (face + 1) * 127.5
        if name == "ckplus" and Image.open(root / gt.path).mode == "L":
            face = np.repeat(cv2.cvtColor(face.astype(np.float32), cv2.COLOR_RGB2GRAY)[..., None], 3, 2)
        # the blend margin lies outside the box: every box pixel, border included, is the generator's
        r = np.corrcoef(crop.ravel(), face.ravel())[0, 1]
        psnr = 10 * np.log10(255.0**2 / np.mean((crop - face) ** 2))
        print(f"{name} {gt.id}: correlation {r:.4f}, PSNR {psnr:.1f} dB")
        assert r > 0.99 and psnr > 35, (name, gt.id, r, psnr)


def test_ckplus_files_follow_the_layout(demo):
    root = demo["ckplus"]
    frame = root / "cohn-kanade-images/S005/001/S005_001_00000003.png"
    assert Image.open(frame).mode == "L" and Image.open(frame).size == (640, 490)
    rgb = root / "cohn-kanade-images/S010/001/S010_001_00000001.png"
    assert Image.open(rgb).mode == "RGB" and Image.open(rgb).size == (640, 480)
    assert (root / "Emotion/S005/002").is_dir() and not any((root / "Emotion/S005/002").iterdir())
    assert not (root / "Emotion/S010/001").exists()
    assert (root / "Emotion/S005/001/S005_001_00000003_emotion.txt").read_text() == "   5.0000000e+00\n"
    facs = (root / "FACS/S005/001/S005_001_00000003_facs.txt").read_text()
    assert facs.endswith("\n") and all(len(line) == 32 and line.startswith("   ") for line in facs.splitlines())
    surprise = (root / "FACS/S010/002/S010_002_00000011_facs.txt").read_text()  # AU1+2+25
    assert "   2.5000000e+01   0.0000000e+00" in surprise.splitlines()  # intensity 0 = present, not coded
    for rel in ("cohn-kanade-images/S005", "cohn-kanade-images/S005/001", "Emotion/S005"):
        assert (root / rel / ".DS_Store").is_file()
    lm_text = (root / "Landmarks/S010/002/S010_002_00000011_landmarks.txt").read_text()
    lm = np.array([line.split() for line in lm_text.splitlines()], dtype=float)
    assert lm.shape == (68, 2) and lm_text.endswith("\n")
    gt = labels(demo, "ckplus").set_index("id").loc["S010_002_00000011"]
    x, y, w, h = map(int, gt.box.split(","))
    eyes = np.stack([lm[36:42].mean(0), lm[42:48].mean(0)])
    assert (eyes[:, 0] > x + 0.25 * w).all() and (eyes[:, 0] < x + 0.75 * w).all()
    assert (eyes[:, 1] > y + 0.3 * h).all() and (eyes[:, 1] < y + 0.6 * h).all()


def test_multipie_files_follow_the_layout(demo):
    root = demo["multipie"]
    gt = labels(demo, "multipie")
    for rel in gt.path.sample(5, random_state=0):
        im = Image.open(root / rel)
        assert im.mode == "RGB" and im.size == (640, 480)
    lines = (root / "meta/subject_list.txt").read_text().splitlines()
    assert all(len(line.split(" ")) == 7 for line in lines) and lines[1].split()[1] == "57"
    assert (root / "data/session01/multiview/.DS_Store").is_file()
    assert gt.path.str.fullmatch(r"data/session0\d/multiview/\d{3}/0\d/\d\d_\d/\d{3}_0\d_0\d_\d{3}_\d\d\.png").all()


def test_ffhq_manifest_describes_the_remote_files(demo):
    manifest = json.loads(demo["ffhq_manifest"].read_text())
    assert list(manifest) == ["0", "1000", "60000"]
    assert manifest["60000"]["category"] == "validation" and manifest["0"]["category"] == "training"
    assert manifest["1000"]["image"]["file_path"] == "images1024x1024/01000/01000.png"
    for entry in manifest.values():
        for kind, size in (("image", [1024, 1024]), ("thumbnail", [128, 128]), ("in_the_wild", [640, 480])):
            spec = entry[kind]
            path = demo["ffhq_remote"] / spec["file_path"]
            assert spec["file_url"] == path.resolve().as_uri()
            data = path.read_bytes()
            assert spec["file_size"] == len(data) and spec["file_md5"] == hashlib.md5(data).hexdigest()
            pixels = np.array(Image.open(path))
            assert spec["pixel_size"] == size == [pixels.shape[1], pixels.shape[0]]
            assert spec["pixel_md5"] == hashlib.md5(pixels.tobytes()).hexdigest()
        assert np.array(entry["image"]["face_landmarks"]).shape == (68, 2)
        assert np.array(entry["in_the_wild"]["face_quad"]).shape == (4, 2)
    for folder in ("", "images1024x1024", "thumbnails128x128", "in-the-wild-images"):
        assert (demo["ffhq_remote"] / folder / "LICENSE.txt").is_file()


def test_folder_cases_are_what_they_claim(demo):
    root = demo["folder"]
    cases = pd.read_csv(demo["ground_truth"] / "folder_cases.tsv", sep="\t", keep_default_na=False)
    by_case = dict(zip(cases.case, cases.path, strict=True))
    assert (root / by_case["zero_bytes"]).stat().st_size == 0
    assert Image.open(root / by_case["cmyk_jpeg"]).mode == "CMYK"
    assert Image.open(root / by_case["greyscale"]).mode == "L"
    assert cv2.imread(str(root / by_case["png_16bit_rgb"]), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    with pytest.raises(OSError):
        Image.open(root / by_case["truncated_png"]).load()
    two = cases.set_index("case").loc["two_faces"]
    sizes = [int(b.split(",")[2]) for b in two.boxes.split(";")]
    assert two.n_faces == 2 and len(set(sizes)) == 2
    assert (root / ".hidden/secret.jpg").exists() and (root / "people/.DS_Store").exists()
    assert sorted(cases.id) == sorted(index_folder(root).id)  # ground-truth ids are the indexer's ids


def test_same_seed_same_files_other_seed_other_latents(tmp_path, dcgan_path):
    a = make_demo_data(tmp_path / "a", dcgan_path, seed=3, sizes=MINIMAL)
    b = make_demo_data(tmp_path / "b", dcgan_path, seed=3, sizes=DemoSizes(**MINIMAL))
    files_a = sorted(p.relative_to(a["root"]) for p in a["root"].rglob("*") if p.is_file())
    assert files_a == sorted(p.relative_to(b["root"]) for p in b["root"].rglob("*") if p.is_file())
    skip = {Path("ffhq-dataset-v2.json"), Path("ground_truth/directions.npz")}  # absolute URLs; zip timestamps
    for rel in files_a:
        if rel not in skip:
            assert (a["root"] / rel).read_bytes() == (b["root"] / rel).read_bytes(), rel
    ja = (a["root"] / "ffhq-dataset-v2.json").read_text().replace(str(a["root"].resolve()), "ROOT")
    assert ja == (b["root"] / "ffhq-dataset-v2.json").read_text().replace(str(b["root"].resolve()), "ROOT")
    da, db = np.load(a["directions"]), np.load(b["directions"])
    assert all(np.array_equal(da[k], db[k]) for k in da.files)
    # another seed, in the same dir, without FFHQ: other directions, and no stale FFHQ files left behind
    c = make_demo_data(tmp_path / "a", dcgan_path, seed=4, sizes={**MINIMAL, "ffhq_images": 0})
    assert not np.allclose(np.load(c["directions"])["yaw"], da["yaw"])
    assert c["ffhq_manifest"] is None and not (tmp_path / "a/ffhq_remote").exists()
    files_c = sorted(p.relative_to(c["root"]) for p in c["root"].rglob("*") if p.is_file())
    assert files_c == [
        f for f in files_a if f.parts[0] not in ("ffhq_remote", "ffhq-dataset-v2.json") and f.name != "ffhq_labels.tsv"
    ]
    with h5py.File(c["latents"], "r") as f:
        assert sorted(f) == ["ckplus", "multipie"]
