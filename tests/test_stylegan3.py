"""StyleGAN3 backend against outputs of NVlabs stylegan3 (tests/data/stylegan3_t64tiny, config T)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from facelatent.generators import ops
from facelatent.generators.stylegan3 import StyleGAN3Generator

DATA = Path(__file__).parent / "data" / "stylegan3_t64tiny"
W_TOL = 1e-5
IMG_TOL = 1e-4


def ref(name: str) -> torch.Tensor:
    return torch.from_numpy(np.load(DATA / f"{name}.npy"))


def max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


@pytest.fixture(scope="module")
def meta() -> dict:
    return json.loads((DATA / "init_kwargs.json").read_text())


@pytest.fixture(scope="module")
def G(meta) -> StyleGAN3Generator:
    G = StyleGAN3Generator(**meta["init_kwargs"])
    G.load_state_dict(torch.load(DATA / "G_state_dict.pt", weights_only=True), strict=True)
    return G.eval().requires_grad_(False)


@pytest.fixture(scope="module")
def img_psi1(G) -> torch.Tensor:
    return G.synthesis(ref("w_psi1"), force_fp32=True)


def test_state_dict_names_shapes_and_layer_names(G, meta):
    expected = {}
    for line in (DATA / "state_dict_keys.txt").read_text().splitlines():
        key, shape = line.split(" ", 1)
        expected[key] = tuple(int(s) for s in shape.strip("()").split(",") if s.strip())
    assert {k: tuple(v.shape) for k, v in G.state_dict().items()} == expected
    assert G.synthesis_network.layer_names == meta["layer_names"]
    assert G.num_ws == meta["num_ws"] == 16 and G.kind == "stylegan3"


def test_designed_filters_equal_the_nvlabs_buffers(meta):
    """A fresh network's up/down filters (our firwin) equal the ones NVlabs stored."""
    fresh = StyleGAN3Generator(**meta["init_kwargs"]).state_dict()
    stored = torch.load(DATA / "G_state_dict.pt", weights_only=True)
    filters = [k for k in stored if k.endswith("_filter")]
    assert len(filters) == 28
    assert max(max_abs(fresh[k], stored[k]) for k in filters) <= 1e-7


@pytest.mark.parametrize("name,psi", [("w_psi1", 1.0), ("w_psi07", 0.7)])
def test_mapping_matches_reference(G, name, psi):
    z = torch.from_numpy(np.load(DATA / "z.npy"))
    ws = G.mapping(z, None, truncation_psi=psi)
    assert ws.shape == (4, 16, 64)
    assert max_abs(ws, ref(name)) <= W_TOL


def test_synthesis_matches_reference(img_psi1):
    assert img_psi1.shape == (4, 3, 64, 64) and img_psi1.dtype == torch.float32
    assert max_abs(img_psi1, ref("img_psi1_fp32")) <= IMG_TOL


def test_synthesis_psi07_matches_reference(G):
    assert max_abs(G.synthesis(ref("w_psi07")[:2]), ref("img_psi07_fp32")[:2]) <= IMG_TOL


def test_batch_output_equals_per_image_output(G, img_psi1):
    singles = torch.cat([G.synthesis(ref("w_psi1")[i : i + 1]) for i in (0, 3)])
    assert max_abs(singles, ref("img_psi1_fp32_b1")[[0, 3]]) <= IMG_TOL
    assert max_abs(singles, img_psi1[[0, 3]]) <= 1e-5


def test_noise_arguments_are_accepted_and_inert(G):
    ws = ref("w_psi1")[:1]
    assert G.noise_buffer_names() == []
    assert torch.equal(G.synthesis(ws, noise_mode="random", noise=[]), G.synthesis(ws, noise_mode="none"))
    with pytest.raises(ValueError):
        G.synthesis(ws, noise=[torch.zeros(1, 1, 4, 4)])


def test_w_avg_and_magnitude_ema_never_update(G):
    before = {k: v.clone() for k, v in G.named_buffers()}
    G.train()
    try:
        G(torch.randn(1, 64), None)
    finally:
        G.eval()
    assert all(torch.equal(v, before[k]) for k, v in G.named_buffers())
    assert G.w_avg is G.mapping_network.w_avg


def _tiny_kwargs(**extra) -> dict:
    return dict(
        z_dim=16,
        w_dim=16,
        img_resolution=16,
        img_channels=3,
        mapping_kwargs=dict(num_layers=2),
        channel_base=512,
        channel_max=16,
        num_layers=6,
        **extra,
    )


