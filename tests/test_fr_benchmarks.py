"""Verification benchmarks on disk: insightface `.bin` files (read exactly, payloads refused), LFW pair lists, and
the evaluate_fr job end to end with a small real IResNet."""

from __future__ import annotations

import builtins
import os
import pickle
import struct
import subprocess

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from facelatent.errors import InputFileError
from facelatent.fr.binfile import read_bin, write_bin
from facelatent.fr.pairs import read_pair_folder


def random_faces(n: int, size: tuple[int, int] = (24, 20), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, *size, 3), dtype=np.uint8)


def smooth_faces(n: int, size: int = 32) -> np.ndarray:
    """Gradients (JPEG keeps them within a few levels)."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    return (
        np.stack([np.stack([x * 6 + k, y * 6, (x + y) * 3 + 2 * k], -1) for k in range(n)])
        .clip(0, 255)
        .astype(np.uint8)
    )


def encoded(images: np.ndarray, fmt: str) -> list[bytes]:
    """What insightface's packer stores: the encoded file bytes (cv2 writes BGR)."""
    return [cv2.imencode(fmt, cv2.cvtColor(img, cv2.COLOR_RGB2BGR))[1].tobytes() for img in images]


def py2_pickle(bins: list[bytes], issame: list[bool]) -> bytes:
    """The stream Python 2's pickle.dump(protocol=2) writes for (list of str, list of bool): BINSTRING opcodes."""
    out = [b"\x80\x02", b"]("]  # PROTO 2, EMPTY_LIST, MARK
    for b in bins:
        out.append(b"T" + struct.pack("<i", len(b)) + b)  # BINSTRING: a py2 str
    out.append(b"e](")  # APPENDS, EMPTY_LIST, MARK
    out += [b"\x88" if s else b"\x89" for s in issame]  # NEWTRUE / NEWFALSE
    out.append(b"e\x86.")  # APPENDS, TUPLE2, STOP
    return b"".join(out)


