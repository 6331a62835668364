"""The editor's HTTP API through Starlette's TestClient: renders equal the generator's output, the allow-list holds
against traversal (../, absolute, encoded, symlinks), uploads are capped and refused with a reason, saves read back."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from editor_results import make_results
from starlette.testclient import TestClient  # the test extra installs the ui extra's packages too

from facelatent.editor.app import EditorSettings, create_app
from facelatent.editor.render import apply_edits, render_rgb
from facelatent.editor.safety import UploadLimits
from facelatent.generators import load_generator
from facelatent.latents import read_latents


@pytest.fixture(scope="module")
def made(tmp_path_factory, dcgan_path):
    return make_results(tmp_path_factory.mktemp("editor"), dcgan_path)


@pytest.fixture(scope="module")
def client(made):
    limits = UploadLimits(max_bytes=200_000, max_side=1024)
    app = create_app(EditorSettings(results=made["results"], config=made["config"], device="cpu", limits=limits))
    return TestClient(app)


@pytest.fixture(scope="module")
def G(dcgan_path):
    return load_generator(dcgan_path, "cpu")


def decode(response) -> np.ndarray:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    return cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]


def png(image: np.ndarray) -> bytes:
    return cv2.imencode(".png", image[..., ::-1])[1].tobytes()


def test_catalog_lists_faces_and_labels_directions(client):
    cat = client.get("/api/catalog").json()
    assert cat["latents"] == {"demo": ["face00", "face01", "face02", "face03"]}
    assert cat["synthetic"] == {"run1": ["0", "1", "2"]}
    kinds = {d["name"]: (d["kind"], d["label"]) for d in cat["directions"]}
    assert kinds["smile"] == ("fitted", "SVM on demo, cv accuracy 0.97")
    assert kinds["smile_given_happy"] == ("conditional", "smile given happy")
    assert kinds["pca_0"] == ("pca", "PCA component 0, 25% of the variance")
    assert [d["name"] for d in cat["directions"]] == ["happy", "smile", "smile_given_happy", "pca_0"]
    assert "stale" in cat["skipped"] and "stale" not in kinds  # a direction of another w_dim is no slider
    assert cat["slider_range"] == 3.0  # the demo's edit grids span -3..3


def test_render_is_the_latent_moved_in_edit_grid_units(client, made, G):
    w, d = made["w"][1], made["directions"]
    shown = decode(client.get("/api/render.png", params={"face": "latents/demo/1", "edits": "smile:2.5,pca_0:-1"}))
    # one unit = one unit of signed distance along the unit normal, as `move(..., mode="relative")` adds it
    expected_w = w + 2.5 * d["smile"][None].astype(np.float32) - 1.0 * d["pca_0"][None]
    with torch.no_grad():
        expected = render_rgb(G, expected_w.astype(np.float32), "const")
    assert np.abs(shown.astype(int) - expected.astype(int)).max() <= 1  # float32 sums in another order
    unedited = decode(client.get("/api/render.png", params={"face": "latents/demo/1"}))
    assert np.array_equal(unedited, render_rgb(G, w, "const"))
    assert np.abs(unedited.astype(int) - shown.astype(int)).mean() > 2


def test_face_sources_projected_synthetic_and_seed(client, made, G):
    face = client.get("/api/face", params={"face": "latents/demo/2"}).json()
    assert face["caption"] == "demo: face02" and face["has_target"]
    target = decode(client.get("/api/target.png", params={"face": "latents/demo/2"}))
    assert np.array_equal(target, render_rgb(G, made["w"][2], "const"))  # the fixture's photos are renders
    assert client.get("/api/face", params={"face": "synthetic/run1/1"}).json()["has_target"] is False
    assert client.get("/api/target.png", params={"face": "seed/3"}).status_code == 404
    z = torch.from_numpy(np.random.RandomState(3).randn(1, G.z_dim)).float()
    seed = decode(client.get("/api/render.png", params={"face": "seed/3"}))
    assert np.array_equal(seed, render_rgb(G, G.mapping(z)[0].numpy(), "const"))  # the sample grid's seed rule
    # start distances: where the face lies on each direction before any edit
    distances = client.get("/api/face", params={"face": "latents/demo/0"}).json()["distances"]
    assert distances["smile"] == pytest.approx(float(made["w"][0, 0] @ made["directions"]["smile"]), abs=1e-3)


def test_layer_range_moves_only_those_layers():
    w = np.zeros((6, 4), np.float32)
    d = np.ones((6, 4))
    moved = apply_edits(w, {"d": d}, {"d": 1.0}, (2, 3))
    assert np.all(moved[[0, 1, 4, 5]] == 0) and np.all(moved[2:4] > 0)
    assert np.allclose(apply_edits(w, {"d": d}, {"d": 1.0}, (0, 5)), d / np.linalg.norm(d))


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"face": "latents/demo/1", "layers": "0-1"}, 400),  # the DCGAN has one ws
        ({"face": "latents/demo/1", "edits": "smile:9"}, 400),  # past the slider range
        ({"face": "latents/demo/1", "edits": "nosuch:1"}, 404),
        ({"face": "latents/demo/99"}, 404),
        ({"face": "latents/nosuch/0"}, 404),
        ({"face": "upload/0123456789abcdef"}, 404),
    ],
)
def test_bad_state_is_refused_with_a_reason(client, params, status):
    response = client.get("/api/render.png", params=params)
    assert response.status_code == status and response.json()["error"]


@pytest.mark.parametrize(
    "face",
    [
        "latents/../../etc/passwd/0",
        "latents/..%2F..%2Fetc/0",
        "latents/%2e%2e/0",
        "latents//etc/passwd/0",
        "/etc/passwd",
        "upload/../../config",
        "synthetic/run1/../../x/0",
        "latents/demo/1\x00",
    ],
)
def test_face_parameter_cannot_name_a_path(client, face):
    response = client.get("/api/face", params={"face": face})
    assert response.status_code == 400, response.text
    assert client.get("/api/render.png", params={"face": face}).status_code == 400


@pytest.mark.parametrize(
    "url",
    [
        "/files/../config.yaml",
        "/files/%2e%2e/config.yaml",
        "/files/%2E%2E%2Fconfig.yaml",
        "/files/latents/..%2F..%2Fconfig.yaml",
        "/files//etc/passwd",
        "/files/%2Fetc%2Fpasswd",
        "/files/latents",
        "/files/latents/nosuch.h5",
        "/files/..\\config.yaml",
    ],
)
def test_files_route_serves_nothing_outside_the_results_folder(client, url):
    response = client.get(url)
    assert response.status_code == 404, (url, response.status_code)
    assert b"generator" not in response.content  # config.yaml's contents never come back


def test_symlinks_out_of_the_results_folder_are_not_followed(made, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    results = made["results"]
    (results / "link.txt").symlink_to(outside / "secret.txt")
    (results / "latents" / "evil.h5").symlink_to(results / "latents" / "demo.h5")  # inside: allowed
    (results / "latents" / "escape.h5").symlink_to(outside / "secret.txt")
    try:
        app = create_app(EditorSettings(results=results, config=made["config"], device="cpu"))
        client = TestClient(app)
        assert client.get("/files/link.txt").status_code == 404
        assert client.get("/files/latents/demo.h5").status_code == 200
        latents = client.get("/api/catalog").json()["latents"]
        assert "escape" not in latents and "evil" in latents
        assert client.get("/api/face", params={"face": "latents/escape/0"}).status_code == 404
    finally:
        for name in ("link.txt", "latents/evil.h5", "latents/escape.h5"):
            (results / name).unlink()


def test_oversized_upload_is_refused(client):
    response = client.post("/api/upload", content=b"\x89PNG" + bytes(300_000))
    assert response.status_code == 413 and "limit" in response.json()["error"]
    # small in bytes, huge in pixels: refused from the header, before decoding
    wide = png(np.zeros((8, 2000, 3), np.uint8))
    assert len(wide) < 200_000
    response = client.post("/api/upload", content=wide)
    assert response.status_code == 413 and "2000x8" in response.json()["error"]


def test_streamed_upload_is_cut_at_the_limit(client):
    def chunks():
        for _ in range(50):
            yield bytes(10_000)

    response = client.post("/api/upload", content=chunks())  # no Content-Length: counted as it arrives
    assert response.status_code == 413


@pytest.mark.parametrize("data", [b"not an image at all", b"", json.dumps({"x": 1}).encode(), b"\x89PNG\r\n\x1a\n"])
def test_non_image_upload_is_refused(client, data):
    response = client.post("/api/upload", content=data)
    assert response.status_code == 415 and response.json()["error"]


def test_faceless_upload_says_no_face(client):
    rng = np.random.RandomState(0)
    landscape = cv2.GaussianBlur(rng.randint(0, 255, (240, 320, 3), dtype=np.uint8), (0, 0), 8)
    response = client.post("/api/upload", content=png(landscape))
    assert response.status_code == 422
    assert "no face found" in response.json()["error"]


def test_save_writes_our_latent_format_and_the_png(client, made, G):
    response = client.post("/api/save", json={"face": "latents/demo/3", "edits": "happy:-1.50"})
    assert response.status_code == 201, response.text
    saved = response.json()
    w, frame = read_latents(made["results"] / saved["latent"])
    expected = apply_edits(made["w"][3], {"happy": made["directions"]["happy"]}, {"happy": -1.5}, (0, 0))
    assert w.shape == (1, 1, G.w_dim) and np.array_equal(w[0], expected)
    assert list(frame["ids"]) == [saved["latent"].split("/")[-1][:-3]]
    image = decode(client.get(f"/files/{saved['png']}"))
    assert np.array_equal(image, render_rgb(G, w[0], "const"))
    assert saved["state"] == {"face": "latents/demo/3", "edits": {"happy": -1.5}, "layers": [0, 0]}
    assert client.post("/api/save", content=b"[1, 2]").status_code == 400


def test_editor_rule_writes_the_serve_command(tmp_path):
    from facelatent.editor.job import editor

    command = editor(results="results", configfile="my config.yaml", output=tmp_path / "serve.txt")
    assert command == "facelatent serve --results results --config 'my config.yaml' --host 127.0.0.1 --port 8765"
    assert command in (tmp_path / "serve.txt").read_text()


def test_serve_defaults_to_loopback():
    from facelatent.cli import build_parser

    args = build_parser().parse_args(["serve"])
    assert args.host == "127.0.0.1" and args.results == "results"