def test_config_r_layout_and_run():
    """R config: 1x1 convs and radial (2-D) down filters except in critically sampled layers."""
    torch.manual_seed(0)
    T = StyleGAN3Generator(**_tiny_kwargs()).eval()
    R = StyleGAN3Generator(**_tiny_kwargs(conv_kernel=1, use_radial_filters=True)).eval()
    t_shapes = {k: tuple(v.shape) for k, v in T.state_dict().items()}
    r_shapes = {k: tuple(v.shape) for k, v in R.state_dict().items()}
    assert r_shapes.keys() == t_shapes.keys()
    names = R.synthesis_network.layer_names
    critical = set(names[-3:])  # num_critical=2 plus the ToRGB layer
    for key, shape in r_shapes.items():
        layer = key.split(".")[1]
        if key == f"synthesis.{layer}.weight" and layer.startswith("L"):
            assert shape == t_shapes[key][:2] + (1, 1), key
        elif key.endswith("down_filter"):
            n = t_shapes[key][0]
            assert shape == ((n,) if layer in critical else (n, n)), key
        else:
            assert shape == t_shapes[key], key
    img = R(torch.randn(2, 16), None)
    assert img.shape == (2, 3, 16, 16) and torch.isfinite(img).all()
    R2 = StyleGAN3Generator(**_tiny_kwargs(conv_kernel=1, use_radial_filters=True)).eval()
    R2.load_state_dict(R.state_dict(), strict=True)
    ws = R.mapping(torch.randn(2, 16))
    assert torch.equal(R2.synthesis(ws), R.synthesis(ws))


def test_filter_design_matches_scipy():
    signal = pytest.importorskip("scipy.signal")
    special = pytest.importorskip("scipy.special")
    for numtaps, cutoff, width, fs in [(12, 2.0, 4.0, 16), (24, 5.3, 6.1, 64), (12, 32.0, 8.3, 128)]:
        expected = signal.firwin(numtaps=numtaps, cutoff=cutoff, width=width, fs=fs)
        assert np.abs(ops.firwin_lowpass(numtaps, cutoff, width, fs) - expected).max() <= 1e-12
        x = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
        r = np.hypot(*np.meshgrid(x, x))
        jinc = special.j1(2 * cutoff * np.pi * r) / (np.pi * r)
        w = np.kaiser(numtaps, signal.kaiser_beta(signal.kaiser_atten(numtaps, width / (fs / 2))))
        jinc = jinc * np.outer(w, w)
        # torch's bessel_j1 is good to ~1e-7 relative; the filters are stored as float32 anyway
        assert np.abs(ops.jinc_lowpass(numtaps, cutoff, width, fs) - jinc / jinc.sum()).max() <= 1e-7


def upfirdn2d_by_definition(x, f, up, down, padding, gain):
    """The NVlabs reference order, spelled out: zero insertion, pad/crop, true convolution, decimation."""
    n, c, h, w = x.shape
    y = torch.zeros(n, c, h * up, w * up, dtype=x.dtype)
    y[:, :, ::up, ::up] = x
    px0, px1, py0, py1 = padding
    y = torch.nn.functional.pad(y, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    y = y[:, :, max(-py0, 0) : y.shape[2] - max(-py1, 0), max(-px0, 0) : y.shape[3] - max(-px1, 0)]
    f2 = (torch.outer(f, f) if f.ndim == 1 else f) * gain
    y = torch.nn.functional.conv2d(y, f2.flip([0, 1])[None, None].repeat(c, 1, 1, 1), groups=c)
    return y[:, :, ::down, ::down]


@pytest.mark.parametrize("size", [16, 200])  # FIR-matrix route and depthwise-conv route (1-D filters)
@pytest.mark.parametrize(
    "up,down,padding,taps",
    [
        (1, 1, (0, 0, 0, 0), 4),
        (2, 1, (3, 2, 1, 4), 12),
        (1, 2, (-1, 2, 0, -2), 12),
        (4, 2, (5, 5, 5, 5), 8),
        (2, 2, (1, 1, 1, 1), (4, 4)),
    ],
)
def test_upfirdn2d_routes_match_the_definition(size, up, down, padding, taps):
    gen = torch.Generator().manual_seed(size + up)
    x = torch.randn(1, 2, size, size + 3, generator=gen, dtype=torch.float64)
    f = torch.randn(taps if isinstance(taps, int) else taps, generator=gen, dtype=torch.float64)
    got = ops.upfirdn2d(x, f, up=up, down=down, padding=padding, gain=up * up)
    want = upfirdn2d_by_definition(x, f, up, down, padding, up * up)
    assert got.shape == want.shape
    assert (got - want).abs().max().item() <= 1e-9


def test_unknown_kwargs_are_refused():
    with pytest.raises(TypeError, match="unknown StyleGAN3"):
        StyleGAN3Generator(**_tiny_kwargs(conv_kernal=1))
