"""Read NVlabs network pickles (StyleGAN2-ADA / StyleGAN3 `.pkl`) without executing anything.

The NVlabs persistence format reduces every network to
`torch_utils.persistence._reconstruct_persistent_obj(meta)`, where `meta` carries the class
source text (`module_src`), the class name and the module's `__dict__`. Loading it the normal
way imports `torch_utils`/`dnnlib` and executes `module_src`. Here instead:

- an allow-list maps each permitted global to a stand-in that only collects data
  (`PersistentObject`, a plain-dict `EasyDict`, dtype/ndarray specs) or to a checked tensor
  rebuild; every other global is refused with `InputFileError` before anything is called;
- storage bytes go through `torch.load(weights_only=True)` (`weights_only_load`, the one policy every
  torch file reader here shares: torch's own allow-list plus `TORCH_SAFE_GLOBALS`);
- the BUILD opcode (`__setstate__`) is allowed only on the stand-ins;
- `module_src` is dropped unread.
"""

from __future__ import annotations

import argparse
import io
import pickle
import re
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from facelatent.errors import InputFileError


class RefusedGlobal(pickle.UnpicklingError):
    """A global that is not on the allow-list."""

    def __init__(self, module: str, name: str):
        self.qualname = f"{module}.{name}"
        super().__init__(f"refused global '{self.qualname}'")


@dataclass
class PersistentObject:
    """What `_reconstruct_persistent_obj(meta)` carried: a class name, its version and its `__dict__`."""

    class_name: str
    version: int
    state: dict
    src_chars: int = 0  # length of the discarded source text, for diagnostics only


class EasyDict(dict):
    """Stand-in for `dnnlib.util.EasyDict`: just a dict."""


class _TypeMarker:
    """Stands for a class named in the stream (torch.Tensor, numpy.ndarray); it cannot be called."""

    def __init__(self, qualname: str):
        self.qualname = qualname

    def __repr__(self) -> str:
        return f"<marker {self.qualname}>"


TENSOR_MARKERS = {name: _TypeMarker(name) for name in ("torch.Tensor", "torch.nn.parameter.Parameter")}
NDARRAY_MARKER = _TypeMarker("numpy.ndarray")
_DTYPE_NAME = re.compile(r"^(b1|bool|[iuf][1248]|f16|c8|c16|[US]\d+)$")


@dataclass
class DtypeSpec:
    """Stand-in for `numpy.dtype(name, align, copy)` + BUILD state; simple dtypes only."""

    name: str
    byteorder: str = "="

    def __setstate__(self, state: tuple) -> None:
        if not (
            isinstance(state, tuple)
            and len(state) >= 5
            and state[2:5] == (None, None, None)
            and state[1] in ("<", ">", "|", "=")
        ):
            raise pickle.UnpicklingError("numpy dtype state is not a plain numeric/string dtype")
        self.byteorder = state[1]

    def to_numpy(self) -> np.dtype:
        dtype = np.dtype(self.name)
        return dtype.newbyteorder(self.byteorder) if self.byteorder in "<>" else dtype


@dataclass
class ArraySpec:
    """Stand-in for `numpy._core.multiarray._reconstruct(ndarray, ...)` + BUILD state."""

    array: np.ndarray | None = None

    def __setstate__(self, state: tuple) -> None:
        if not (
            isinstance(state, tuple)
            and len(state) == 5
            and isinstance(state[2], DtypeSpec)
            and isinstance(state[4], bytes)
        ):
            raise pickle.UnpicklingError("numpy array state is not a plain numeric array")
        _, shape, dtype, fortran, raw = state
        array = np.frombuffer(raw, dtype=dtype.to_numpy())
        self.array = array.reshape(tuple(shape), order="F" if fortran else "C").copy()


def _dtype(name: Any, align: Any = False, copy: Any = True) -> DtypeSpec:
    if not isinstance(name, str) or not _DTYPE_NAME.match(name):
        raise pickle.UnpicklingError(f"numpy dtype '{name}' is not allowed")
    return DtypeSpec(name)


def _scalar(dtype: Any, raw: Any = b"") -> Any:
    if not isinstance(dtype, DtypeSpec) or not isinstance(raw, bytes):
        raise pickle.UnpicklingError("numpy scalar with an unexpected payload")
    return np.frombuffer(raw, dtype=dtype.to_numpy())[0].item()


