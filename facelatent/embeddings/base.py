"""The face-recognition embedder interface, angle distances, and safe reading of torch weight files.

Every embedder is an `nn.Module` with `kind`, `input_size` (H, W) and `embedding_dim`, whose
`embed(images)` takes float RGB images [B, 3, H, W] in [0, 255] at `input_size`, applies the
model's own preprocessing, and returns [B, D]. Everything is differentiable w.r.t. the images.
Embedders are inference-only: batch norm always uses its running statistics.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from facelatent.errors import InputFileError
from facelatent.generators.base import assert_shape  # noqa: F401  (re-exported for the embedders)

ANGLE_COS_FACTOR = 0.999999  # keeps arccos finite and differentiable at identical vectors


class Embedder(nn.Module):
    """Common interface; subclasses implement `preprocess` and `forward` (the network proper)."""

    kind: str = "base"
    input_size: tuple[int, int] = (112, 112)
    embedding_dim: int = 512

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:  # pragma: no cover - overridden
        raise NotImplementedError

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """RGB float images in [0, 255], [B, 3, H, W] at `input_size` -> embeddings [B, D]."""
        assert_shape(images, [None, 3, *self.input_size], "images")
        out = self(self.preprocess(images))
        assert_shape(out, [images.shape[0], self.embedding_dim], "embeddings")
        return out

    def train(self, mode: bool = True) -> "Embedder":
        # Frozen feature extractor: a parent module's .train() must not switch batch norm to batch stats.
        return super().train(False)

    def describe(self) -> dict:
        """Plain facts other stages record next to their outputs."""
        return dict(kind=self.kind, input_size=list(self.input_size), embedding_dim=self.embedding_dim,
                    checkpoint_path=getattr(self, "checkpoint_path", ""),
                    checkpoint_sha256=getattr(self, "checkpoint_sha256", ""))


# ---------------------------------------------------------------------------------------------
# Distances
# ---------------------------------------------------------------------------------------------

def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def _checked_angle(cos: torch.Tensor) -> torch.Tensor:
    theta = torch.arccos(ANGLE_COS_FACTOR * cos.clamp(-1.0, 1.0))
    if torch.isnan(theta).any():
        raise ValueError("angle: NaN in embeddings")
    return theta


def angle(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Angle in radians between matching rows of `a` and `b` ([..., D] each; broadcasting allowed)."""
    return _checked_angle((_unit(a) * _unit(b)).sum(dim=-1))


def pairwise_angles(A: torch.Tensor, B: torch.Tensor | None = None) -> torch.Tensor:
    """Full [N, M] matrix of angles (radians) between the rows of A [N, D] and B [M, D] (B = A if None)."""
    assert A.ndim == 2, f"A: expected [N, D], got {list(A.shape)}"
    B = A if B is None else B
    assert B.ndim == 2 and B.shape[1] == A.shape[1], f"B: expected [M, {A.shape[1]}], got {list(B.shape)}"
    return _checked_angle(_unit(A) @ _unit(B).T)


def cosine_similarity_matrix(A: torch.Tensor, B: torch.Tensor | None = None) -> torch.Tensor:
    """[N, M] cosine similarities between the rows of A and B (B = A if None)."""
    B = A if B is None else B
    return _unit(A) @ _unit(B).T


# ---------------------------------------------------------------------------------------------
# Reading torch weight files without running code from them
# ---------------------------------------------------------------------------------------------

_SAFE_GLOBALS = {
    ("collections", "OrderedDict"), ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_parameter"), ("torch._utils", "_rebuild_parameter_with_state"),
    ("torch", "Size"), ("torch", "device"), ("builtins", "set"), ("builtins", "frozenset"),
    ("builtins", "slice"), ("builtins", "complex"),
}


class _Opaque:
    """Stands in for any class a checkpoint names that we do not allow (e.g. argparse.Namespace in
    a Lightning checkpoint's hyper-parameters): it records its arguments and runs nothing."""

    def __init__(self, *args: Any, **kwargs: Any):
        self.args, self.kwargs = args, kwargs

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:  # dict-like subclasses are rebuilt with SETITEMS
        self.__dict__.setdefault("items", {})[key] = value

    def append(self, value: Any) -> None:
        self.__dict__.setdefault("list", []).append(value)

    def extend(self, values: Any) -> None:
        self.__dict__.setdefault("list", []).extend(values)


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE_GLOBALS or (module == "torch" and name.endswith("Storage")):
            return super().find_class(module, name)
        if module == "torch" and name in ("float32", "float16", "bfloat16", "float64", "int64", "uint8", "bool"):
            return getattr(torch, name)
        return type(name, (_Opaque,), {"__module__": f"opaque.{module}"})


class _RestrictedPickleModule:
    """What `torch.load(pickle_module=...)` needs: an Unpickler whose find_class runs no foreign code."""

    Unpickler = _RestrictedUnpickler
    __name__ = "facelatent_restricted_pickle"

    @staticmethod
    def load(file: Any, **kwargs: Any) -> Any:
        return _RestrictedUnpickler(file, **kwargs).load()


def read_torch_file(path: str | Path) -> Any:
    """Load a torch .pt/.pth/.ckpt file on CPU without executing code from it.

    Plain state dicts go through `torch.load(weights_only=True)`. Files that name other classes
    (a Lightning `.ckpt` with hyper-parameter objects) are read with an unpickler that replaces every
    class outside a small tensor allow-list by an inert record.
    """
    path = Path(path)
    if not path.exists():
        raise InputFileError(path, "weights file does not exist")
    if not zipfile.is_zipfile(path):
        raise InputFileError(path, "not a torch zip checkpoint (legacy or corrupt file)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        pass  # a non-allow-listed global; fall through to the inert reader
    except Exception as exc:
        raise InputFileError(path, f"not a readable torch checkpoint ({type(exc).__name__}: {exc})") from exc
    try:
        with open(path, "rb") as fh:
            data = io.BytesIO(fh.read())
        return torch.load(data, map_location="cpu", weights_only=False, pickle_module=_RestrictedPickleModule)
    except Exception as exc:
        raise InputFileError(path, f"not a readable torch checkpoint ({type(exc).__name__}: {exc})") from exc


def extract_state_dict(obj: Any, path: str | Path) -> dict[str, torch.Tensor]:
    """The tensor dict inside a loaded file: the object itself, or its `state_dict` entry (Lightning)."""
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj:
        raise InputFileError(path, "file holds no state dict")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise InputFileError(path, f"state dict has non-tensor entries (first: {bad[0]!r})")
    return dict(obj)


def load_state_dict_exactly(module: nn.Module, state: dict[str, torch.Tensor], path: str | Path,
                            optional: tuple[str, ...] = ("num_batches_tracked",)) -> None:
    """Strict load whose error is one line naming the file and the first missing/extra/mis-shaped key.

    Keys ending in one of `optional` (BatchNorm's step counter, which some exporters drop) may be
    absent; they keep the module's value.
    """
    expected = module.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith(optional)]
    extra = [k for k in state if k not in expected]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s), first '{missing[0]}'")
        if extra:
            parts.append(f"{len(extra)} unexpected key(s), first '{extra[0]}'")
        raise InputFileError(path, f"weights do not fit a {getattr(module, 'kind', type(module).__name__)}: "
                             + "; ".join(parts))
    for key, value in state.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise InputFileError(path, f"weight '{key}' has shape {list(value.shape)}, "
                                 f"expected {list(expected[key].shape)}")
    full = {**{k: v for k, v in expected.items() if k not in state}, **state}
    module.load_state_dict(full, strict=True)
