"""align_rows (the align_shard job's loop) on bad inputs: each works or lands in rejects with a reason; none stops
the shard."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import fetched_model

from facelatent.align.job import AlignConfig, align_report, align_rows, align_shard, read_rejects, summarize_rejects
from facelatent.datasets import index_dataset
from facelatent.errors import FaceLatentError, InputFileError
from facelatent.store import read_table


@pytest.fixture(scope="module")
def folder_shard(demo_root, tmp_path_factory):
    index = index_dataset("folder", demo_root / "folder")
    out = tmp_path_factory.mktemp("aligned") / "000.h5"
    summary = align_rows(
        index,
        demo_root / "folder",
        "folder",
        out,
        AlignConfig(method="template", output_size=64),
        progress=False,
        mtcnn_weights=fetched_model("mtcnn"),
    )
    cases = pd.read_csv(demo_root / "ground_truth" / "folder_cases.tsv", sep="\t").set_index("path")
    return out, summary, index, cases


def test_bad_inputs_are_rejected_with_reasons(folder_shard):
    out, summary, index, cases = folder_shard
    rejects = read_rejects(out).set_index("path")
    reasons = rejects["reason"].to_dict()
    assert "empty file" in reasons["broken/empty.jpg"]
    assert "truncated" in reasons["broken/truncated.png"]
    assert reasons["misc/no_face.png"] == "no face found"
    assert summary["aligned"] + summary["rejected"] == len(index)


def test_odd_formats_are_aligned(folder_shard):
    out, _, _, cases = folder_shard
    table = read_table(out, "facelatent.aligned")
    ids = list(table["ids"])
    for path in (
        "misc/grey_face.png",
        "misc/cmyk_face.jpg",
        "misc/deep16_face.png",
        "people/carol/selfie.webp",
        "people/bob/scan.bmp",
    ):
        assert cases.loc[path, "id"] in ids, path
    assert table["images"].shape[1:] == (64, 64, 3) and table["images"].dtype == np.uint8


def test_two_faces_keep_the_largest_and_say_so(folder_shard):
    out, _, _, cases = folder_shard
    table = read_table(out, "facelatent.aligned")
    k = list(table["ids"]).index(cases.loc["misc/two_faces.jpg", "id"])
    assert table["notes"][k] == "kept the largest of 2 faces"
    larger_box = [float(v) for v in cases.loc["misc/two_faces.jpg", "boxes"].split(";")[0].split(",")]
    eyes_x = table["points5"][k][:2, 0]
    assert larger_box[0] < eyes_x.min() and eyes_x.max() < larger_box[0] + larger_box[2]


def test_too_many_rejects_fail_with_a_summary(folder_shard):
    out, summary, _, _ = folder_shard
    share = summary["rejected"] / (summary["aligned"] + summary["rejected"])
    summarize_rejects([out], max_share=share + 0.01)
    with pytest.raises(FaceLatentError, match=r"rejected .* > align.max_reject_share .*no face found"):
        summarize_rejects([out], max_share=share / 2)


def test_align_shard_job_aligns_its_shard_from_its_rows_file_alone(tmp_path):
    """The align_shard job reads only its shard's rows file (the full index is deleted here) and aligns those rows;
    align_report writes the rejects table and the preview of the dataset's shards."""
    import cv2

    from facelatent.datasets import assign_shards, write_index, write_shard_rows

    rng = np.random.default_rng(0)
    rows = []
    for i in range(5):
        cv2.imwrite(str(tmp_path / f"{i:05d}.png"), rng.integers(0, 255, (40, 40, 3), dtype=np.uint8))
        rows.append({"id": f"{i:05d}", "path": f"{i:05d}.png", "subject": f"s{i}"})
    table = assign_shards(pd.DataFrame(rows), 2)
    write_index(table, tmp_path / "index.tsv")
    write_shard_rows(table, tmp_path / "rows")
    assert sorted(p.name for p in (tmp_path / "rows").iterdir()) == ["000.tsv", "001.tsv", "002.tsv"]
    (tmp_path / "index.tsv").unlink()
    outs = [tmp_path / f"{shard}.h5" for shard in ("000", "001", "002")]
    for shard, out in zip(("000", "001", "002"), outs, strict=True):
        summary = align_shard(
            rows=tmp_path / "rows" / f"{shard}.tsv",
            shard=shard,
            kind="ffhq",
            landmark_source="none",
            root=tmp_path,
            align={"output_size": 16},
            output=out,
            device="cpu",
            progress=False,
        )
        assert summary == {"aligned": 1 if shard == "002" else 2, "rejected": 0}
    assert [list(read_table(out, "facelatent.aligned", ["ids"])["ids"]) for out in outs] == [
        ["00000", "00001"],
        ["00002", "00003"],
        ["00004"],
    ]
    assert (
        align_report(
            shards=outs, max_reject_share=0.5, rejects=tmp_path / "rejects.tsv", preview=tmp_path / "preview.png"
        )
        == 5
    )
    assert (tmp_path / "rejects.tsv").read_text() == "id\tpath\treason\n"
    assert cv2.imread(str(tmp_path / "preview.png")) is not None
    # another shard's rows file is refused, naming the file
    with pytest.raises(InputFileError, match=r"001\.tsv: holds rows of other shards than 000"):
        align_shard(
            rows=tmp_path / "rows" / "001.tsv",
            shard="000",
            kind="ffhq",
            landmark_source="none",
            root=tmp_path,
            align={"output_size": 16},
            output=tmp_path / "x.h5",
            device="cpu",
            progress=False,
        )


