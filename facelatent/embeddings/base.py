"""The face-recognition embedder interface, angle distances, and safe reading of torch weight files.

Every embedder is an `nn.Module` with `kind`, `input_size` (H, W) and `embedding_dim`, whose
`embed(images)` takes float RGB images [B, 3, H, W] in [0, 255] at `input_size`, applies the
model's own preprocessing, and returns [B, D]. Everything is differentiable w.r.t. the images.
Embedders are inference-only: batch norm always uses its running statistics.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from facelatent.errors import InputFileError
from facelatent.generators.base import assert_shape  # noqa: F401  (re-exported for the embedders)
from facelatent.pickle_safe import refusal_reason, weights_only_load

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
        return dict(
            kind=self.kind,
            input_size=list(self.input_size),
            embedding_dim=self.embedding_dim,
            checkpoint_path=getattr(self, "checkpoint_path", ""),
            checkpoint_sha256=getattr(self, "checkpoint_sha256", ""),
        )


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


def read_torch_file(path: str | Path) -> Any:
    """Load a torch .pt/.pth/.ckpt file on CPU without executing code from it.

    `torch.load(weights_only=True)` with the allow-list shared with the NVlabs pickle reader
    (`pickle_safe.weights_only_load`); a file naming any other global is refused, one line.
    """
    path = Path(path)
    if not path.exists():
        raise InputFileError(path, "weights file does not exist")
    if not zipfile.is_zipfile(path):
        raise InputFileError(path, "not a torch zip checkpoint (legacy or corrupt file)")
    try:
        return weights_only_load(path)
    except pickle.UnpicklingError as exc:
        raise InputFileError(path, refusal_reason(exc)) from None
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


def load_state_dict_exactly(
    module: nn.Module,
    state: dict[str, torch.Tensor],
    path: str | Path,
    optional: tuple[str, ...] = ("num_batches_tracked",),
) -> None:
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
        raise InputFileError(
            path, f"weights do not fit a {getattr(module, 'kind', type(module).__name__)}: " + "; ".join(parts)
        )
    for key, value in state.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise InputFileError(
                path, f"weight '{key}' has shape {list(value.shape)}, expected {list(expected[key].shape)}"
            )
    full = {**{k: v for k, v in expected.items() if k not in state}, **state}
    module.load_state_dict(full, strict=True)
