"""StyleGAN2 backend against outputs of NVlabs stylegan2-ada-pytorch (tests/data/stylegan2_g64tiny)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from facelatent.generators.stylegan2 import StyleGAN2Generator, noise_buffer_names

DATA = Path(__file__).parent / "data" / "stylegan2_g64tiny"
W_TOL = 1e-5
IMG_TOL = 1e-4


def ref(name: str) -> torch.Tensor:
    return torch.from_numpy(np.load(DATA / f"{name}.npy"))


def max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


@pytest.fixture(scope="module")
def init_kwargs() -> dict:
    return json.loads((DATA / "init_kwargs.json").read_text())["init_kwargs"]


@pytest.fixture(scope="module")
def G(init_kwargs) -> StyleGAN2Generator:
    G = StyleGAN2Generator(**init_kwargs)
    G.load_state_dict(torch.load(DATA / "G_state_dict.pt", weights_only=True), strict=True)
    return G.eval().requires_grad_(False)


def test_state_dict_names_and_shapes_are_nvlabs(G):
    expected = {}
    for line in (DATA / "state_dict_keys.txt").read_text().splitlines():
        key, shape = line.split(" ", 1)
        expected[key] = tuple(int(s) for s in shape.strip("()").split(",") if s.strip())
    assert {k: tuple(v.shape) for k, v in G.state_dict().items()} == expected
    assert G.num_ws == 10 and G.kind == "stylegan2"


@pytest.mark.parametrize(
    "name,psi,cutoff", [("w_psi1", 1.0, None), ("w_psi07", 0.7, None), ("w_psi07_cutoff4", 0.7, 4)]
)
def test_mapping_matches_reference(G, name, psi, cutoff):
    z = torch.from_numpy(np.load(DATA / "z.npy"))  # float64; the mapping casts to float32
    ws = G.mapping(z, None, truncation_psi=psi, truncation_cutoff=cutoff)
    assert ws.shape == (4, 10, 64) and ws.dtype == torch.float32
    assert max_abs(ws, ref(name)) <= W_TOL


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize(
    "name,ws_name,noise_mode",
    [
        ("img_psi1_const_fp32", "w_psi1", "const"),
        ("img_psi07_const_fp32", "w_psi07", "const"),
        ("img_psi1_none_fp32", "w_psi1", "none"),
    ],
)
def test_synthesis_matches_reference(G, name, ws_name, noise_mode, fused):
    img = G.synthesis(ref(ws_name), noise_mode=noise_mode, force_fp32=True, fused_modconv=fused)
    assert img.shape == (4, 3, 64, 64) and img.dtype == torch.float32
    assert max_abs(img, ref(name)) <= IMG_TOL


def test_nonfused_matches_reference_nonfused(G):
    img = G.synthesis(ref("w_psi1"), noise_mode="const", fused_modconv=False)
    assert max_abs(img, ref("img_psi1_const_fp32_nonfused")) <= IMG_TOL


def test_block_intermediates_match_reference(G):
    """Each block's x and img for z[0] (psi 1, const, batch 1): localises any mismatch."""
    expected = np.load(DATA / "intermediates_z0.npz")
    seen = {}
    hooks = [
        block.register_forward_hook(
            lambda mod, inp, out, res=block.resolution: seen.update({f"b{res}.x": out[0], f"b{res}.img": out[1]})
        )
        for block in G.synthesis_network.blocks()
    ]
    try:
        G.synthesis(ref("w_psi1")[:1], noise_mode="const")
    finally:
        for hook in hooks:
            hook.remove()
    assert sorted(seen) == sorted(expected.files)
    for key in expected.files:
        assert max_abs(seen[key], torch.from_numpy(expected[key])) <= IMG_TOL, key


def test_batch_output_equals_per_image_output(G):
    ws = ref("w_psi1")
    singles = torch.cat([G.synthesis(ws[i : i + 1]) for i in range(4)])
    assert max_abs(singles, ref("img_psi1_const_fp32_b1")) <= IMG_TOL
    assert max_abs(singles, G.synthesis(ws)) <= 1e-5
    singles_nf = torch.cat([G.synthesis(ws[i : i + 1], fused_modconv=False) for i in range(4)])
    assert max_abs(singles_nf, G.synthesis(ws, fused_modconv=False)) <= 1e-5


def test_cpu_default_path_is_fp32(G):
    ws = ref("w_psi1")[:2]
    assert torch.equal(G.synthesis(ws), G.synthesis(ws, force_fp32=True))
    assert torch.equal(G.synthesis(ws), G.synthesis(ws, fused_modconv=False))  # faster on CPU


def test_noise_buffer_names_follow_named_buffers_order(G):
    names = noise_buffer_names(G)
    assert names == [n for n, _ in G.named_buffers() if n.endswith("noise_const")]
    assert names[0] == "synthesis.b4.conv1.noise_const" and len(names) == 9
    assert G.noise_buffer_names() == names


def test_noise_override_equal_to_buffers_reproduces_const(G):
    ws = ref("w_psi1")[:2]
    buffers = dict(G.named_buffers())
    same = [buffers[n].expand(2, 1, *buffers[n].shape) for n in noise_buffer_names(G)]
    assert torch.equal(G.synthesis(ws, noise=same), G.synthesis(ws))
    as_dict = {n: buffers[n] for n in noise_buffer_names(G)[:3]}  # the rest keep their buffers
    assert torch.equal(G.synthesis(ws, noise=as_dict), G.synthesis(ws))


