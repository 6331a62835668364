"""Face-recognition embedders (FaceNet, arcface_torch IResNet, AdaFace) and `load_embedder`.

Embedder specs accepted by `load_embedder(spec, device)`:
- a fetched model name: `"facenet_casia"` -> `resources/models/facenet_casia.safetensors`
  (`"facenet"` alone means the same);
- a path to a facelatent `.safetensors` checkpoint (the kind is in its metadata), or to FaceNet's
  TensorFlow `graph_final.pb` (converted on load);
- `"KIND:PATH"`, e.g. `"iresnet50:/models/backbone.pth"`, `"adaface_ir101:/models/adaface_ir101_webface12m.ckpt"`;
- a mapping `{"kind": KIND, "path": PATH}` (what the config uses);
- a bare `.pth`/`.pt`/`.ckpt` path, whose architecture is inferred from its key names.
KIND is `facenet`, `iresnet18|34|50|100|200` or `adaface_ir18|34|50|101`; `iresnet` and `adaface`
without a depth mean "infer the depth from the file". A depth that disagrees with the file is an
error that names both.

Every embedder has `input_size`, `embedding_dim` and `embed(images)`, where `images` are float RGB
[B, 3, H, W] in [0, 255] at `input_size`. FaceNet and AdaFace return unit-length embeddings;
IResNet returns its raw `features` (use `angle` / `pairwise_angles`, which normalise).

Files:
- `adaface.py`: AdaFace IR-18/34/50/101 backbones (mk-minchul/AdaFace `net.py`) with the original key names.
- `base.py`: The face-recognition embedder interface, angle distances, and safe reading of torch weight files.
- `facenet.py`: FaceNet Inception-ResNet-v1 (davidsandberg/facenet, CASIA-WebFace, 512-d) as a PyTorch module.
- `iresnet.py`: insightface arcface_torch IResNet-18/34/50/100/200 with the original state-dict key names.
- `job.py`: embed_shard (one aligned shard's embeddings, batch by batch, resumable) and embed_dataset (the shards
  merged, subjects joined, verification metrics by subject).
- `protobuf.py`: A small protobuf wire-format reader for TensorFlow GraphDef files (no tensorflow, no protobuf).
- `verification.py`: Face-verification metrics: genuine/impostor score sets, EER, TAR at fixed FAR, score histograms.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from facelatent.checkpoints import Checkpoint, file_sha256, read_safetensors_checkpoint
from facelatent.embeddings.adaface import ADAFACE_ALIASES, AdaFaceEmbedder, adaface_backbone_state, infer_adaface_layers
from facelatent.embeddings.base import (
    Embedder,
    angle,
    cosine_similarity_matrix,
    extract_state_dict,
    load_state_dict_exactly,
    pairwise_angles,
    read_torch_file,
)
from facelatent.embeddings.facenet import FaceNetEmbedder, convert_facenet_graph, facenet_checkpoint_from_graph
from facelatent.embeddings.iresnet import IRESNET_LAYERS, IResNetEmbedder, iresnet_kwargs
from facelatent.errors import ConfigError, InputFileError
from facelatent.paths import model_path

EMBEDDER_CLASSES: dict[str, type[Embedder]] = {
    "facenet": FaceNetEmbedder,
    "iresnet": IResNetEmbedder,
    "adaface": AdaFaceEmbedder,
}
DEFAULT_MODELS = {"facenet": "facenet_casia"}
_KIND_RE = re.compile(r"(facenet|iresnet|adaface)(?:_?ir_?)?(\d+)?")


@dataclass(frozen=True)
class EmbedderSpec:
    family: str  # 'facenet' | 'iresnet' | 'adaface'
    depth: int | None  # blocks-table key (iresnet 50, adaface 100, ...); None = infer from the file
    path: Path


def parse_kind(kind: str) -> tuple[str, int | None]:
    """'iresnet50' -> ('iresnet', 50); 'adaface_ir101' -> ('adaface', 100); 'facenet' -> ('facenet', None)."""
    match = _KIND_RE.fullmatch(kind.strip().lower())
    if not match:
        raise ConfigError(f"embedder kind '{kind}' is not one of facenet, iresnet18..200, adaface_ir18..101")
    family, depth = match.group(1), int(match.group(2)) if match.group(2) else None
    if family == "adaface" and depth is not None:
        depth = ADAFACE_ALIASES.get(depth, depth)
    if family == "iresnet" and depth is not None and depth not in IRESNET_LAYERS:
        raise ConfigError(f"embedder kind '{kind}': no IResNet with depth {depth}")
    if family == "facenet" and depth is not None:
        raise ConfigError(f"embedder kind '{kind}': facenet has no depth variants")
    return family, depth


def parse_embedder_spec(spec: str | Path | Mapping, weights: str | Path | None = None) -> EmbedderSpec:
    """Normalise any accepted spec form (see the module docstring) to family, depth and file path.

    `weights` (a rule's declared input) is the file to read; the spec then gives only the kind, and a
    fetched model's name is not looked up under `resources/`.
    """
    parsed = _parse_spec(spec, look_up_names=weights is None)
    return parsed if weights is None else EmbedderSpec(parsed.family, parsed.depth, Path(weights))


def _parse_spec(spec: str | Path | Mapping, look_up_names: bool) -> EmbedderSpec:
    if isinstance(spec, Mapping):
        if "path" not in spec or "kind" not in spec:
            raise ConfigError(f"embedder spec {dict(spec)} needs both 'kind' and 'path'")
        family, depth = parse_kind(str(spec["kind"]))
        return EmbedderSpec(family, depth, Path(spec["path"]))
    text = str(spec)
    head, sep, tail = text.partition(":")
    if sep and _KIND_RE.fullmatch(head.strip().lower()):
        family, depth = parse_kind(head)
        return EmbedderSpec(family, depth, Path(tail))
    path = Path(text)
    if path.suffix.lower() in (".safetensors", ".pth", ".pt", ".ckpt", ".pb"):
        return EmbedderSpec("", None, path)
    name = DEFAULT_MODELS.get(text, text)
    if _KIND_RE.fullmatch(text.lower()) and text not in DEFAULT_MODELS:
        raise ConfigError(f"embedder '{text}' needs a weights file: write '{text}:/path/to/weights'")
    return EmbedderSpec("", None, model_path(name) if look_up_names else Path(name))


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


__all__ = [
    "Embedder",
    "FaceNetEmbedder",
    "IResNetEmbedder",
    "AdaFaceEmbedder",
    "EmbedderSpec",
    "load_embedder",
    "build_embedder",
    "parse_embedder_spec",
    "parse_kind",
    "angle",
    "pairwise_angles",
    "cosine_similarity_matrix",
    "convert_facenet_graph",
    "facenet_checkpoint_from_graph",
]
