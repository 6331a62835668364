"""`load_embedder`: any accepted spec (see `facelatent.embeddings`) to an eval-mode embedder with its weights."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from facelatent.checkpoints import Checkpoint, file_sha256, read_safetensors_checkpoint
from facelatent.embeddings.adaface import AdaFaceEmbedder, adaface_backbone_state, infer_adaface_layers
from facelatent.embeddings.base import Embedder, extract_state_dict, load_state_dict_exactly, read_torch_file
from facelatent.embeddings.facenet import FaceNetEmbedder, facenet_checkpoint_from_graph
from facelatent.embeddings.iresnet import IResNetEmbedder, iresnet_kwargs
from facelatent.embeddings.spec import IRESNET_LAYERS, EmbedderSpec, parse_embedder_spec
from facelatent.errors import InputFileError

EMBEDDER_CLASSES: dict[str, type[Embedder]] = {
    "facenet": FaceNetEmbedder,
    "iresnet": IResNetEmbedder,
    "adaface": AdaFaceEmbedder,
}


def build_embedder(ckpt: Checkpoint) -> Embedder:
    """Instantiate the embedder named by a facelatent checkpoint's kind and load its weights strictly."""
    if ckpt.kind not in EMBEDDER_CLASSES:
        raise InputFileError(
            ckpt.path,
            f"checkpoint kind '{ckpt.kind}' is not an embedder (known: {', '.join(sorted(EMBEDDER_CLASSES))})",
        )
    model = EMBEDDER_CLASSES[ckpt.kind](**ckpt.init_kwargs)
    load_state_dict_exactly(model, ckpt.state_dict, ckpt.path)
    return model


def _torch_checkpoint(spec: EmbedderSpec) -> Checkpoint:
    """Read an arcface_torch / AdaFace torch file into a Checkpoint with matching init kwargs."""
    state = extract_state_dict(read_torch_file(spec.path), spec.path)
    family = spec.family
    if family in ("", "adaface") and any(k.startswith(("model.", "body.")) for k in state):
        family = "adaface"
    elif family == "":
        family = "iresnet"
    if family == "adaface":
        state = adaface_backbone_state(state, spec.path)
        found = infer_adaface_layers(state)
        if found is None:
            raise InputFileError(spec.path, "no AdaFace IR body.{i}.res_layer keys found")
        init_kwargs = dict(num_layers=found, embedding_dim=int(state["output_layer.3.weight"].shape[0]))
    elif family == "iresnet":
        try:
            init_kwargs = iresnet_kwargs(state)
        except (AssertionError, KeyError) as exc:
            raise InputFileError(spec.path, f"not an arcface_torch IResNet state dict ({exc})") from exc
        depths = {tuple(v): k for k, v in IRESNET_LAYERS.items()}
        found = depths.get(tuple(init_kwargs["layers"]), init_kwargs["layers"])
    else:
        raise InputFileError(spec.path, f"a {family} model cannot be read from a torch file; use its .safetensors")
    if spec.depth is not None and spec.depth != found:
        raise InputFileError(spec.path, f"file holds {family}{found} but the spec asks for {family}{spec.depth}")
    return Checkpoint(
        kind=family, init_kwargs=init_kwargs, state_dict=state, path=str(spec.path), sha256=file_sha256(spec.path)
    )


def load_embedder(
    spec: str | Path | Mapping, device: str | torch.device = "cpu", weights: str | Path | None = None
) -> Embedder:
    """Load an embedder (eval mode, frozen parameters, gradients flow to the input) on `device`.

    Jobs pass `weights`, the file their rule declares; without it a fetched model's name resolves
    to `resources/models/` (library and CLI use).
    """
    parsed = parse_embedder_spec(spec, weights)
    if not parsed.path.exists():
        raise InputFileError(parsed.path, "embedder weights file does not exist")
    suffix = parsed.path.suffix.lower()
    if suffix in (".safetensors", ".pb"):
        ckpt = (
            read_safetensors_checkpoint(parsed.path)
            if suffix == ".safetensors"
            else facenet_checkpoint_from_graph(parsed.path)
        )  # converted on the fly (about 2 s)
        ckpt.path = str(parsed.path)
        ckpt.sha256 = ckpt.sha256 or ckpt.extra.get("source_sha256", "")
        if parsed.family and parsed.family != ckpt.kind:
            raise InputFileError(parsed.path, f"checkpoint kind is '{ckpt.kind}' but the spec says '{parsed.family}'")
    else:
        ckpt = _torch_checkpoint(parsed)
    model = build_embedder(ckpt)
    model.checkpoint_path, model.checkpoint_sha256 = ckpt.path, ckpt.sha256
    return model.eval().requires_grad_(False).to(device)