def _reconstruct(cls: Any, shape: Any, typecode: Any) -> ArraySpec:
    if cls is not NDARRAY_MARKER:
        raise pickle.UnpicklingError("numpy _reconstruct of a class other than ndarray")
    return ArraySpec()


def _frombuffer(raw: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    """numpy's protocol-5 array reduce, with the buffer in-band."""
    if not isinstance(raw, (bytes, bytearray)) or not isinstance(dtype, DtypeSpec) or order not in ("C", "F"):
        raise pickle.UnpicklingError("numpy _frombuffer with an unexpected payload")
    return np.frombuffer(bytes(raw), dtype=dtype.to_numpy()).reshape(tuple(shape), order=order).copy()


# Classes torch's weights_only unpickler may build besides its defaults: plain attribute records only
# (argparse.Namespace holds AdaFace's hyper-parameters). Every torch file reader uses this one list.
TORCH_SAFE_GLOBALS: list[type] = [argparse.Namespace]
_TORCH_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def weights_only_load(source: str | Path | io.BytesIO) -> Any:
    """`torch.load(weights_only=True)` on CPU with `TORCH_SAFE_GLOBALS`; refusals raise pickle.UnpicklingError."""
    with torch.serialization.safe_globals(TORCH_SAFE_GLOBALS):
        return torch.load(source, map_location="cpu", weights_only=True)


def refusal_reason(exc: BaseException) -> str:
    """One line for a weights_only refusal, naming the refused global when torch's message does."""
    match = _TORCH_GLOBAL.search(str(exc))
    what = f"refused global '{match.group(1)}'" if match else f"refused ({str(exc).strip().splitlines()[0]})"
    return f"{what}: not on the allow-list of the safe torch reader (nothing was executed)"


def _load_from_bytes(raw: Any) -> Any:
    if not isinstance(raw, bytes):
        raise pickle.UnpicklingError("torch storage payload is not bytes")
    try:
        storage = weights_only_load(io.BytesIO(raw))
    except pickle.UnpicklingError as exc:
        match = _TORCH_GLOBAL.search(str(exc))
        if match:
            raise RefusedGlobal(*match.group(1).rsplit(".", 1)) from None
        raise pickle.UnpicklingError(f"torch storage payload {refusal_reason(exc)}") from None
    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise pickle.UnpicklingError("torch storage payload did not hold a storage")
    return storage


def _no_hooks(hooks: Any) -> None:
    if hooks:  # backward hooks are code; a weights file has none
        raise pickle.UnpicklingError("tensor with backward hooks")


def _rebuild_tensor_v2(
    storage: Any,
    offset: Any,
    size: Any,
    stride: Any,
    requires_grad: Any = False,
    backward_hooks: Any = None,
    metadata: Any = None,
) -> torch.Tensor:
    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise pickle.UnpicklingError("tensor rebuilt from something that is not a storage")
    _no_hooks(backward_hooks)
    dtype = storage.dtype if isinstance(storage, torch.TypedStorage) else torch.uint8
    untyped = storage._untyped_storage if isinstance(storage, torch.TypedStorage) else storage
    tensor = torch.empty((0,), dtype=dtype)
    tensor.set_(untyped, int(offset), tuple(int(s) for s in size), tuple(int(s) for s in stride))
    return tensor


def _rebuild_parameter(
    data: Any, requires_grad: Any = False, backward_hooks: Any = None, state: Any = None
) -> torch.Tensor:
    if not isinstance(data, torch.Tensor):
        raise pickle.UnpicklingError("parameter rebuilt from something that is not a tensor")
    _no_hooks(backward_hooks)
    _no_hooks(state)
    return data  # weights only: a plain tensor is all we keep


def _rebuild_from_type_v2(func: Any, new_type: Any, args: Any, state: Any) -> torch.Tensor:
    if func not in (_rebuild_tensor_v2, _rebuild_parameter) or new_type not in TENSOR_MARKERS.values():
        raise pickle.UnpicklingError("tensor subclass rebuild with an unexpected function or type")
    _no_hooks(state)
    return func(*args)


def _reconstruct_persistent_obj(meta: Any) -> PersistentObject:
    if not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(meta.get("state"), dict):
        raise pickle.UnpicklingError("persistent object without a class state")
    src = meta.get("module_src")
    return PersistentObject(
        class_name=str(meta.get("class_name")),
        version=int(meta.get("version", 0)),
        state=meta["state"],
        src_chars=len(src) if isinstance(src, str) else 0,
    )


ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("dnnlib.util", "EasyDict"): EasyDict,
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch.storage", "_load_from_bytes"): _load_from_bytes,
    ("torch", "Tensor"): TENSOR_MARKERS["torch.Tensor"],
    ("torch.nn.parameter", "Parameter"): TENSOR_MARKERS["torch.nn.parameter.Parameter"],
    ("numpy", "dtype"): _dtype,
    ("numpy", "ndarray"): NDARRAY_MARKER,
    ("numpy.core.multiarray", "scalar"): _scalar,
    ("numpy._core.multiarray", "scalar"): _scalar,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
}
BUILDABLE = (DtypeSpec, ArraySpec)


