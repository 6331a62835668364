"""IResNet (arcface_torch) and AdaFace loaders: published key layouts load strictly, the forward pass
equals a functional re-computation from the state dict, bad files get one-line errors, distances."""

from __future__ import annotations

import argparse
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from facelatent.embeddings import (
    AdaFaceEmbedder,
    IResNetEmbedder,
    angle,
    load_embedder,
    pairwise_angles,
    parse_embedder_spec,
    parse_kind,
)
from facelatent.errors import ConfigError, InputFileError

WIDTHS = (64, 128, 256, 512)


# ---------------------------------------------------------------------------------------------
# Published key layouts, written out independently of the package
# ---------------------------------------------------------------------------------------------


def bn_keys(prefix: str, c: int, affine: bool = True) -> list[tuple[str, tuple]]:
    keys = [(f"{prefix}.weight", (c,)), (f"{prefix}.bias", (c,))] if affine else []
    return keys + [
        (f"{prefix}.running_mean", (c,)),
        (f"{prefix}.running_var", (c,)),
        (f"{prefix}.num_batches_tracked", ()),
    ]


def iresnet_layout(units: list[int]) -> list[tuple[str, tuple]]:
    """arcface_torch backbones/iresnet.py: IResNet(IBasicBlock, units) state_dict keys in order."""
    keys = [("conv1.weight", (64, 3, 3, 3)), *bn_keys("bn1", 64), ("prelu.weight", (64,))]
    cin = 64
    for stage, (width, count) in enumerate(zip(WIDTHS, units, strict=True), start=1):
        for i in range(count):
            p = f"layer{stage}.{i}"
            keys += [
                *bn_keys(f"{p}.bn1", cin),
                (f"{p}.conv1.weight", (width, cin, 3, 3)),
                *bn_keys(f"{p}.bn2", width),
                (f"{p}.prelu.weight", (width,)),
                (f"{p}.conv2.weight", (width, width, 3, 3)),
                *bn_keys(f"{p}.bn3", width),
            ]
            if i == 0:  # every stage starts with stride 2, so it always has a downsample branch
                keys += [(f"{p}.downsample.0.weight", (width, cin, 1, 1)), *bn_keys(f"{p}.downsample.1", width)]
            cin = width
    return keys + [*bn_keys("bn2", 512), ("fc.weight", (512, 512 * 49)), ("fc.bias", (512,)), *bn_keys("features", 512)]


def adaface_layout(units: list[int]) -> list[tuple[str, tuple]]:
    """mk-minchul/AdaFace net.py: Backbone((112,112), n, 'ir') state_dict keys in order."""
    keys = [("input_layer.0.weight", (64, 3, 3, 3)), *bn_keys("input_layer.1", 64), ("input_layer.2.weight", (64,))]
    cin, index = 64, 0
    for width, count in zip(WIDTHS, units, strict=True):
        for _i in range(count):
            p = f"body.{index}"
            if cin != width:  # otherwise the shortcut is a parameter-free MaxPool2d(1, stride)
                keys += [(f"{p}.shortcut_layer.0.weight", (width, cin, 1, 1)), *bn_keys(f"{p}.shortcut_layer.1", width)]
            keys += [
                *bn_keys(f"{p}.res_layer.0", cin),
                (f"{p}.res_layer.1.weight", (width, cin, 3, 3)),
                *bn_keys(f"{p}.res_layer.2", width),
                (f"{p}.res_layer.3.weight", (width,)),
                (f"{p}.res_layer.4.weight", (width, width, 3, 3)),
                *bn_keys(f"{p}.res_layer.5", width),
            ]
            cin, index = width, index + 1
    return keys + [
        *bn_keys("output_layer.0", 512),
        ("output_layer.3.weight", (512, 512 * 49)),
        ("output_layer.3.bias", (512,)),
        *bn_keys("output_layer.4", 512, affine=False),
    ]