def test_68_point_files_and_mtcnn_find_the_same_landmarks(demo_root):
    """The same CK+ face: 5 points from its 68-point file vs MTCNN's, as a normalised mean error (NME)."""
    from facelatent.align import five_points_from_68
    from facelatent.align.job import largest_face, mtcnn_points
    from facelatent.datasets.ckplus import read_landmarks_file
    from facelatent.detect.mtcnn import MTCNN
    from facelatent.images import read_rgb

    root = demo_root / "ckplus"
    index = index_dataset("ckplus", root, frames="peak").head(24)
    detector = MTCNN()
    nme = []
    for _, row in index.iterrows():
        image = read_rgb(root / row["path"])
        found = detector.detect_faces(image)
        if not found:
            continue
        from_68 = five_points_from_68(read_landmarks_file(root / row["landmarks"]))
        from_5 = mtcnn_points(largest_face(found)[0])
        # mean point distance over the inter-ocular distance, the usual landmark error measure
        nme.append(np.linalg.norm(from_68 - from_5, axis=1).mean() / np.linalg.norm(from_68[1] - from_68[0]))
    print(f"68-point files vs MTCNN: NME median {np.median(nme):.3f}, max {np.max(nme):.3f} over {len(nme)} faces")
    assert len(nme) >= 20
    # a file from another frame, a flipped face or swapped eyes gives NME > 0.5; one wide-open mouth moves
    # MTCNN's mouth corners more than the typical face's
    assert np.median(nme) < 0.12 and np.max(nme) < 0.25


# ---- bad landmarks and hostile image files: rejects with a reason, never a crash ----------------------


def _ckplus_case(root, name: str, landmarks: np.ndarray, image: np.ndarray) -> dict:
    import cv2

    cv2.imwrite(str(root / f"{name}.png"), image)
    np.savetxt(root / f"{name}_landmarks.txt", landmarks, fmt="%.7e")
    return {"id": name, "path": f"{name}.png", "landmarks": f"{name}_landmarks.txt", "subject": "S001"}


@pytest.mark.parametrize("method", ["ffhq", "template"])
def test_zero_or_nan_landmarks_are_rejects(tmp_path, method):
    """All-zero and NaN landmark files: with `ffhq` they raised a ValueError that stopped the shard, with
    `template` they gave a flat grey face that was aligned. Both are rejects now; the good face still aligns."""
    from facelatent.align.template import template_landmarks_for_box

    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (160, 160, 3), dtype=np.uint8)
    rows = [
        _ckplus_case(tmp_path, "good", template_landmarks_for_box(40, 40, 80, 80), image),
        _ckplus_case(tmp_path, "zeros", np.zeros((68, 2)), image),
        _ckplus_case(tmp_path, "nans", np.full((68, 2), np.nan), image),
    ]
    out = tmp_path / "000.h5"
    summary = align_rows(
        pd.DataFrame(rows), tmp_path, "ckplus", out, AlignConfig(method=method, output_size=32), progress=False
    )
    assert summary == {"aligned": 1, "rejected": 2}
    reasons = read_rejects(out).set_index("id")["reason"].to_dict()
    assert "bad landmarks: degenerate" in reasons["zeros"]
    assert "bad landmarks: NaN" in reasons["nans"]
    assert list(read_table(out, "facelatent.aligned")["ids"]) == ["good"]


