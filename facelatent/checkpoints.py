"""Safe checkpoint reading: safetensors (ours), plain .pt/.pth state dicts, NVlabs .pkl.

Nothing here executes code from a checkpoint file:
- `.safetensors`: our own files, with `kind` and `init_kwargs` in the metadata;
- `.pkl`: NVlabs StyleGAN2/3 network pickles through the allow-list unpickler in
  `facelatent.pickle_safe` (the `G_ema` network; the embedded source is never run);
- `.pt`/`.pth`: `torch.load(weights_only=True)`; see `read_torch_checkpoint` for where the
  init kwargs come from.
StyleGAN2 and StyleGAN3 are told apart by their state-dict keys (`infer_generator_kind`).
`convert_checkpoint(src, dst)` turns any of them into our safetensors.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from facelatent.errors import InputFileError
from facelatent.store import atomic_path

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
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
        sort_safetensors_header(tmp)
        tmp.chmod(0o644)  # weights are shared read-only data, not secrets


def sort_safetensors_header(path: str | Path) -> None:
    """Rewrite a safetensors header in place with its keys sorted, padded to its old length.

    The writer emits the metadata map in a random order per call, so the same weights would get a new
    sha256 (the generator hash every output records) on every fetch. Offsets are untouched.
    """
    with open(path, "r+b") as fh:
        (length,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(length))
        canonical = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        assert len(canonical) <= length, f"{path}: sorted header grew from {length} to {len(canonical)} bytes"
        fh.seek(8)
        fh.write(canonical.ljust(length, b" "))


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
            path,
            "safetensors file has no facelatent metadata (kind, init_kwargs); "
            "convert it with `facelatent convert-checkpoint`",
        )
    return Checkpoint(
        kind=meta["kind"],
        init_kwargs=json.loads(meta.get("init_kwargs", "{}")),
        state_dict=state,
        path=str(path),
        sha256=file_sha256(path),
        extra=json.loads(meta.get("extra", "{}")),
    )


def infer_generator_kind(state_dict: dict[str, torch.Tensor]) -> str | None:
    """'stylegan3' (Fourier input + L{i} layers), 'stylegan2' (b4 const block) or None."""
    if any(key.startswith("synthesis.input.") for key in state_dict):
        return "stylegan3"
    if "synthesis.b4.const" in state_dict:
        return "stylegan2"
    return None


def read_pickle_checkpoint(path: str | Path, network: str = "G_ema") -> Checkpoint:
    """NVlabs StyleGAN2/3 `.pkl`: the `network` entry's weights and init kwargs, read without running code."""
    from facelatent import pickle_safe  # local: only .pkl readers pay for it

    path = Path(path)
    top = pickle_safe.safe_load_pickle(path)
    obj = (
        top if isinstance(top, pickle_safe.PersistentObject) else (top.get(network) if isinstance(top, dict) else None)
    )
    if not isinstance(obj, pickle_safe.PersistentObject):
        keys = sorted(map(str, top)) if isinstance(top, dict) else type(top).__name__
        raise InputFileError(path, f"no NVlabs network '{network}' in the pickle (found {keys})")
    try:
        state = pickle_safe.module_state_dict(obj)
        kwargs = pickle_safe.init_kwargs(obj)
    except TypeError as exc:
        raise InputFileError(path, f"network '{network}' is not in the NVlabs persistence layout ({exc})") from None
    kind = infer_generator_kind(state)
    if kind is None:
        raise InputFileError(
            path, f"network '{network}' ({obj.class_name}) is neither a StyleGAN2 nor a StyleGAN3 generator"
        )
    return Checkpoint(
        kind=kind,
        init_kwargs=kwargs,
        state_dict=state,
        path=str(path),
        sha256=file_sha256(path),
        extra={"source_format": "nvlabs-pkl", "network": network, "class_name": obj.class_name},
    )


def _sidecar_json(path: Path) -> dict | None:
    """`<stem>.json` (or `<name>.json`) beside a weights file, if present."""
    for candidate in (path.with_suffix(".json"), path.with_name(path.name + ".json")):
        if candidate.exists():
            try:
                data = json.loads(candidate.read_text())
            except (OSError, ValueError) as exc:
                raise InputFileError(candidate, f"not readable JSON ({exc})") from None
            if not isinstance(data, dict):
                raise InputFileError(candidate, "expected a JSON object with the init kwargs")
            return data
    return None


def read_torch_checkpoint(path: str | Path) -> Checkpoint:
    """`.pt`/`.pth` via `torch.load(weights_only=True)`.

    Two layouts are accepted:
    - a dict `{"state_dict": {...}, "init_kwargs": {...}, "kind": optional}` inside the file;
    - a plain state dict, with the init kwargs in a JSON beside it: `G.pt` -> `G.json`
      (or `G.pt.json`). The JSON is either the kwargs themselves or an object with an
      `init_kwargs` key (and optionally `kind`), like the NVlabs reference `init_kwargs.json`.
    `kind` defaults to what the state-dict keys say (`infer_generator_kind`).
    """
    path = Path(path)
    if not path.exists():
        raise InputFileError(path, "checkpoint file does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, zip errors...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputFileError(path, f"not a plain weights file for torch.load(weights_only=True) ({first})") from None
    if not isinstance(obj, dict):
        raise InputFileError(path, f"expected a state dict, found {type(obj).__name__}")
    if isinstance(obj.get("state_dict"), dict):
        meta, state = obj, obj["state_dict"]
    else:
        meta, state = _sidecar_json(path), obj
        if meta is None:
            raise InputFileError(
                path,
                f"plain state dict without init kwargs: put them in {path.with_suffix('.json').name} "
                "or save {'init_kwargs': ..., 'state_dict': ...}",
            )
    kwargs = meta.get("init_kwargs", meta if meta is not obj else None)
    if not isinstance(kwargs, dict):
        raise InputFileError(path, "no 'init_kwargs' dict next to the state dict")
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputFileError(path, "the state dict holds values that are not tensors")
    kind = meta.get("kind") or infer_generator_kind(state)
    if not kind:
        raise InputFileError(
            path, 'cannot tell the network kind from the state dict; add "kind" to the init kwargs JSON'
        )
    kwargs = {k: v for k, v in kwargs.items() if k != "kind"}
    return Checkpoint(
        kind=str(kind),
        init_kwargs=kwargs,
        state_dict=dict(state),
        path=str(path),
        sha256=file_sha256(path),
        extra={"source_format": "torch"},
    )


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read any supported checkpoint format, chosen by the file suffix."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        return read_safetensors_checkpoint(path)
    if suffix == ".pkl":
        return read_pickle_checkpoint(path)
    if suffix in (".pt", ".pth"):
        return read_torch_checkpoint(path)
    raise InputFileError(path, f"unsupported checkpoint suffix '{suffix}' (expected .safetensors, .pkl, .pt or .pth)")


def convert_checkpoint(src: str | Path, dst: str | Path) -> Checkpoint:
    """Any supported checkpoint -> our safetensors (weights + kind + init kwargs + source sha256)."""
    ckpt = read_checkpoint(src)
    ckpt.extra = {**ckpt.extra, "source": Path(src).name, "source_sha256": ckpt.sha256}
    save_safetensors_checkpoint(dst, ckpt)
    return ckpt