def random_state(layout: list[tuple[str, tuple]], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights of sensible scale; BN statistics perturbed so every term matters."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in layout:
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7)
        elif key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(shape, generator=g)
        elif key.endswith(("running_mean", ".bias")):
            state[key] = 0.1 * torch.randn(shape, generator=g)
        elif "prelu" in key or key.endswith(("input_layer.2.weight", "res_layer.3.weight")):
            state[key] = 0.25 + 0.5 * torch.rand(shape, generator=g)  # PReLU slopes
        elif len(shape) == 1:  # BN gamma
            state[key] = 1 + 0.1 * torch.randn(shape, generator=g)
        else:
            fan_in = math.prod(shape[1:])
            state[key] = torch.randn(shape, generator=g) * math.sqrt(1.0 / fan_in)
    return state


# ---------------------------------------------------------------------------------------------
# Functional re-computation from the state dict (the published forward, restated)
# ---------------------------------------------------------------------------------------------


def bn(x, s, p):
    return F.batch_norm(
        x, s[f"{p}.running_mean"], s[f"{p}.running_var"], s.get(f"{p}.weight"), s.get(f"{p}.bias"), False, 0.0, 1e-5
    )


def iresnet_reference(s, x, units):
    x = F.prelu(bn(F.conv2d(x, s["conv1.weight"], padding=1), s, "bn1"), s["prelu.weight"])
    for stage, count in enumerate(units, start=1):
        for i in range(count):
            p, stride = f"layer{stage}.{i}", 2 if i == 0 else 1
            out = bn(x, s, f"{p}.bn1")
            out = F.prelu(bn(F.conv2d(out, s[f"{p}.conv1.weight"], padding=1), s, f"{p}.bn2"), s[f"{p}.prelu.weight"])
            out = bn(F.conv2d(out, s[f"{p}.conv2.weight"], stride=stride, padding=1), s, f"{p}.bn3")
            if i == 0:
                x = bn(F.conv2d(x, s[f"{p}.downsample.0.weight"], stride=stride), s, f"{p}.downsample.1")
            x = out + x
    x = bn(x, s, "bn2").flatten(1)
    return bn(F.linear(x, s["fc.weight"], s["fc.bias"]), s, "features")


def adaface_reference(s, x, units):
    x = F.prelu(bn(F.conv2d(x, s["input_layer.0.weight"], padding=1), s, "input_layer.1"), s["input_layer.2.weight"])
    cin, index = 64, 0
    for width, count in zip(WIDTHS, units, strict=True):
        for i in range(count):
            p, stride = f"body.{index}", 2 if i == 0 else 1
            if cin == width:
                short = x[:, :, ::stride, ::stride]
            else:
                short = bn(F.conv2d(x, s[f"{p}.shortcut_layer.0.weight"], stride=stride), s, f"{p}.shortcut_layer.1")
            r = F.conv2d(bn(x, s, f"{p}.res_layer.0"), s[f"{p}.res_layer.1.weight"], padding=1)
            r = F.prelu(bn(r, s, f"{p}.res_layer.2"), s[f"{p}.res_layer.3.weight"])
            r = bn(F.conv2d(r, s[f"{p}.res_layer.4.weight"], stride=stride, padding=1), s, f"{p}.res_layer.5")
            x, cin, index = r + short, width, index + 1
    x = bn(x, s, "output_layer.0").flatten(1)
    x = bn(F.linear(x, s["output_layer.3.weight"], s["output_layer.3.bias"]), s, "output_layer.4")
    return x / x.norm(dim=1, keepdim=True)


def images(n: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, 112, 112, generator=torch.Generator().manual_seed(seed)) * 255


# ---------------------------------------------------------------------------------------------
# IResNet
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def iresnet18_file(tmp_path_factory):
    state = random_state(iresnet_layout([2, 2, 2, 2]))
    path = tmp_path_factory.mktemp("iresnet") / "backbone.pth"
    torch.save(state, path)
    return path, state


def test_iresnet18_layout_matches_our_module():
    ours = {k: tuple(v.shape) for k, v in IResNetEmbedder([2, 2, 2, 2]).state_dict().items()}
    assert ours == dict(iresnet_layout([2, 2, 2, 2]))
    assert len(IResNetEmbedder([3, 4, 14, 3]).state_dict()) == len(iresnet_layout([3, 4, 14, 3]))