def py2_numpy_pickle(bins: list[bytes], issame: list[bool]) -> bytes:
    """What Python 2's pickle.dump(protocol=2) writes for 1-D uint8 numpy arrays of the encoded bytes: numpy's
    `_reconstruct` + BUILD, with the dtype name, byte-order flag and raw data as py2 `str` (BINSTRING)."""

    def py2_str(b: bytes) -> bytes:
        return b"T" + struct.pack("<i", len(b)) + b

    dtype = b"cnumpy\ndtype\n" + py2_str(b"u1") + b"\x89\x88\x87R"  # dtype('u1', False, True)
    dtype += b"(K\x03" + py2_str(b"|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"  # its BUILD state
    out = [b"\x80\x02]("]
    for b in bins:
        out.append(b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + py2_str(b"b") + b"\x87R")
        out.append(b"(K\x01J" + struct.pack("<i", len(b)) + b"\x85" + dtype + b"\x89" + py2_str(b) + b"tb")
    out.append(b"e](" + b"".join(b"\x88" if s else b"\x89" for s in issame) + b"e\x86.")
    return b"".join(out)


def assert_one_line_naming(exc: pytest.ExceptionInfo, path) -> str:
    message = str(exc.value)
    assert "\n" not in message and str(path) in message, message
    return message


# ---- .bin files -----------------------------------------------------------------------------


def test_png_bin_in_the_real_format_reads_back_bit_identical(tmp_path):
    images, issame = random_faces(6), [True, False, True]
    path = tmp_path / "lfw.bin"
    with open(path, "wb") as fh:  # the real layout, as insightface's packer writes it
        pickle.dump((encoded(images, ".png"), issame), fh, protocol=pickle.HIGHEST_PROTOCOL)
    pairs = read_bin(path)
    assert pairs.images.shape == (6, 24, 20, 3) and pairs.images.dtype == np.uint8
    np.testing.assert_array_equal(pairs.images, images)
    np.testing.assert_array_equal(pairs.issame, issame)
    assert pairs.folds is None


def test_write_bin_writes_the_real_layout(tmp_path):
    images, issame = random_faces(4, seed=1), [False, True]
    path = write_bin(tmp_path / "out.bin", images, issame, fmt=".png")
    with open(path, "rb") as fh:
        bins, flags = pickle.load(fh)  # a file we wrote ourselves: the plain reader shows its layout
    assert isinstance(bins, list) and all(isinstance(b, bytes) for b in bins) and len(bins) == 4
    assert flags == issame and all(type(f) is bool for f in flags)
    assert bins[0][:8] == b"\x89PNG\r\n\x1a\n"
    np.testing.assert_array_equal(read_bin(path).images, images)
    assert not list(tmp_path.glob("*.partial*"))


def test_jpg_bin_reads_back_within_jpeg_tolerance(tmp_path):
    images = smooth_faces(4)
    path = write_bin(tmp_path / "agedb_30.bin", images, [True, False], fmt=".jpg")
    with open(path, "rb") as fh:
        assert pickle.load(fh)[0][0][:2] == b"\xff\xd8"  # JPEG start-of-image
    diff = np.abs(read_bin(path).images.astype(int) - images.astype(int))
    assert diff.mean() < 2.0 and diff.max() <= 16, (diff.mean(), diff.max())


def test_python2_bytes_layout_is_read(tmp_path):
    images, issame = random_faces(4, seed=2), [True, False]
    path = tmp_path / "cfp_fp.bin"
    path.write_bytes(py2_pickle(encoded(images, ".png"), issame))
    with open(path, "rb") as fh, pytest.raises(UnicodeDecodeError):
        pickle.load(fh)  # the reason insightface retries with encoding='bytes'
    pairs = read_bin(path)
    np.testing.assert_array_equal(pairs.images, images)
    np.testing.assert_array_equal(pairs.issame, issame)


def test_python2_numpy_array_layout_is_read(tmp_path):
    images, issame = random_faces(4, seed=4), [False, True]
    path = tmp_path / "agedb_30.bin"
    path.write_bytes(py2_numpy_pickle(encoded(images, ".png"), issame))
    with open(path, "rb") as fh:
        bins, _ = pickle.load(fh, encoding="bytes")  # numpy itself reads the hand-made stream as uint8 arrays
    assert all(isinstance(b, np.ndarray) and b.dtype == np.uint8 for b in bins)
    pairs = read_bin(path)
    np.testing.assert_array_equal(pairs.images, images)
    np.testing.assert_array_equal(pairs.issame, issame)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_uint8_array_bins_are_read(tmp_path, protocol):
    images = random_faces(2, seed=3)
    bins = [np.frombuffer(b, np.uint8).copy() for b in encoded(images, ".png")]
    path = tmp_path / "calfw.bin"
    with open(path, "wb") as fh:
        pickle.dump((bins, [True]), fh, protocol=protocol)
    np.testing.assert_array_equal(read_bin(path).images, images)


def test_resize_to_a_requested_size(tmp_path):
    path = write_bin(tmp_path / "x.bin", random_faces(2, size=(40, 40)), [True], fmt=".png")
    assert read_bin(path, image_size=(20, 20)).images.shape == (2, 20, 20, 3)


class _Payload:
    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def payloads(marker) -> dict[str, _Payload]:
    return {
        "os.system": _Payload(os.system, f"touch {marker}"),
        "builtins.eval": _Payload(builtins.eval, f"open({str(marker)!r}, 'w').close()"),
        "subprocess.call": _Payload(subprocess.call, ["touch", str(marker)]),
    }


@pytest.mark.parametrize("kind", ["os.system", "builtins.eval", "subprocess.call"])
@pytest.mark.parametrize("where", ["whole", "image"])
def test_code_executing_payload_is_refused_and_nothing_runs(tmp_path, kind, where):
    marker = tmp_path / "pwned"
    payload = payloads(marker)[kind]
    obj = payload if where == "whole" else ([b"\x89PNG", payload], [True])
    path = tmp_path / "cplfw.bin"
    path.write_bytes(pickle.dumps(obj, protocol=2))
    with pytest.raises(InputFileError) as exc:
        read_bin(path)
    message = assert_one_line_naming(exc, path)
    assert "refused global" in message and "nothing was executed" in message
    assert not marker.exists()
    # The same bytes through the plain unpickler do run the payload: the refusal is what kept it from running.
    check = tmp_path / "plain.bin"
    check.write_bytes(pickle.dumps(payloads(tmp_path / "ran")[kind], protocol=2))
    pickle.loads(check.read_bytes())
    assert (tmp_path / "ran").exists()


def test_truncated_bin_is_one_line(tmp_path):
    path = write_bin(tmp_path / "lfw.bin", random_faces(4), [True, False], fmt=".png")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(InputFileError) as exc:
        read_bin(path)
    assert "not a readable .bin pickle" in assert_one_line_naming(exc, path)


@pytest.mark.parametrize(
    "obj, reason",
    [
        ({"bins": [], "issame": []}, "expected a pickled (bins, issame_list) tuple"),
        (([b"a", b"b", b"c"], [True]), "3 images for 1 pairs"),
        (([b"a", b"b"], ["yes"]), "other than bools"),
        (([b"a", 7], [True]), "image 1 is a int"),
    ],
)
def test_wrong_structure_is_one_line(tmp_path, obj, reason):
    path = tmp_path / "bad.bin"
    path.write_bytes(pickle.dumps(obj, protocol=4))
    with pytest.raises(InputFileError) as exc:
        read_bin(path)
    assert reason in assert_one_line_naming(exc, path)


def test_corrupt_image_names_file_and_index(tmp_path):
    bins = encoded(random_faces(4), ".png")
    bins[3] = bins[3][:40]  # a truncated PNG
    path = tmp_path / "lfw.bin"
    path.write_bytes(pickle.dumps((bins, [True, False]), protocol=4))
    with pytest.raises(InputFileError) as exc:
        read_bin(path)
    assert "image 3 (pair 1)" in assert_one_line_naming(exc, path)


def test_non_uint8_array_is_refused(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(pickle.dumps(([np.zeros(4), np.zeros(4)], [True]), protocol=2))
    with pytest.raises(InputFileError) as exc:
        read_bin(path)
    assert "only uint8" in assert_one_line_naming(exc, path)


# ---- pair lists -----------------------------------------------------------------------------


def write_folder(root, pattern: str, people: dict[str, int], seed: int = 0) -> dict[tuple[str, int], np.ndarray]:
    """people: name -> image count; returns (name, num) -> the RGB image written."""
    rng, out = np.random.default_rng(seed), {}
    for name, count in people.items():
        for num in range(1, count + 1):
            img = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
            file = root / pattern.format(name=name, num=num)
            file.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(file), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
            out[(name, num)] = img
    return out


def test_pairs_txt_with_folds_reads_the_images_in_pair_order(tmp_path):
    pattern = "{name}/{name}_{num:04d}.png"
    faces = write_folder(tmp_path / "lfw", pattern, {"Alice": 3, "Bob": 2, "Carol": 1})
    lines = ["2\t1", "Alice\t1\t2", "Alice\t3\tBob\t1", "Bob\t1\t2", "Carol\t1\tAlice\t1"]
    (tmp_path / "pairs.txt").write_text("\n".join(lines) + "\n")
    pairs = read_pair_folder(tmp_path / "pairs.txt", tmp_path / "lfw", pattern)
    order = [("Alice", 1), ("Alice", 2), ("Alice", 3), ("Bob", 1), ("Bob", 1), ("Bob", 2), ("Carol", 1), ("Alice", 1)]
    np.testing.assert_array_equal(pairs.images, np.stack([faces[k] for k in order]))
    np.testing.assert_array_equal(pairs.issame, [True, False, True, False])
    np.testing.assert_array_equal(pairs.folds, [0, 0, 1, 1])  # LFW: per fold, 1 same then 1 different pair


def test_pairs_txt_single_count_has_no_folds_and_resizes(tmp_path):
    write_folder(tmp_path, "{name}/{name}_{num:04d}.jpg", {"A": 2, "B": 1})
    (tmp_path / "pairs.txt").write_text("2\nA 1 2\nA 2 B 1\n")
    pairs = read_pair_folder(tmp_path / "pairs.txt", tmp_path, image_size=(8, 8))
    assert pairs.folds is None and pairs.images.shape == (4, 8, 8, 3)


def test_pairs_txt_missing_image_names_it(tmp_path):
    write_folder(tmp_path, "{name}/{name}_{num:04d}.jpg", {"A": 1})
    (tmp_path / "pairs.txt").write_text("A 1 A 7\n")  # no header: the first line is a pair
    with pytest.raises(InputFileError) as exc:
        read_pair_folder(tmp_path / "pairs.txt", tmp_path)
    assert_one_line_naming(exc, tmp_path / "A" / "A_0007.jpg")


@pytest.mark.parametrize(
    "text, reason", [("3\nA 1 2\n", "announces 3 pairs"), ("A 1\n", "expected 3 fields"), ("A x 2\n", "'x'")]
)
def test_pairs_txt_format_errors_are_one_line(tmp_path, text, reason):
    (tmp_path / "pairs.txt").write_text(text)
    with pytest.raises(InputFileError) as exc:
        read_pair_folder(tmp_path / "pairs.txt", tmp_path)
    assert reason in assert_one_line_naming(exc, tmp_path / "pairs.txt")


# ---- evaluate_fr end to end -----------------------------------------------------------------


def small_iresnet(path, seed: int):
    from facelatent.checkpoints import Checkpoint, save_safetensors_checkpoint
    from facelatent.embeddings.iresnet import IResNetEmbedder

    torch.manual_seed(seed)
    kwargs = dict(layers=[1, 1, 1, 1], widths=[8, 8, 16, 16, 32], num_features=32)
    model = IResNetEmbedder(**kwargs).eval()
    save_safetensors_checkpoint(path, Checkpoint(kind="iresnet", init_kwargs=kwargs, state_dict=model.state_dict()))
    return model


def test_evaluate_fr_end_to_end(tmp_path):
    from facelatent.fr.compare import comparison_frame, comparison_markdown
    from facelatent.fr.job import evaluate_fr
    from facelatent.fr.protocol import l2_normalise, pair_distances, ten_fold_accuracy

    nets = {label: small_iresnet(tmp_path / f"{label}.safetensors", seed) for seed, label in enumerate(["a", "b"])}
    rng = np.random.default_rng(5)
    faces = rng.integers(0, 256, (40, 112, 112, 3), dtype=np.uint8)
    issame = rng.random(20) < 0.5
    write_bin(tmp_path / "lfw.bin", faces, issame, fmt=".png")
    pattern = "{name}/{name}_{num:04d}.png"
    write_folder(tmp_path / "folder", pattern, {"P": 2, "Q": 2, "R": 1, "S": 1, "T": 1}, seed=6)  # 16 x 16 crops
    pair_lines = ["P 1 2", "Q 1 2", "R 1 S 1", "T 1 P 1", "Q 2 R 1"] * 2
    (tmp_path / "pairs.txt").write_text("10\n" + "\n".join(pair_lines) + "\n")
    frame = evaluate_fr(
        models={label: f"iresnet:{tmp_path / f'{label}.safetensors'}" for label in nets},
        weights={label: tmp_path / f"{label}.safetensors" for label in nets},
        benchmarks={
            "lfw": {"bin": tmp_path / "lfw.bin"},
            "folder": {"pairs": tmp_path / "pairs.txt", "root": tmp_path / "folder", "pattern": pattern},
        },
        out_tsv=tmp_path / "fr.tsv",
        device="cpu",
        batch_size=16,
        progress=False,
    )
    table = pd.read_csv(tmp_path / "fr.tsv", sep="\t")
    assert list(table.columns) == [
        "model", "benchmark", "pairs", "accuracy", "accuracy_std", "threshold", "tar_at_far_0.01", "tar_at_far_0.001",
    ]  # fmt: skip
    assert list(zip(table["model"], table["benchmark"], strict=True)) == [
        ("a", "lfw"), ("a", "folder"), ("a", "average"), ("b", "lfw"), ("b", "folder"), ("b", "average"),
    ]  # fmt: skip
    assert table["pairs"].tolist() == [20, 10, 30] * 2
    assert (table["tar_at_far_0.01"][table["benchmark"] != "average"] == "unresolved").all()  # 10 impostors at most
    for model in "ab":
        mine = table[table["model"] == model].set_index("benchmark")
        assert mine.at["average", "accuracy"] == pytest.approx(mine.loc[["lfw", "folder"], "accuracy"].mean(), abs=0.01)
    # The lfw row recomputed from the network itself, fed as arcface_torch feeds it: (x / 255 - 0.5) / 0.5, + mirror.
    with torch.no_grad():
        x = torch.from_numpy(faces).permute(0, 3, 1, 2).float()
        emb = (nets["a"]((x / 255 - 0.5) / 0.5) + nets["a"]((x.flip(3) / 255 - 0.5) / 0.5)).double().numpy()
    result = ten_fold_accuracy(pair_distances(l2_normalise(emb)), issame)
    row = table[(table["model"] == "a") & (table["benchmark"] == "lfw")].iloc[0]
    assert row["accuracy"] == pytest.approx(round(100 * result.accuracy, 2), abs=1e-9)
    assert row["accuracy_std"] == pytest.approx(round(100 * result.std, 2), abs=1e-9)
    pd.testing.assert_frame_equal(frame.reset_index(drop=True), table, check_dtype=False)
    markdown = comparison_markdown(comparison_frame(table)).splitlines()
    assert markdown[0] == "| training set | lfw | folder | avg |" and len(markdown) == 4
    assert markdown[2].startswith(f"| a | {row['accuracy']:.2f} ± {row['accuracy_std']:.2f} | ")


def test_comparison_table_layout(tmp_path):
    from facelatent.fr.job import compare_fr

    frame = pd.DataFrame(
        [
            dict(model="synthetic:demo", benchmark="lfw", accuracy=80.5, accuracy_std=1.25),
            dict(model="synthetic:demo", benchmark="cfp_fp", accuracy=70.0, accuracy_std=2.0),
            dict(model="synthetic:demo", benchmark="average", accuracy=75.25, accuracy_std=np.nan),
            dict(model="untrained", benchmark="lfw", accuracy=55.0, accuracy_std=3.0),
            dict(model="untrained", benchmark="cfp_fp", accuracy=51.0, accuracy_std=4.5),
            dict(model="untrained", benchmark="average", accuracy=53.0, accuracy_std=np.nan),
        ]
    )
    for model, part in frame.groupby("model", sort=False):
        part.to_csv(tmp_path / f"{model}.tsv", sep="\t", index=False)
    table = compare_fr(
        evaluations=[tmp_path / "synthetic:demo.tsv", tmp_path / "untrained.tsv"],
        out_tsv=tmp_path / "comparison.tsv",
        out_png=tmp_path / "comparison.png",
    )
    assert (tmp_path / "comparison.tsv").read_text() == (
        "training set\tlfw\tcfp_fp\tavg\n"
        "synthetic:demo\t80.50 ± 1.25\t70.00 ± 2.00\t75.25\n"
        "untrained\t55.00 ± 3.00\t51.00 ± 4.50\t53.00\n"
    )
    from facelatent.fr.compare import comparison_markdown

    assert comparison_markdown(table).splitlines()[2] == "| synthetic:demo | 80.50 ± 1.25 | 70.00 ± 2.00 | 75.25 |"
    assert (tmp_path / "comparison.png").stat().st_size > 10_000
