"""MTCNN (PyTorch) against the official mtcnn==1.0.0 output, plus its building blocks."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from facelatent.checkpoints import Checkpoint, read_safetensors_checkpoint, save_safetensors_checkpoint
from facelatent.detect.mtcnn import MTCNN
from facelatent.detect.mtcnn_nets import MTCNNNets, convert_mtcnn_weights
from facelatent.detect.mtcnn_ops import (
    area_resize,
    crop_and_resize,
    nms_keep,
    pack_images,
    pyramid_scales,
    scaled_size,
)
from facelatent.errors import InputFileError
from facelatent.paths import resources_dir

REFERENCE = Path(__file__).parent / "data" / "mtcnn" / "official_mtcnn_reference.json"
PHOTOS = {
    "t1": ("t1.jpg", (886, 1280)),
    "Tom_Hanks_54745": ("Tom_Hanks_54745.png", (112, 112)),
    "astronaut": ("astronaut.png", (512, 512)),
}


def load_photo(name: str) -> np.ndarray:
    """A demo photo as RGB uint8 (cv2 decode, BGR -> RGB), fetched from its pinned wheel if absent."""
    filename, shape = PHOTOS[name]
    path = resources_dir() / "demo_photos" / filename
    if not path.exists():
        from facelatent.fetch import fetch_demo_photo

        fetch_demo_photo(filename, path)
    image = np.ascontiguousarray(cv2.imread(str(path), cv2.IMREAD_COLOR)[:, :, ::-1])
    assert image.shape == (*shape, 3), (path, image.shape)
    return image


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads(REFERENCE.read_text())


@pytest.fixture(scope="module")
def detector() -> MTCNN:
    from conftest import fetched_model

    return MTCNN(weights=fetched_model("mtcnn"))


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    return {name: load_photo(name) for name in PHOTOS}


@pytest.fixture(scope="module")
def single_runs(detector, photos) -> dict[str, tuple[np.ndarray, list[dict]]]:
    """Per photo: (raw rows, detect_faces result), each from its own one-image call."""
    return {name: (detector.detect_raw([img])[0], detector.detect_faces(img)) for name, img in photos.items()}


# --- against the official package --------------------------------------------------------------


@pytest.mark.parametrize("name", list(PHOTOS))
def test_detections_match_official_mtcnn(name, reference, single_runs):
    _, faces = single_runs[name]
    expected = reference[name]["detections"]
    assert len(faces) == len(expected)
    for got, want in zip(faces, expected, strict=True):
        assert got["box"] == want["box"]
        assert got["keypoints"] == {k: list(v) for k, v in want["keypoints"].items()}
        assert abs(got["confidence"] - want["confidence"]) < 1e-3
        assert isinstance(got["confidence"], float) and all(isinstance(v, int) for v in got["box"])


@pytest.mark.parametrize("name", list(PHOTOS))
def test_raw_rows_match_official_mtcnn(name, reference, single_runs):
    raw, _ = single_runs[name]
    want = np.asarray(reference[name]["raw_rows_box_conf_lmx5_lmy5"])[:, 1:]  # drop the image index
    assert raw.shape == want.shape
    diff = np.abs(raw - want)
    # measured: boxes <= 2.3e-4 px, confidence <= 1e-5, landmarks <= 2.5e-4 px (float32 ulps)
    assert diff[:, 0:4].max() < 5e-3, diff[:, 0:4].max()
    assert diff[:, 4].max() < 1e-4, diff[:, 4].max()
    assert diff[:, 5:].max() < 5e-3, diff[:, 5:].max()


# --- batching and inputs -----------------------------------------------------------------------


def test_batched_detect_equals_single_image_calls(detector, photos, single_runs):
    odd_crop = np.ascontiguousarray(photos["t1"][100:581, 200:841])  # 481x641: odd sizes get padded
    images = [photos["t1"], photos["Tom_Hanks_54745"], odd_crop, photos["astronaut"], photos["astronaut"].copy()]
    batched_raw = detector.detect_raw(images)
    batched = detector.detect(images)
    singles = [
        single_runs["t1"],
        single_runs["Tom_Hanks_54745"],
        (detector.detect_raw([odd_crop])[0], detector.detect_faces(odd_crop)),
        single_runs["astronaut"],
        single_runs["astronaut"],
    ]
    assert len(batched[2]) >= 2  # the crop keeps some of t1's faces
    for raw, faces, (raw_one, faces_one) in zip(batched_raw, batched, singles, strict=True):
        assert raw.shape == raw_one.shape
        assert np.abs(raw - raw_one).max(initial=0) < 1e-3
        assert [f["box"] for f in faces] == [f["box"] for f in faces_one]
        assert [f["keypoints"] for f in faces] == [f["keypoints"] for f in faces_one]
        assert np.allclose([f["confidence"] for f in faces], [f["confidence"] for f in faces_one], atol=1e-5)


def test_blank_images_have_no_faces(detector):
    assert detector.detect_faces(np.zeros((480, 640, 3), np.uint8)) == []
    assert detector.detect([np.full((120, 90, 3), 128, np.uint8), np.zeros((8, 8, 3), np.uint8)]) == [[], []]


def test_greyscale_image_is_detected_as_rgb(detector, photos, reference):
    grey = cv2.cvtColor(photos["astronaut"], cv2.COLOR_RGB2GRAY)
    faces = detector.detect_faces(grey)
    assert len(faces) == 1
    assert faces == detector.detect_faces(np.repeat(grey[:, :, None], 3, axis=2))
    assert faces == detector.detect_faces(grey[:, :, None])
    colour_box = reference["astronaut"]["detections"][0]["box"]
    assert np.abs(np.subtract(faces[0]["box"], colour_box)).max() <= 8


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((32, 32, 3), np.float32),
        np.zeros((32, 32, 4), np.uint8),
        np.zeros((32,), np.uint8),
        np.zeros((0, 32, 3), np.uint8),
        [[0, 1], [2, 3]],
    ],
)
def test_bad_images_raise_value_error(detector, bad):
    with pytest.raises(ValueError):
        detector.detect_faces(bad)


def test_wrong_checkpoint_kind_names_the_file(tmp_path):
    path = tmp_path / "not_mtcnn.safetensors"
    save_safetensors_checkpoint(path, Checkpoint(kind="dcgan", init_kwargs={}, state_dict={"w": torch.zeros(1)}))
    with pytest.raises(InputFileError, match="not_mtcnn.safetensors"):
        MTCNN(weights=path)


# --- weight conversion -------------------------------------------------------------------------


def _keras_conv(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """NHWC valid convolution with a (kh,kw,in,out) kernel, float64."""
    kh, kw = kernel.shape[:2]
    h, w = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    out = sum(
        np.einsum("nhwc,co->nhwo", x[:, i : i + h, j : j + w], kernel[i, j]) for i in range(kh) for j in range(kw)
    )
    return out + bias


def _keras_pool(x: np.ndarray, k: int, s: int, same: bool) -> np.ndarray:
    """NHWC max pool; 'same' pads after the end (TF) with -inf."""
    if same:
        pad = [max((-(-n // s) - 1) * s + k - n, 0) for n in x.shape[1:3]]
        x = np.pad(
            x,
            [(0, 0), (pad[0] // 2, pad[0] - pad[0] // 2), (pad[1] // 2, pad[1] - pad[1] // 2), (0, 0)],
            constant_values=-np.inf,
        )
    h, w = (x.shape[1] - k) // s + 1, (x.shape[2] - k) // s + 1
    return np.max([x[:, i : i + s * h : s, j : j + s * w : s] for i in range(k) for j in range(k)], axis=0)


def _np_prelu(v: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    return np.where(v > 0, v, v * alpha.reshape(-1))


def _face_probability(logits: np.ndarray) -> np.ndarray:
    """Softmax over the two classes, column 1 (face)."""
    prob = np.exp(logits - logits.max(1, keepdims=True))
    return (prob / prob.sum(1, keepdims=True))[:, 1]


def _keras_rnet(x: np.ndarray, weights: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The Keras R-Net of mtcnn==1.0.0 in numpy: NHWC, Permute((2,1,3)) then Flatten."""
    w = [a.astype(np.float64) for a in weights]
    y = _keras_pool(_np_prelu(_keras_conv(x, w[0], w[1]), w[2]), 3, 2, True)
    y = _keras_pool(_np_prelu(_keras_conv(y, w[3], w[4]), w[5]), 3, 2, False)
    y = _np_prelu(_keras_conv(y, w[6], w[7]), w[8])
    y = y.transpose(0, 2, 1, 3).reshape(len(y), -1)
    y = _np_prelu(y @ w[9] + w[10], w[11])
    return y @ w[12] + w[13], _face_probability(y @ w[14] + w[15])


