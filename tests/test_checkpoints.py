"""Checkpoint reading: NVlabs .pkl (real files and our own), .pt/.pth, safetensors, refusals."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import types
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from facelatent.checkpoints import Checkpoint, convert_checkpoint, read_checkpoint, read_safetensors_checkpoint
from facelatent.errors import InputFileError
from facelatent.generators import build_generator, check_generator_matches, load_generator

DATA = Path(__file__).parent / "data"
SG2 = DATA / "stylegan2_g64tiny"
SG3 = DATA / "stylegan3_t64tiny"
IMG_TOL = 1e-4
# (directory, kind, reference image holding w_psi1 rendered with const noise in fp32)
NETS = [(SG2, "stylegan2", "img_psi1_const_fp32"), (SG3, "stylegan3", "img_psi1_fp32")]


def first_image_error(G, directory: Path, ref_name: str) -> float:
    ws = torch.from_numpy(np.load(directory / "w_psi1.npy"))[:1]
    expected = torch.from_numpy(np.load(directory / f"{ref_name}.npy"))[:1]
    return (G.synthesis(ws, noise_mode="const") - expected).abs().max().item()


def assert_one_line_naming(exc: InputFileError, path: Path, *needles: str) -> None:
    message = str(exc)
    assert "\n" not in message and str(path) in message, message
    for needle in needles:
        assert needle in message, message


# ---------------------------------------------------------------------------- real NVlabs pickles


@pytest.mark.parametrize("directory,kind,ref_name", NETS)
def test_real_nvlabs_pickle_loads(directory, kind, ref_name):
    ckpt = read_checkpoint(directory / "network-snapshot.pkl")
    assert ckpt.kind == kind
    assert ckpt.init_kwargs == json.loads((directory / "init_kwargs.json").read_text())["init_kwargs"]
    expected = torch.load(directory / "G_state_dict.pt", weights_only=True)
    assert list(ckpt.state_dict) == list(expected)
    assert all(torch.equal(ckpt.state_dict[k], v) and ckpt.state_dict[k].dtype == v.dtype for k, v in expected.items())
    assert ckpt.extra["network"] == "G_ema" and len(ckpt.sha256) == 64
    G = load_generator(directory / "network-snapshot.pkl")
    assert G.kind == kind and not G.training
    assert first_image_error(G, directory, ref_name) <= IMG_TOL


@pytest.mark.parametrize("directory,kind,ref_name", NETS)
def test_convert_pickle_to_safetensors(tmp_path, directory, kind, ref_name):
    dst = tmp_path / "converted.safetensors"
    convert_checkpoint(directory / "network-snapshot.pkl", dst)
    assert not (tmp_path / "converted.safetensors.partial").exists()
    ckpt = read_safetensors_checkpoint(dst)
    assert ckpt.kind == kind and ckpt.extra["source"] == "network-snapshot.pkl"
    G = load_generator(dst)
    assert first_image_error(G, directory, ref_name) <= IMG_TOL


# ---------------------------------------------------------------------------- .pt / .pth


def test_pt_with_json_beside_it(tmp_path):
    shutil.copy(SG2 / "G_state_dict.pt", tmp_path / "G.pt")
    shutil.copy(SG2 / "init_kwargs.json", tmp_path / "G.json")  # has an "init_kwargs" key
    ckpt = read_checkpoint(tmp_path / "G.pt")
    assert ckpt.kind == "stylegan2"  # from the state-dict keys
    assert first_image_error(load_generator(tmp_path / "G.pt"), SG2, "img_psi1_const_fp32") <= IMG_TOL


def test_pth_with_embedded_kwargs_and_bare_json(tmp_path):
    state = torch.load(SG3 / "G_state_dict.pt", weights_only=True)
    kwargs = json.loads((SG3 / "init_kwargs.json").read_text())["init_kwargs"]
    torch.save({"init_kwargs": kwargs, "state_dict": state}, tmp_path / "embedded.pth")
    assert read_checkpoint(tmp_path / "embedded.pth").kind == "stylegan3"
    torch.save(state, tmp_path / "plain.pt")
    (tmp_path / "plain.pt.json").write_text(json.dumps(kwargs))  # bare kwargs, `<name>.json` spelling
    ckpt = read_checkpoint(tmp_path / "plain.pt")
    assert ckpt.kind == "stylegan3" and ckpt.init_kwargs == kwargs


def test_pt_without_init_kwargs_is_refused(tmp_path):
    shutil.copy(SG2 / "G_state_dict.pt", tmp_path / "lonely.pt")
    with pytest.raises(InputFileError) as info:
        read_checkpoint(tmp_path / "lonely.pt")
    assert_one_line_naming(info.value, tmp_path / "lonely.pt", "lonely.json")


# ---------------------------------------------------------------------------- our own NVlabs-layout pickle


@pytest.fixture
def fake_nvlabs_modules(monkeypatch):
    """Stand-in `torch_utils.persistence` and `dnnlib.util` so the test can *write* the NVlabs layout."""
    persistence = types.ModuleType("torch_utils.persistence")
    util = types.ModuleType("dnnlib.util")

    def _reconstruct_persistent_obj(meta):  # only pickled by reference; the loader must never call it
        raise AssertionError("the real reconstruct function was called")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    easydict = type("EasyDict", (dict,), {"__module__": "dnnlib.util"})
    util.EasyDict = easydict
    for name, module in [
        ("torch_utils", types.ModuleType("torch_utils")),
        ("torch_utils.persistence", persistence),
        ("dnnlib", types.ModuleType("dnnlib")),
        ("dnnlib.util", util),
    ]:
        monkeypatch.setitem(sys.modules, name, module)
    return persistence, easydict


class PersistentStub:
    """Pickles as `_reconstruct_persistent_obj(meta)`, like an NVlabs persistent class instance."""

    def __init__(self, reconstruct, meta):
        self.reconstruct, self.meta = reconstruct, meta

    def __reduce__(self):
        return self.reconstruct, (self.meta,)


def persistent_tree(module: nn.Module, reconstruct, easydict, module_src: str, init_kwargs=None) -> PersistentStub:
    """The NVlabs persistence layout for `module` and its children (state = the module's __dict__ parts)."""
    state = {
        "training": False,
        "_parameters": OrderedDict(module._parameters),
        "_buffers": OrderedDict(module._buffers),  # None entries included, as in StyleGAN3 ToRGB
        "_non_persistent_buffers_set": set(),
        "_forward_hooks": OrderedDict(),
        "_modules": {
            name: persistent_tree(child, reconstruct, easydict, module_src) for name, child in module._modules.items()
        },
        "some_attribute": np.float64(0.5),
        "_init_args": (),
        "_init_kwargs": easydict(init_kwargs or {}),
    }
    meta = easydict(
        type="class", version=6, module_src=module_src, class_name="training.networks.Generator", state=state
    )
    return PersistentStub(reconstruct, meta)


@pytest.mark.parametrize("directory,kind,ref_name", NETS)
def test_own_pickle_in_nvlabs_layout(tmp_path, fake_nvlabs_modules, directory, kind, ref_name):
    persistence, easydict = fake_nvlabs_modules
    kwargs = json.loads((directory / "init_kwargs.json").read_text())["init_kwargs"]
    G = build_generator(Checkpoint(kind, kwargs, torch.load(directory / "G_state_dict.pt", weights_only=True)))
    marker = tmp_path / "module_src_ran"
    module_src = f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
    net = persistent_tree(
        G,
        persistence._reconstruct_persistent_obj,
        easydict,
        module_src,
        init_kwargs={**kwargs, "mapping_kwargs": easydict(kwargs["mapping_kwargs"])},
    )
    blob = pickle.dumps({"G_ema": net, "training_set_kwargs": easydict(resolution=64)}, protocol=4)
    path = tmp_path / "own.pkl"
    path.write_bytes(blob)
    ckpt = read_checkpoint(path)
    assert ckpt.kind == kind and ckpt.init_kwargs == kwargs
    assert first_image_error(load_generator(path), directory, ref_name) <= IMG_TOL
    assert not marker.exists()


# ---------------------------------------------------------------------------- refusals


class Payload:
    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def payloads(marker: Path) -> dict[str, Payload]:
    return {
        "posix.system": Payload(os.system, f"touch {marker}"),
        "builtins.eval": Payload(eval, f"open({str(marker)!r}, 'w')"),
        "subprocess.call": Payload(subprocess.call, ["touch", str(marker)]),
    }


@pytest.mark.parametrize("refused", ["posix.system", "builtins.eval", "subprocess.call"])
def test_pickle_with_code_is_refused_and_nothing_runs(tmp_path, refused):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"G_ema": payloads(marker)[refused]}, protocol=4))
    with pytest.raises(InputFileError) as info:
        load_generator(path)
    assert_one_line_naming(info.value, path, f"refused global '{refused}'")
    assert not marker.exists()


