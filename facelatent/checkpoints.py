"""Safe checkpoint reading: safetensors (ours), plain .pt/.pth state dicts, NVlabs .pkl.

Nothing here executes code from a checkpoint file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from facelatent.errors import InputFileError

CHECKPOINT_FORMAT = "facelatent.checkpoint"


@dataclass
class Checkpoint:
    """A network's weights plus what is needed to build it."""

    kind: str  # 'dcgan' | 'stylegan2' | 'stylegan3' | 'mtcnn' | 'facenet' | ...
    init_kwargs: dict
    state_dict: dict[str, torch.Tensor]
    path: str = ""
    sha256: str = ""
    extra: dict = field(default_factory=dict)


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, streamed."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def save_safetensors_checkpoint(path: str | Path, ckpt: Checkpoint) -> None:
    """Write weights + kind + init kwargs atomically as safetensors (no pickle at rest)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": CHECKPOINT_FORMAT,
        "kind": ckpt.kind,
        "init_kwargs": json.dumps(ckpt.init_kwargs, sort_keys=True),
        "extra": json.dumps(ckpt.extra, sort_keys=True),
    }
    tensors = {k: v.detach().cpu().contiguous() for k, v in ckpt.state_dict.items()}
    tmp = path.with_name(path.name + ".partial")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.chmod(0o644)  # weights are shared read-only data, not secrets
    tmp.replace(path)


def read_safetensors_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint written by `save_safetensors_checkpoint`."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(path, "checkpoint file does not exist")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            meta = fh.metadata() or {}
            state = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as exc:  # safetensors raises several types for corrupt headers
        raise InputFileError(path, f"not a readable safetensors file ({exc})") from exc
    if meta.get("format") != CHECKPOINT_FORMAT or "kind" not in meta:
        raise InputFileError(
            path, "safetensors file has no facelatent metadata (kind, init_kwargs); "
            "convert it with `facelatent convert-checkpoint`"
        )
    return Checkpoint(
        kind=meta["kind"],
        init_kwargs=json.loads(meta.get("init_kwargs", "{}")),
        state_dict=state,
        path=str(path),
        sha256=file_sha256(path),
        extra=json.loads(meta.get("extra", "{}")),
    )


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read any supported checkpoint format, chosen by the file suffix."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        return read_safetensors_checkpoint(path)
    raise InputFileError(path, f"unsupported checkpoint suffix '{suffix}' (expected .safetensors, .pkl, .pt or .pth)")