@pytest.mark.parametrize("fused", [True, False])
def test_per_sample_noise_equals_separate_runs(G, fused):
    ws = ref("w_psi1")[:3]
    gen = torch.Generator().manual_seed(5)
    names = noise_buffer_names(G)
    res = {n: dict(G.named_buffers())[n].shape[-1] for n in names}
    noise = [torch.randn([3, 1, res[n], res[n]], generator=gen) for n in names]
    batch = G.synthesis(ws, noise=noise, fused_modconv=fused)
    singles = torch.cat(
        [G.synthesis(ws[i : i + 1], noise=[n[i : i + 1] for n in noise], fused_modconv=fused) for i in range(3)]
    )
    assert max_abs(batch, singles) <= 1e-5
    assert max_abs(batch, G.synthesis(ws, fused_modconv=fused)) > 1e-3  # the override really acts


def test_noise_override_rejects_bad_input(G):
    ws = ref("w_psi1")[:1]
    with pytest.raises(ValueError, match="expected 9 noise maps"):
        G.synthesis(ws, noise=[torch.zeros(1, 1, 4, 4)])
    with pytest.raises(KeyError, match="unknown noise buffer"):
        G.synthesis(ws, noise={"synthesis.b4.conv0.noise_const": torch.zeros(4, 4)})
    with pytest.raises(ValueError, match="noise_mode is 'none'"):
        G.synthesis(ws, noise_mode="none", noise={})


def test_noise_modes_differ(G):
    ws = ref("w_psi1")[:1]
    const = G.synthesis(ws, noise_mode="const")
    torch.manual_seed(0)
    random_a = G.synthesis(ws, noise_mode="random")
    assert max_abs(const, random_a) > 1e-3
    assert max_abs(const, G.synthesis(ws, noise_mode="none")) > 1e-3


def test_w_avg_is_the_mapping_buffer_and_never_updates(G):
    assert G.w_avg is G.mapping_network.w_avg
    before = G.w_avg.clone()
    G.train()
    try:
        G.mapping(torch.randn(8, 64))
    finally:
        G.eval()
    G.mapping(torch.randn(8, 64))
    assert torch.equal(G.w_avg, before)


def test_stylegan3_repo_flattened_kwargs_give_the_same_network(G, init_kwargs):
    flat = {k: v for k, v in init_kwargs.items() if k != "synthesis_kwargs"}
    G3 = StyleGAN2Generator(**flat, **init_kwargs["synthesis_kwargs"], fused_modconv_default="inference_only")
    G3.load_state_dict(G.state_dict(), strict=True)
    G3.eval()
    ws = ref("w_psi1")[:1]
    assert torch.equal(G3.synthesis(ws), G.synthesis(ws))
    assert G3.synthesis_network.fused_modconv_default == "inference_only"


def test_defaults_follow_the_repository_layout():
    ada = StyleGAN2Generator(z_dim=8, w_dim=8, img_resolution=8, synthesis_kwargs=dict(channel_base=64))
    sg3repo = StyleGAN2Generator(z_dim=8, w_dim=8, img_resolution=8, channel_base=64)
    assert ada.synthesis_kwargs["conv_clamp"] is None and ada.synthesis_kwargs["num_fp16_res"] == 0
    assert sg3repo.synthesis_kwargs["conv_clamp"] == 256 and sg3repo.synthesis_kwargs["num_fp16_res"] == 4
    with pytest.raises(TypeError, match="unknown StyleGAN2"):
        StyleGAN2Generator(z_dim=8, w_dim=8, img_resolution=8, channel_bse=64)


def test_forward_is_mapping_then_synthesis(G):
    z = torch.from_numpy(np.load(DATA / "z.npy"))[:2]
    assert torch.equal(G(z, None, truncation_psi=0.7), G.synthesis(G.mapping(z, truncation_psi=0.7)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="fp16 blocks run only on CUDA")
def test_cuda_fp16_path_close_to_fp32(G):
    Gc = G.to("cuda")
    try:
        ws = ref("w_psi1").cuda()
        fp16 = Gc.synthesis(ws).cpu()
        fp32 = Gc.synthesis(ws, force_fp32=True).cpu()
    finally:
        G.to("cpu")
    assert max_abs(fp32, ref("img_psi1_const_fp32")) <= 1e-3
    assert max_abs(fp16, fp32) <= 0.05  # the original's fp16 path differs by about 1e-2


def test_gradients_reach_ws_and_noise_on_both_paths(G):
    """The projector optimises ws and the noise maps: both paths give the same gradients."""
    grads = []
    for fused in (True, False):
        ws = ref("w_psi1")[:2].clone().requires_grad_(True)
        noise = [
            dict(G.named_buffers())[n].expand(2, 1, -1, -1).clone().requires_grad_(True) for n in noise_buffer_names(G)
        ]
        G.synthesis(ws, noise=noise, fused_modconv=fused).square().mean().backward()
        grads.append([ws.grad] + [n.grad for n in noise])
    for fused_grad, nonfused_grad in zip(*grads, strict=True):
        assert torch.isfinite(fused_grad).all() and fused_grad.abs().max() > 0
        assert (fused_grad - nonfused_grad).abs().max() <= 1e-4 * max(1.0, fused_grad.abs().max().item())
