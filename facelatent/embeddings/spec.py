"""Embedder specs (the forms `embedding.model` and friends accept) parsed to family, depth and file, and the depth
tables they are checked against; no torch, so the Snakefile can resolve a spec's weights file while it builds the
DAG."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from facelatent.errors import ConfigError
from facelatent.paths import model_path

# arcface_torch's blocks per stage, by depth
IRESNET_LAYERS: dict[int, list[int]] = {
    18: [2, 2, 2, 2],
    34: [3, 4, 6, 3],
    50: [3, 4, 14, 3],
    100: [3, 13, 30, 3],
    200: [6, 26, 60, 6],
}
ADAFACE_ALIASES = {101: 100}  # AdaFace calls its 100-layer net "ir_101"
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