def test_payload_hidden_inside_a_real_layout_is_refused(tmp_path, fake_nvlabs_modules):
    persistence, easydict = fake_nvlabs_modules
    marker = tmp_path / "pwned"
    stub = persistent_tree(nn.Linear(2, 2), persistence._reconstruct_persistent_obj, easydict, "")
    stub.meta["state"]["_init_kwargs"] = easydict(z_dim=Payload(os.system, f"touch {marker}"))
    path = tmp_path / "hidden.pkl"
    path.write_bytes(pickle.dumps({"G_ema": stub}, protocol=4))
    with pytest.raises(InputFileError) as info:
        read_checkpoint(path)
    assert_one_line_naming(info.value, path, "posix.system")
    assert not marker.exists()


def test_unknown_module_is_refused_without_import(tmp_path, monkeypatch):
    module = types.ModuleType("facelatent_test_evil")

    def hook(*args):
        raise AssertionError("called")

    hook.__module__, hook.__qualname__ = "facelatent_test_evil", "hook"
    module.hook = hook
    monkeypatch.setitem(sys.modules, "facelatent_test_evil", module)
    path = tmp_path / "unknown.pkl"
    path.write_bytes(pickle.dumps(Payload(hook, "hi"), protocol=4))
    monkeypatch.delitem(sys.modules, "facelatent_test_evil")
    with pytest.raises(InputFileError) as info:
        read_checkpoint(path)
    assert_one_line_naming(info.value, path, "facelatent_test_evil.hook")
    assert "facelatent_test_evil" not in sys.modules


