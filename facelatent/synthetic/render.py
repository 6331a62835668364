"""The differentiable chain every synthetic algorithm runs: W -> generator -> crop -> FR embedding.

One W vector per face is broadcast to all `num_ws` style inputs (synthetics optimises in W, not
W+). Generator output (about [-1, 1], not clamped, as the original) is mapped to [0, 255] and
cropped to the embedder's input size by one of:
- `resize`: a plain antialiased bicubic resize of the whole image (for generators whose framing is
  already ArcFace-like, e.g. the 64 px DigiFace DCGAN of the demo);
- `ffhq_to_arcface` / `ffhq_to_iresnet_bob`: the fixed FFHQ->ArcFace box crop of ALGORITHMS.md 1.2, then
  a resize to the input size (for FFHQ-aligned StyleGANs).
Both are slices + interpolation, so FR gradients reach W.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from facelatent.align.crops import crop_ffhq_to_arcface
from facelatent.embeddings.base import Embedder
from facelatent.generators.base import GeneratorBase, assert_shape
from facelatent.synthetic.config import RunConfig

CROPS = ("resize", "ffhq_to_arcface", "ffhq_to_iresnet_bob")
SAVED_CROP_SIZE = 112  # ArcFace crops on disk, as synthetics' `-pc arcface` post-processor


def _resize(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    return F.interpolate(images, size=size, mode="bicubic", antialias=True, align_corners=False)


def crop_images(images: torch.Tensor, crop: str, size: tuple[int, int]) -> torch.Tensor:
    """Generator images [B, 3, R, R] -> [B, 3, *size] by the named crop (differentiable)."""
    if crop == "resize":
        return _resize(images, size)
    if crop in ("ffhq_to_arcface", "ffhq_to_iresnet_bob"):
        assert size[0] == size[1], f"the FFHQ box crop is square, got {size}"
        return crop_ffhq_to_arcface(images, out_size=int(size[0]), variant=crop.removeprefix("ffhq_to_"))
    raise ValueError(f"unknown crop '{crop}' (known: {', '.join(CROPS)})")


def to_pixels(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 255], unclamped so gradients never vanish at saturated pixels."""
    return (images + 1.0) * 127.5


@dataclass
class FacePipeline:
    """Generator + crop + embedder with frozen weights; W rows in, images or embeddings out."""

    G: GeneratorBase
    embedder: Embedder
    crop: str = RunConfig.crop
    noise_mode: str = RunConfig.noise_mode
    batch_size: int = RunConfig.batch_size

    def __post_init__(self) -> None:
        if self.crop not in CROPS:
            raise ValueError(f"unknown crop '{self.crop}' (known: {', '.join(CROPS)})")
        self.G.requires_grad_(False)  # only W gets gradients (the original accumulated parameter grads)
        self.embedder.requires_grad_(False)

    @property
    def device(self) -> torch.device:
        return self.G.w_avg.device

    @property
    def w_dim(self) -> int:
        return int(self.G.w_dim)

    @property
    def w_avg(self) -> torch.Tensor:
        return self.G.w_avg.detach().float()

    @property
    def embedding_dim(self) -> int:
        return int(self.embedder.embedding_dim)

    def render(self, w: torch.Tensor) -> torch.Tensor:
        """[B, w_dim] -> generator images [B, 3, R, R] in about [-1, 1]."""
        assert_shape(w, [None, self.w_dim], "w")
        ws = w.unsqueeze(1).expand(-1, self.G.num_ws, -1)
        return self.G.synthesis(ws, noise_mode=self.noise_mode)

    def embed_images(self, images: torch.Tensor) -> torch.Tensor:
        return self.embedder.embed(crop_images(to_pixels(images), self.crop, tuple(self.embedder.input_size)))

    def embed(self, w: torch.Tensor) -> torch.Tensor:
        """[B, w_dim] -> embeddings [B, D], differentiable w.r.t. w (one batch, caller chunks)."""
        return self.embed_images(self.render(w))

    @torch.no_grad()
    def embed_all(self, w: torch.Tensor) -> torch.Tensor:
        """Embeddings of any number of W rows, `batch_size` at a time, without gradients."""
        assert_shape(w, [None, self.w_dim], "w")
        if len(w) == 0:
            return torch.zeros(0, self.embedding_dim, device=self.device)
        return torch.cat(
            [self.embed(w[i : i + self.batch_size].to(self.device)) for i in range(0, len(w), self.batch_size)]
        )

    @torch.no_grad()
    def saved_crops(self, w: torch.Tensor, size: int = SAVED_CROP_SIZE) -> torch.Tensor:
        """ArcFace-framed [B, 3, size, size] crops in [-1, 1] for the PNGs people look at."""
        images = self.render(w.to(self.device))
        crop = "resize" if self.crop == "resize" else "ffhq_to_arcface"  # saved images use the ArcFace box
        return crop_images(images, crop, (size, size)).clamp(-1, 1)


@torch.no_grad()
def map_z(G: GeneratorBase, z: torch.Tensor, truncation_psi: float) -> torch.Tensor:
    """z [B, z_dim] -> one W row per face (the first of the mapping's num_ws copies)."""
    return G.mapping(z.to(G.w_avg.device), None, truncation_psi=truncation_psi)[:, 0].float()


def cpu_generator(seed: int) -> torch.Generator:
    """A seeded CPU generator: draws are the same on every device and every run."""
    return torch.Generator(device="cpu").manual_seed(int(seed))


def stream_seed(seed: int, purpose: str, *index: int) -> int:
    """A 63-bit seed for the draws of (run seed, purpose, index...): a hash, so nearby seeds and indices give
    independent streams (run seeds s and s + 1 share none)."""
    key = ":".join(str(int(i)) for i in (seed, *index))
    return int.from_bytes(hashlib.sha256(f"{purpose}:{key}".encode()).digest()[:8], "little") & ((1 << 63) - 1)


def randn(gen: torch.Generator, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """Standard normal draws from `gen` on the CPU, moved to `device`."""
    return torch.randn(shape, generator=gen, dtype=torch.float32).to(device)