def _keras_onet(x: np.ndarray, weights: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Keras O-Net of mtcnn==1.0.0 in numpy."""
    w = [a.astype(np.float64) for a in weights]
    y = _keras_pool(_np_prelu(_keras_conv(x, w[0], w[1]), w[2]), 3, 2, True)
    y = _keras_pool(_np_prelu(_keras_conv(y, w[3], w[4]), w[5]), 3, 2, False)
    y = _keras_pool(_np_prelu(_keras_conv(y, w[6], w[7]), w[8]), 2, 2, True)
    y = _np_prelu(_keras_conv(y, w[9], w[10]), w[11])
    y = y.transpose(0, 2, 1, 3).reshape(len(y), -1)
    y = _np_prelu(y @ w[12] + w[13], w[14])
    return y @ w[15] + w[16], y @ w[17] + w[18], _face_probability(y @ w[19] + w[20])


def test_converted_weights_match_a_keras_layout_forward(tmp_path):
    import joblib

    rng = np.random.default_rng(0)
    shapes = {
        "pnet": [
            (3, 3, 3, 10),
            (10,),
            (1, 1, 10),
            (3, 3, 10, 16),
            (16,),
            (1, 1, 16),
            (3, 3, 16, 32),
            (32,),
            (1, 1, 32),
            (1, 1, 32, 4),
            (4,),
            (1, 1, 32, 2),
            (2,),
        ],
        "rnet": [
            (3, 3, 3, 28),
            (28,),
            (1, 1, 28),
            (3, 3, 28, 48),
            (48,),
            (1, 1, 48),
            (2, 2, 48, 64),
            (64,),
            (1, 1, 64),
            (576, 128),
            (128,),
            (128,),
            (128, 4),
            (4,),
            (128, 2),
            (2,),
        ],
        "onet": [
            (3, 3, 3, 32),
            (32,),
            (1, 1, 32),
            (3, 3, 32, 64),
            (64,),
            (1, 1, 64),
            (3, 3, 64, 64),
            (64,),
            (1, 1, 64),
            (2, 2, 64, 128),
            (128,),
            (1, 1, 128),
            (1152, 256),
            (256,),
            (256,),
            (256, 4),
            (4,),
            (256, 10),
            (10,),
            (256, 2),
            (2,),
        ],
    }
    arrays = {net: [(rng.standard_normal(s) * 0.2).astype(np.float32) for s in shp] for net, shp in shapes.items()}
    for net, values in arrays.items():
        joblib.dump(values, tmp_path / f"{net}.lz4")  # the wheel's format: joblib list, lz4-compressed
    nets = MTCNNNets()
    nets.load_state_dict(convert_mtcnn_weights(tmp_path), strict=True)
    to_torch = lambda a: torch.from_numpy(a.transpose(0, 3, 1, 2)).float()  # noqa: E731
    x24, x48 = rng.uniform(-1, 1, (5, 24, 24, 3)), rng.uniform(-1, 1, (3, 48, 48, 3))
    with torch.no_grad():
        got_r = nets.rnet(to_torch(x24))
        got_o = nets.onet(to_torch(x48))
    for got, want in zip(
        got_r + got_o, _keras_rnet(x24, arrays["rnet"]) + _keras_onet(x48, arrays["onet"]), strict=True
    ):
        assert np.abs(got.numpy() - want).max() <= 1e-5 * (1 + np.abs(want).max())  # float32 rounding only


def test_converter_names_a_missing_file(tmp_path):
    with pytest.raises(InputFileError, match="pnet.lz4"):
        convert_mtcnn_weights(tmp_path)


def test_shipped_checkpoint_equals_conversion_of_the_wheel_weights():
    spec = importlib.util.find_spec("mtcnn")  # locate without importing (it imports TensorFlow)
    if spec is None or spec.origin is None:
        pytest.skip("mtcnn==1.0.0 is not installed here")
    from conftest import fetched_model

    converted = convert_mtcnn_weights(Path(spec.origin).parent / "assets" / "weights")
    stored = read_safetensors_checkpoint(fetched_model("mtcnn"))
    assert stored.kind == "mtcnn" and set(stored.state_dict) == set(converted)
    assert all(torch.equal(stored.state_dict[k], converted[k]) for k in converted)


# --- building blocks ---------------------------------------------------------------------------


def test_pyramid_matches_mtcnn_counting():
    scales = pyramid_scales(480, 640, 20, 0.709)
    assert len(scales) == 10 and scales[0] == pytest.approx(0.6)
    assert all(min(scaled_size(480, 640, s)) >= 12 for s in scales)
    assert scaled_size(886, 1280, 0.6) == (531, 768)  # 531.6 truncated, as TF's int cast does
    assert len(pyramid_scales(11, 11, 20, 0.709)) == 0


def _area_reference(image: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Exact area average in float64: each output cell averages the input it covers."""

    def weights(n_in: int, n_out: int) -> np.ndarray:
        w = np.zeros((n_out, n_in))
        scale = n_in / n_out
        for o in range(n_out):
            lo, hi = o * scale, (o + 1) * scale
            for i in range(int(np.floor(lo)), int(np.ceil(hi))):
                w[o, min(i, n_in - 1)] += min(i + 1, hi) - max(i, lo)
        return w / scale

    return np.einsum("yi,ncij,xj->ncyx", weights(image.shape[2], out_h), image, weights(image.shape[3], out_w))


def test_area_resize_is_an_area_average():
    rng = np.random.default_rng(1)
    image = rng.uniform(-1, 1, (2, 3, 37, 53)).astype(np.float32)
    for size in [(26, 37), (13, 17), (37, 53), (50, 70)]:
        got = area_resize(torch.from_numpy(image), size).numpy()
        assert got.shape == (2, 3, *size)
        assert np.abs(got - _area_reference(image.astype(np.float64), *size)).max() < 1e-5
    halves = area_resize(torch.from_numpy(image[:, :, :36, :52]), (18, 26)).numpy()
    blocks = image[:, :, :36, :52].reshape(2, 3, 18, 2, 26, 2).mean(axis=(3, 5))
    assert np.abs(halves - blocks).max() < 1e-6


def test_crop_and_resize_samples_like_tf():
    rng = np.random.default_rng(2)
    images = [torch.from_numpy(rng.uniform(-1, 1, shape).astype(np.float32)) for shape in [(20, 30, 3), (15, 24, 3)]]
    pixels, starts, sizes = pack_images(images)
    boxes = torch.tensor([[0, 0, 1, 1], [0.2, 0.1, 0.7, 0.9], [-1, -1, -0.5, -0.5]], dtype=torch.float32)
    owner = torch.tensor([0, 1, 1])
    crops = crop_and_resize(pixels, starts, sizes, boxes, owner, 6)
    assert crops.shape == (3, 3, 6, 6)
    assert torch.equal(crops[2], torch.zeros(3, 6, 6))  # entirely outside: TF's extrapolation value
    # box 1 on image 1 (15x24): bilinear samples at y1*(H-1) + i*step, in float64 here
    img = images[1].double().numpy()
    ys = 0.2 * 14 + np.arange(6) * (0.5 * 14 / 5)
    xs = 0.1 * 23 + np.arange(6) * (0.8 * 23 / 5)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.ceil(ys).astype(int), np.ceil(xs).astype(int)
    fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    top = img[y0][:, x0] * (1 - fx) + img[y0][:, x1] * fx
    bottom = img[y1][:, x0] * (1 - fx) + img[y1][:, x1] * fx
    want = (top * (1 - fy) + bottom * fy).transpose(2, 0, 1)
    assert np.abs(crops[1].numpy() - want).max() < 1e-5
    # a full-image box at the image's own size returns the image itself
    square = images[0][:20, :20].contiguous()
    same = crop_and_resize(*pack_images([square]), boxes[:1], owner[:1], 20)
    assert torch.equal(same[0], square.permute(2, 0, 1))
    # uint8 pixels are normalised as they are read: same crops as normalising first
    raw = [torch.from_numpy(rng.integers(0, 256, (15, 24, 3), dtype=np.uint8))]
    from_uint8 = crop_and_resize(*pack_images(raw), boxes[1:2], owner[:1], 6)
    from_float = crop_and_resize(*pack_images([(raw[0].float() - 127.5) / 128]), boxes[1:2], owner[:1], 6)
    assert torch.equal(from_uint8, from_float)


def test_nms_suppresses_through_suppressed_boxes():
    # A overlaps B, B overlaps C, A and C are disjoint: greedy NMS keeps A and C, but
    # mtcnn==1.0.0 drops any box that a higher-ranked box overlaps, suppressed or not.
    boxes = np.array([[0, 0, 10, 10], [4, 0, 14, 10], [8, 0, 18, 10]], dtype=np.float64)
    assert nms_keep(boxes, 0.3).tolist() == [0]
    assert nms_keep(boxes, 0.5).tolist() == [0, 1, 2]
    inner = np.array([[0, 0, 20, 20], [2, 2, 8, 8]], dtype=np.float64)  # small box inside a big one
    assert nms_keep(inner, 0.7, "union").tolist() == [0, 1]
    assert nms_keep(inner, 0.7, "min").tolist() == [0]
    many = np.random.default_rng(3).uniform(0, 100, (50, 2))
    many = np.concatenate([many, many + 10], axis=1)
    assert nms_keep(many, 0.4, chunk=7).tolist() == nms_keep(many, 0.4).tolist()


def test_pnet_on_a_padded_batch_equals_pnet_per_image():
    torch.manual_seed(0)
    pnet = MTCNNNets().pnet.eval()
    sizes = [(25, 31), (40, 36), (13, 12)]  # odd conv1 outputs hit the pooling's 'same' pad
    images = [torch.randn(1, 3, h, w) for h, w in sizes]
    batch = torch.zeros(3, 3, 40, 36)
    for i, img in enumerate(images):
        batch[i, :, : img.shape[2], : img.shape[3]] = img
    with torch.no_grad():
        reg_b, prob_b = pnet(batch, torch.tensor(sizes))
        plain_reg, plain_prob = pnet(batch)
        for i, img in enumerate(images):
            reg, prob = pnet(img)
            h, w = prob.shape[1:]
            assert torch.allclose(reg_b[i, :, :h, :w], reg[0], atol=1e-5)
            assert torch.allclose(prob_b[i, :h, :w], prob[0], atol=1e-6)
    # without the sizes, the padding leaks into the last cells of the 25x31 image (8x11 cells)
    assert not torch.allclose(plain_reg[0, :, :8, :11], reg_b[0, :, :8, :11], atol=1e-5)