def test_iresnet_loads_strictly_and_matches_the_published_forward(iresnet18_file):
    path, state = iresnet18_file
    for spec in (f"iresnet18:{path}", {"kind": "iresnet18", "path": str(path)}, str(path)):
        model = load_embedder(spec)
        assert model.arch == "iresnet18" and model.input_size == (112, 112) and not model.training
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    x = images()
    with torch.no_grad():
        ours = model.embed(x)
        ref = iresnet_reference(state, (x / 255 - 0.5) / 0.5, [2, 2, 2, 2])
    diff = (ours - ref).abs().max().item()
    print(f"iresnet18 vs functional reference: max abs diff {diff:.3g}")
    assert ours.shape == (2, 512) and diff < 1e-4 * ref.abs().max().item()


def test_iresnet_depth_mismatch_is_named(iresnet18_file):
    path, _ = iresnet18_file
    with pytest.raises(InputFileError, match="iresnet18 but the spec asks for iresnet50"):
        load_embedder(f"iresnet50:{path}")


@pytest.mark.parametrize(
    "change, message",
    [
        ("drop", "missing key.*'layer2.1.conv2.weight'"),
        ("extra", "unexpected key.*'layer2.1.extra.weight'"),
        ("shape", "'layer2.1.conv2.weight' has shape"),
    ],
)
def test_iresnet_bad_keys_are_named(tmp_path, iresnet18_file, change, message):
    state = dict(iresnet18_file[1])
    if change == "drop":
        del state["layer2.1.conv2.weight"]
    elif change == "extra":
        state["layer2.1.extra.weight"] = torch.zeros(3)
    else:
        state["layer2.1.conv2.weight"] = torch.zeros(128, 128, 1, 1)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(InputFileError, match=message) as info:
        load_embedder(f"iresnet18:{path}")
    assert "bad.pth" in str(info.value) and "\n" not in str(info.value)