def test_build_on_a_non_stand_in_is_refused(tmp_path):
    """`__setstate__` on allowed objects (here an OrderedDict) is not allowed either."""
    path = tmp_path / "build.pkl"
    path.write_bytes(pickle.dumps(Payload(OrderedDict), protocol=4)[:-1] + b"}\x94b.")  # EMPTY_DICT MEMOIZE BUILD STOP
    with pytest.raises(InputFileError) as info:
        read_checkpoint(path)
    assert_one_line_naming(info.value, path, "BUILD on OrderedDict")


def test_torch_file_with_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"x": Payload(os.system, f"touch {marker}")}, "init_kwargs": {}}, path)
    with pytest.raises(InputFileError) as info:
        read_checkpoint(path)
    assert_one_line_naming(info.value, path, "weights_only")
    assert not marker.exists()


def test_unsupported_suffix_and_missing_file(tmp_path):
    with pytest.raises(InputFileError, match="unsupported checkpoint suffix"):
        read_checkpoint(tmp_path / "weights.bin")
    with pytest.raises(InputFileError, match="does not exist"):
        read_checkpoint(tmp_path / "missing.pkl")


def test_generator_resolution_mismatch_names_file_and_values():
    path = SG2 / "network-snapshot.pkl"
    G = load_generator(path)
    with pytest.raises(InputFileError) as info:
        check_generator_matches(G, path, resolution=256)
    assert_one_line_naming(info.value, path, "64", "256")


def test_the_same_weights_always_give_the_same_file(tmp_path):
    """The writer orders its metadata map at random per call; the header is sorted, so the sha256 that every
    output records as the generator hash is the same for every fetch of the same weights."""
    import hashlib

    from facelatent.checkpoints import save_safetensors_checkpoint

    ckpt = Checkpoint(
        "dcgan",
        {"z_dim": 100, "ngf": 64},
        {"b.weight": torch.randn(3, 4), "a.weight": torch.randn(5)},
        extra={"source": "a wheel (é)", "wheel": "w.whl"},
    )
    hashes = set()
    for i in range(6):
        save_safetensors_checkpoint(tmp_path / f"{i}.safetensors", ckpt)
        hashes.add(hashlib.sha256((tmp_path / f"{i}.safetensors").read_bytes()).hexdigest())
    assert len(hashes) == 1
    back = read_safetensors_checkpoint(tmp_path / "0.safetensors")
    assert back.kind == "dcgan" and back.init_kwargs == ckpt.init_kwargs and back.extra == ckpt.extra
    assert all(torch.equal(back.state_dict[k], v) for k, v in ckpt.state_dict.items())


def test_code_inside_nvlabs_storage_bytes_is_refused(tmp_path):
    """The storage bytes of an NVlabs .pkl are a torch file of their own: they go through the same
    weights_only policy, and a payload there is refused in one line naming the global."""
    import io

    marker, raw = tmp_path / "pwned", io.BytesIO()
    torch.save(Payload(os.system, f"touch {marker}"), raw)
    path = tmp_path / "storage.pkl"
    path.write_bytes(pickle.dumps(Payload(torch.storage._load_from_bytes, raw.getvalue()), protocol=4))
    with pytest.raises(InputFileError) as info:
        read_checkpoint(path)
    assert_one_line_naming(info.value, path, "refused global 'posix.system'")
    assert not marker.exists()


def test_a_broken_generator_backend_shows_its_import_error(monkeypatch):
    """A StyleGAN backend that fails to import used to read as "kind 'stylegan2' is not a generator"."""
    from facelatent.checkpoints import Checkpoint
    from facelatent.generators import build_generator

    monkeypatch.setitem(sys.modules, "facelatent.generators.stylegan2", None)  # import now raises ImportError
    with pytest.raises(ImportError, match="facelatent.generators.stylegan2"):
        build_generator(Checkpoint("stylegan2", {}, {}, path="G.pkl"))
    with pytest.raises(InputFileError, match="kind 'biggan' is not a generator"):
        build_generator(Checkpoint("biggan", {}, {}, path="G.pkl"))