class RestrictedUnpickler(pickle._Unpickler):  # the Python implementation lets us restrict BUILD
    """Unpickler that resolves globals only through ALLOWED_GLOBALS and BUILDs only stand-ins."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise RefusedGlobal(module, name) from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not part of the NVlabs pickle format")

    def load_build_restricted(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        if not isinstance(inst, BUILDABLE):
            raise pickle.UnpicklingError(f"BUILD on {type(inst).__name__} is not allowed")
        inst.__setstate__(state)

    dispatch[pickle.BUILD[0]] = load_build_restricted


def _materialise(obj: Any) -> Any:
    """Replace numpy stand-ins by real arrays/dtypes, recursively (in place for containers)."""
    if isinstance(obj, ArraySpec):
        return obj.array
    if isinstance(obj, DtypeSpec):
        return obj.to_numpy()
    if isinstance(obj, PersistentObject):
        obj.state = _materialise(obj.state)
        return obj
    if isinstance(obj, dict):
        for key in list(obj):
            obj[key] = _materialise(obj[key])
        return obj
    if isinstance(obj, list):
        obj[:] = [_materialise(v) for v in obj]
        return obj
    if isinstance(obj, tuple):
        return tuple(_materialise(v) for v in obj)
    return obj


def safe_load_pickle(path: str | Path) -> Any:
    """Unpickle an NVlabs network pickle with the allow-list; one-line InputFileError on anything else."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(path, "checkpoint file does not exist")
    try:
        with open(path, "rb") as fh:
            return _materialise(RestrictedUnpickler(fh).load())
    except RefusedGlobal as exc:
        raise InputFileError(
            path,
            f"refused global '{exc.qualname}': not on the allow-list of the safe "
            "NVlabs pickle reader (nothing was executed)",
        ) from None
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        RuntimeError,
        AttributeError,
        KeyError,
        IndexError,
    ) as exc:
        raise InputFileError(path, f"not a readable NVlabs network pickle ({type(exc).__name__}: {exc})") from None


def module_state_dict(obj: PersistentObject, prefix: str = "") -> dict[str, torch.Tensor]:
    """Flatten `_parameters`, persistent `_buffers` and `_modules` into NVlabs state-dict keys."""
    state = obj.state
    skip = set(state.get("_non_persistent_buffers_set") or ())
    out: dict[str, torch.Tensor] = {}
    for key, value in (state.get("_parameters") or {}).items():
        if value is not None:
            out[prefix + key] = value
    for key, value in (state.get("_buffers") or {}).items():
        if value is not None and key not in skip:
            out[prefix + key] = value
    for key, child in (state.get("_modules") or {}).items():
        if child is None:
            continue
        if not isinstance(child, PersistentObject):
            raise TypeError(f"sub-module '{prefix}{key}' is not an NVlabs persistent object")
        out.update(module_state_dict(child, prefix + key + "."))
    return out


def plain_data(obj: Any) -> Any:
    """JSON-able copy of init kwargs: dicts, lists, str, int, float, bool, None."""
    if isinstance(obj, dict):
        return {str(k): plain_data(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain_data(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    raise TypeError(f"init kwarg of type {type(obj).__name__} is not plain data")


GENERATOR_POSITIONAL = (
    "z_dim",
    "c_dim",
    "w_dim",
    "img_resolution",
    "img_channels",
    "mapping_kwargs",
    "synthesis_kwargs",
)


def init_kwargs(obj: PersistentObject) -> dict:
    """The constructor kwargs NVlabs recorded (`_init_kwargs`, plus any positional `_init_args`)."""
    args = obj.state.get("_init_args") or ()
    kwargs = dict(obj.state.get("_init_kwargs") or {})
    if len(args) > len(GENERATOR_POSITIONAL):
        raise TypeError(f"{len(args)} positional init args")
    kwargs.update(zip(GENERATOR_POSITIONAL, args, strict=False))
    return plain_data(kwargs)