def test_iresnet_file_without_batch_counters_loads(tmp_path, iresnet18_file):
    state = {k: v for k, v in iresnet18_file[1].items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "exported.pth"
    torch.save(state, path)
    assert load_embedder(f"iresnet18:{path}").arch == "iresnet18"


def test_narrow_iresnet_stand_in_round_trips_through_both_file_formats(tmp_path):
    """The scale rehearsal's stand-in (narrow stages, 16 px): its widths come back from a plain state dict too."""
    from facelatent.checkpoints import Checkpoint, save_safetensors_checkpoint
    from facelatent.embeddings.iresnet import iresnet_kwargs

    torch.manual_seed(0)
    kwargs = {"layers": [1, 1, 1, 1], "num_features": 512, "image_size": 16, "widths": [8, 8, 16, 16, 32]}
    model = IResNetEmbedder(**kwargs).eval()
    assert iresnet_kwargs(model.state_dict()) == kwargs
    assert "widths" not in iresnet_kwargs(IResNetEmbedder(layers=[1, 1, 1, 1], image_size=32).state_dict())
    save_safetensors_checkpoint(tmp_path / "narrow.safetensors", Checkpoint("iresnet", kwargs, model.state_dict()))
    torch.save(model.state_dict(), tmp_path / "narrow.pth")
    x = torch.rand(2, 3, 16, 16) * 255
    with torch.no_grad():
        expected = model(model.preprocess(x))
        for spec in (tmp_path / "narrow.safetensors", f"iresnet:{tmp_path / 'narrow.pth'}"):
            loaded = load_embedder(spec)
            torch.testing.assert_close(loaded(loaded.preprocess(x)), expected)


def test_tiny_iresnet_input_gradient_matches_central_difference():
    torch.manual_seed(0)
    layers = [1, 1, 1, 1]
    net = IResNetEmbedder(layers).to(torch.float64)
    net.load_state_dict(
        {
            k: v.to(v.dtype if k.endswith("tracked") else torch.float64)
            for k, v in random_state(iresnet_layout(layers), seed=3).items()
        }
    )
    net.eval()
    g = torch.Generator().manual_seed(2)
    x = (torch.rand(1, 3, 112, 112, generator=g, dtype=torch.float64) * 255).requires_grad_(True)
    u = torch.randn(1, 512, generator=g, dtype=torch.float64)
    v = torch.randn(x.shape, generator=g, dtype=torch.float64)
    (grad,) = torch.autograd.grad((net.embed(x) * u).sum(), x)
    h = 1e-6
    with torch.no_grad():
        plus, minus = (net.embed(torch.cat([x + h * v, x - h * v])) * u).sum(dim=1)
    numeric, analytic = (plus - minus).item() / (2 * h), (grad * v).sum().item()
    print(f"tiny iresnet directional derivative: autograd {analytic:.8g}, numeric {numeric:.8g}")
    assert abs(analytic - numeric) <= 1e-6 * abs(numeric)


# ---------------------------------------------------------------------------------------------
# AdaFace
# ---------------------------------------------------------------------------------------------


def lightning_checkpoint(state: dict[str, torch.Tensor]) -> dict:
    """The shape of an AdaFace release: a Lightning dict whose hyper-parameters hold a Namespace."""
    full = {f"model.{k}": v for k, v in state.items()}
    full["head.kernel"] = torch.randn(512, 10)
    full["head.batch_mean"] = torch.ones(1) * 20
    return {
        "epoch": 3,
        "global_step": 1000,
        "state_dict": full,
        "hyper_parameters": {"args": argparse.Namespace(arch="ir_18", m=0.4, h=0.333)},
    }


@pytest.fixture(scope="module")
def adaface18(tmp_path_factory):
    state = random_state(adaface_layout([2, 2, 2, 2]), seed=5)
    path = tmp_path_factory.mktemp("adaface") / "adaface_ir18_webface4m.ckpt"
    torch.save(lightning_checkpoint(state), path)
    return path, state


def test_adaface_layout_matches_our_module():
    for depth, units in ((18, [2, 2, 2, 2]), (50, [3, 4, 14, 3]), (101, [3, 13, 30, 3])):
        ours = {k: tuple(v.shape) for k, v in AdaFaceEmbedder(depth).state_dict().items()}
        assert ours == dict(adaface_layout(units)), depth


def test_adaface_ckpt_loads_and_matches_the_published_forward(adaface18):
    path, state = adaface18
    model = load_embedder(f"adaface_ir18:{path}")
    assert model.num_layers == 18 and load_embedder(str(path)).num_layers == 18  # depth inferred from keys
    x = images(seed=4)
    with torch.no_grad():
        ours = model.embed(x)
        bgr = (x.flip(1) / 255 - 0.5) / 0.5
        ref = adaface_reference(state, bgr, [2, 2, 2, 2])
        rgb_ref = adaface_reference(state, (x / 255 - 0.5) / 0.5, [2, 2, 2, 2])
    diff = (ours - ref).abs().max().item()
    print(f"adaface ir18 vs functional reference: max abs diff {diff:.3g}")
    assert diff < 1e-5
    assert (ours - rgb_ref).abs().max().item() > 1e-3  # channel order matters: the model must see BGR
    assert torch.allclose(ours.norm(dim=1), torch.ones(2), atol=1e-5)


class _Planted:
    """Pickles as a call to os.system: a loader that honours it would create the marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_checkpoint_objects_are_never_executed(tmp_path, adaface18):
    marker = tmp_path / "executed"
    ckpt = lightning_checkpoint(adaface18[1])
    ckpt["callbacks"] = _Planted(marker)
    path = tmp_path / "planted.ckpt"
    torch.save(ckpt, path)
    # refused by default (issue 23): an object outside the allow-list stops the load, it is never stood in for
    with pytest.raises(InputFileError, match="planted.ckpt: refused global 'posix.system'"):
        load_embedder(f"adaface_ir18:{path}")
    assert not marker.exists()


def test_adaface_unknown_prefix_is_named(tmp_path, adaface18):
    ckpt = lightning_checkpoint(adaface18[1])
    ckpt["state_dict"]["ema.body.0.res_layer.1.weight"] = torch.zeros(1)
    path = tmp_path / "odd.ckpt"
    torch.save(ckpt, path)
    with pytest.raises(InputFileError, match="odd.ckpt: .*'ema.body.0.res_layer.1.weight'"):
        load_embedder(f"adaface_ir18:{path}")


def test_adaface_missing_backbone_key_is_named(tmp_path, adaface18):
    ckpt = lightning_checkpoint(adaface18[1])
    del ckpt["state_dict"]["model.body.3.res_layer.4.weight"]
    path = tmp_path / "short.ckpt"
    torch.save(ckpt, path)
    with pytest.raises(InputFileError, match="missing key.*'body.3.res_layer.4.weight'"):
        load_embedder(f"adaface_ir18:{path}")


# ---------------------------------------------------------------------------------------------
# Specs, file errors, distances
# ---------------------------------------------------------------------------------------------


def test_spec_forms(tmp_path):
    assert parse_kind("iresnet50") == ("iresnet", 50)
    assert parse_kind("adaface_ir101") == ("adaface", 100)
    assert parse_kind("facenet") == ("facenet", None)
    spec = parse_embedder_spec(f"iresnet100:{tmp_path / 'b.pth'}")
    assert (spec.family, spec.depth, spec.path.name) == ("iresnet", 100, "b.pth")
    with pytest.raises(ConfigError):
        parse_kind("resnet50")
    with pytest.raises(ConfigError, match="needs a weights file"):
        parse_embedder_spec("iresnet50")
    with pytest.raises(InputFileError, match="nothing.pth"):
        load_embedder(f"iresnet50:{tmp_path / 'nothing.pth'}")


def test_corrupt_weights_file_is_named(tmp_path):
    path = tmp_path / "junk.pth"
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(InputFileError, match="junk.pth"):
        load_embedder(f"iresnet18:{path}")


def test_angles_known_values_and_finite_gradient_at_identity():
    a = torch.tensor([[3.0, 0.0], [0.0, 2.0], [1.0, 1.0]], dtype=torch.float64, requires_grad=True)
    theta = pairwise_angles(a)
    assert theta.shape == (3, 3) and torch.allclose(theta, theta.T)
    assert theta[0, 1].item() == pytest.approx(math.pi / 2, abs=1e-6)
    assert theta[0, 2].item() == pytest.approx(math.acos(0.999999 * math.cos(math.pi / 4)), abs=1e-6)
    assert theta[0, 0].item() == pytest.approx(math.acos(0.999999), abs=1e-6)
    theta.sum().backward()
    assert torch.isfinite(a.grad).all()
    b = torch.tensor([[-1.0, 0.0]], dtype=torch.float64)
    assert pairwise_angles(a[:1], b).shape == (1, 1)
    assert angle(a[0], b[0]).item() == pytest.approx(math.acos(-0.999999), abs=1e-6)
    with pytest.raises(ValueError, match="NaN"):
        angle(torch.tensor([float("nan"), 1.0]), torch.tensor([1.0, 0.0]))


def test_angles_agree_with_numpy():
    rng = np.random.default_rng(0)
    A, B = rng.normal(size=(4, 8)), rng.normal(size=(3, 8))
    unit = lambda m: m / np.linalg.norm(m, axis=1, keepdims=True)  # noqa: E731
    expected = np.arccos(0.999999 * unit(A) @ unit(B).T)
    ours = pairwise_angles(torch.from_numpy(A), torch.from_numpy(B)).numpy()
    np.testing.assert_allclose(ours, expected, atol=1e-12)


def test_a_job_reads_the_weights_file_it_names(tmp_path, monkeypatch):
    """`weights=` (a rule's input) is read; the model name only gives the kind and is not looked up."""
    from conftest import fetched_model

    from facelatent.embeddings import parse_embedder_spec

    path = tmp_path / "declared.safetensors"
    path.write_bytes(fetched_model("facenet_casia").read_bytes())
    monkeypatch.setenv("FACELATENT_RESOURCES", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="not fetched"):
        parse_embedder_spec("facenet_casia")
    model = load_embedder("facenet_casia", weights=path)
    assert model.checkpoint_path == str(path)
    assert parse_embedder_spec("iresnet50:/elsewhere.pth", weights=path).depth == 50


def test_fr_weights_naming_other_globals_are_refused(tmp_path):
    """No permissive fallback: a payload next to valid weights used to load (as an inert stand-in);
    now the file is refused in one line naming the global, and nothing runs."""
    import os

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {tmp_path / 'pwned'}",)

    state = IResNetEmbedder([2, 2, 2, 2]).state_dict()
    path = tmp_path / "backbone.pth"
    torch.save({"state_dict": state, "extra": Payload()}, path)
    with pytest.raises(InputFileError) as info:
        load_embedder(f"iresnet18:{path}")
    message = str(info.value)
    assert "\n" not in message and str(path) in message and "refused global 'posix.system'" in message, message
    assert not (tmp_path / "pwned").exists()
