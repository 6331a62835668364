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
- `dlib_resnet.py`: dlib's 128-d ResNet FR model over 68-point face chips: a non-differentiable judge (not loaded by
  `load_embedder`; it refuses gradients).
- `facenet.py`: FaceNet Inception-ResNet-v1 (davidsandberg/facenet, CASIA-WebFace, 512-d) as a PyTorch module.
- `iresnet.py`: insightface arcface_torch IResNet-18/34/50/100/200 with the original state-dict key names.
- `spec.py`: embedder specs parsed to family, depth and weights file (no torch).
- `loading.py`: `load_embedder` and `build_embedder`.
- `job.py`: embed_shard (one aligned shard's embeddings, batch by batch, resumable) and embed_dataset (the shards
  merged, subjects joined, verification metrics by subject).
- `protobuf.py`: A small protobuf wire-format reader for TensorFlow GraphDef files (no tensorflow, no protobuf).
- `verification.py`: Face-verification metrics: genuine/impostor score sets, EER, TAR at fixed FAR, score histograms.
"""

from __future__ import annotations

from facelatent.lazy import exports_of, lazy_exports

_EXPORTS = exports_of(
    {
        "facelatent.embeddings.adaface": ("AdaFaceEmbedder",),
        "facelatent.embeddings.base": ("Embedder", "angle", "cosine_similarity_matrix", "pairwise_angles"),
        "facelatent.embeddings.dlib_resnet": ("DlibResNetEmbedder",),
        "facelatent.embeddings.facenet": ("FaceNetEmbedder", "convert_facenet_graph", "facenet_checkpoint_from_graph"),
        "facelatent.embeddings.iresnet": ("IResNetEmbedder",),
        "facelatent.embeddings.loading": ("build_embedder", "load_embedder"),
        "facelatent.embeddings.spec": ("EmbedderSpec", "parse_embedder_spec", "parse_kind"),
    }
)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
