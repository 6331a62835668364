"""Our DCGAN computes what the published DCGAN layer stack computes, with the same weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from facelatent.checkpoints import read_checkpoint
from facelatent.generators import load_generator


def tutorial_stack(nz: int = 100, ngf: int = 64, nc: int = 3) -> nn.Sequential:
    """The layer list published with gan-face-generate (PyTorch DCGAN tutorial), written out here."""
    return nn.Sequential(
        nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False),
        nn.BatchNorm2d(ngf * 8),
        nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False),
        nn.BatchNorm2d(ngf * 4),
        nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False),
        nn.BatchNorm2d(ngf * 2),
        nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),
        nn.BatchNorm2d(ngf),
        nn.ReLU(True),
        nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),
        nn.Tanh(),
    )


def to_sequential_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our `blocks.{b}.weight` / `blocks.{b}.norm.*` back to `nn.Sequential` indices 3b / 3b+1."""
    out = {}
    for key, value in state.items():
        if key == "_w_avg":
            continue
        _, block, rest = key.split(".", 2)
        b = int(block)
        out[f"{3 * b}.weight" if rest == "weight" else f"{3 * b + 1}.{rest.removeprefix('norm.')}"] = value
    return out


def test_dcgan_matches_reference_stack(dcgan_path):
    ckpt = read_checkpoint(dcgan_path)
    reference = tutorial_stack()
    reference.load_state_dict(to_sequential_keys(ckpt.state_dict), strict=True)
    reference.eval()
    G = load_generator(dcgan_path)
    z = torch.from_numpy(np.random.RandomState(0).randn(8, 100)).float()
    with torch.no_grad():
        ours = G(z)
        ref = reference(z[:, :, None, None])
    assert ours.shape == (8, 3, 64, 64)
    assert torch.equal(ours, ref) or (ours - ref).abs().max().item() < 1e-6
    # real faces span most of the tanh range
    assert ours.min().item() < -0.9 and ours.max().item() > 0.5


def test_dcgan_interface(dcgan_path):
    G = load_generator(dcgan_path)
    assert (G.z_dim, G.w_dim, G.num_ws, G.img_resolution, G.img_channels) == (100, 100, 1, 64, 3)
    assert torch.count_nonzero(G.w_avg) == 0
    z = torch.randn(3, 100)
    ws = G.mapping(z, truncation_psi=0.5)
    assert ws.shape == (3, 1, 100)
    torch.testing.assert_close(ws[:, 0], 0.5 * z)
    # batch output equals per-image output
    with torch.no_grad():
        batch = G.synthesis(G.mapping(z))
        single = torch.cat([G.synthesis(G.mapping(z[i : i + 1])) for i in range(3)])
    torch.testing.assert_close(batch, single, atol=1e-5, rtol=0)


def test_dcgan_rejects_wrong_shapes(dcgan_path):
    G = load_generator(dcgan_path)
    with pytest.raises(AssertionError, match="z: expected shape"):
        G.mapping(torch.randn(2, 64))


@pytest.mark.parametrize(
    "override, message",
    [
        ({"kind": "stylegan2"}, "holds a dcgan generator but the config says stylegan2"),
        ({"resolution": 256}, "resolution is 64 but the config says 256"),
        ({"w_dim": 512}, "w_dim is 100 but the config says 512"),
    ],
)
def test_config_mismatch_names_file_and_values(dcgan_path, override, message):
    from facelatent.errors import InputFileError
    from facelatent.generators import load_generator

    settings = {"checkpoint": str(dcgan_path), "kind": "dcgan", "resolution": 64, "w_dim": 100, **override}
    with pytest.raises(InputFileError, match=message) as info:
        load_generator(settings["checkpoint"], expect=settings)
    assert str(dcgan_path) in str(info.value) and "\n" not in str(info.value)