def _gradient_i32() -> np.ndarray:
    return (np.arange(64 * 64, dtype=np.int64).reshape(64, 64) * (2**31 - 1) // (64 * 64 - 1)).astype(np.int32)


@pytest.mark.parametrize("decoder", ["opencv", "pillow"])
def test_32_bit_images_are_scaled_not_wrapped_or_clipped(tmp_path, monkeypatch, decoder):
    """A 32-bit integer TIFF (Pillow mode 'I') spanning 0..2^31-1: 8-bit values follow the data (value / 2^31 *
    255). OpenCV's path clipped it to 0..255 (all white), Pillow's path wrapped it through uint16."""
    import cv2
    from PIL import Image

    from facelatent.images import read_rgb

    data = _gradient_i32()
    path = tmp_path / "deep32.tif"
    Image.fromarray(data).save(path)
    assert Image.open(path).mode == "I"
    if decoder == "pillow":  # the fallback path, taken when OpenCV cannot decode a file
        monkeypatch.setattr(cv2, "imdecode", lambda *a, **k: None)
    got = read_rgb(path)[..., 0].astype(int)
    expected = np.round(data / (2**31 - 1) * 255)
    assert np.abs(got - expected).max() <= 1
    assert (np.diff(got.ravel()) >= 0).all()


def test_wide_data_is_scaled_from_its_own_bit_depth():
    """A 17-bit peak in a 32-bit container keeps its brightness (the container's range would make it black)."""
    from facelatent.images import _to_rgb8

    data = np.array([[0, 65536, 131071]], np.int32)
    np.testing.assert_array_equal(_to_rgb8(data, bgr=False)[0, :, 0], [0, 128, 255])


def test_16_bit_values_in_a_32_bit_mode_keep_the_16_bit_scale(tmp_path):
    from PIL import Image

    from facelatent.images import read_rgb

    data = np.full((8, 8), 65535 // 2, np.int32)
    Image.fromarray(data).save(tmp_path / "i16range.tif")
    assert (read_rgb(tmp_path / "i16range.tif") == 127).all()


def write_bomb_png(path, width: int, height: int) -> None:
    """A 1-bit greyscale PNG of width x height zero pixels: under 200 kB on disk, gigapixels decoded."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    comp, row = zlib.compressobj(9), b"\0" * (1 + (width + 7) // 8)
    block = max(1, (1 << 22) // len(row))
    idat = b"".join(comp.compress(row * min(block, height - y)) for y in range(0, height, block)) + comp.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def test_a_decompression_bomb_is_a_reject(tmp_path):
    """40000 x 40000 pixels in 190 kB: over Pillow's default MAX_IMAGE_PIXELS (and OpenCV's limit, whose
    cv2.error used to escape): a reject naming the size, and the shard goes on."""
    from PIL import Image

    from facelatent.images import read_rgb

    assert Image.MAX_IMAGE_PIXELS == 89478485  # Pillow's default, not lowered by this test
    (tmp_path / "bomb").mkdir()
    write_bomb_png(tmp_path / "bomb" / "bomb.png", 40000, 40000)
    with pytest.raises(InputFileError, match="decompression bomb"):
        read_rgb(tmp_path / "bomb" / "bomb.png")
    index = pd.DataFrame([{"id": "bomb", "path": "bomb/bomb.png", "subject": "x"}])
    summary = align_rows(index, tmp_path, "ffhq", tmp_path / "000.h5", AlignConfig(output_size=32), progress=False)
    assert summary == {"aligned": 0, "rejected": 1}
    assert "decompression bomb" in read_rejects(tmp_path / "000.h5")["reason"][0]
