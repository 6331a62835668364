"""align_shard on bad inputs: each works or lands in rejects with a reason; none stops the shard."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from facelatent.align_job import AlignConfig, align_shard, read_rejects, summarize_rejects
from facelatent.datasets import index_dataset
from facelatent.errors import FaceLatentError
from facelatent.store import read_table
from conftest import fetched_model


@pytest.fixture(scope="module")
def folder_shard(demo_root, tmp_path_factory):
    index = index_dataset("folder", demo_root / "folder")
    out = tmp_path_factory.mktemp("aligned") / "000.h5"
    summary = align_shard(index, demo_root / "folder", "folder", out, AlignConfig(method="template", output_size=64),
                          progress=False, mtcnn_weights=fetched_model("mtcnn"))
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
    for path in ("misc/grey_face.png", "misc/cmyk_face.jpg", "misc/deep16_face.png", "people/carol/selfie.webp",
                 "people/bob/scan.bmp"):
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


def test_68_point_files_and_mtcnn_find_the_same_landmarks(demo_root):
    """The same CK+ face: 5 points from its 68-point file vs MTCNN's, as a normalised mean error (NME)."""
    from facelatent.align import five_points_from_68
    from facelatent.align_job import largest_face, mtcnn_points
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
