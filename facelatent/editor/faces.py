"""A face spec -> its latent [num_ws, w_dim], and the photo it was projected from where there is one."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from facelatent.editor.catalog import UPLOADS, Catalog, aligned_target, face_ids
from facelatent.editor.safety import FaceSpec, RequestError, inside
from facelatent.generators import GeneratorBase, GeneratorSettings
from facelatent.grids import seed_z
from facelatent.store import open_checked


@dataclass
class Face:
    """A face's latent, a caption, and the aligned photo it reproduces (None for generated faces)."""

    spec: FaceSpec
    w: np.ndarray
    caption: str
    target: np.ndarray | None = None


def as_layers(w: np.ndarray, num_ws: int, w_dim: int) -> np.ndarray:
    """A W vector [w_dim] repeated over the layers, or a W+ latent [num_ws, w_dim] as it is (float32)."""
    w = np.asarray(w, np.float32)
    if w.shape == (w_dim,):
        return np.repeat(w[None], num_ws, axis=0)
    if w.shape != (num_ws, w_dim):
        raise RequestError(f"latent of shape {list(w.shape)} does not fit the generator ([{num_ws}, {w_dim}])", 409)
    return w


def _row(path, fmt: str, index: int) -> np.ndarray:
    """One row of the `w` column, read alone (a dataset's file may hold 70,000 W+ latents)."""
    with open_checked(path, fmt) as fh:
        if not 0 <= index < len(fh["w"]):
            raise RequestError(f"row {index} is past the {len(fh['w'])} faces of {path.name}", 404)
        return fh["w"][index]


@torch.no_grad()
def seed_latent(G: GeneratorBase, seed: int, settings: GeneratorSettings) -> np.ndarray:
    """The sample grid's face for `seed`: z from `np.random.RandomState(seed)`, mapped with the config's truncation."""
    z = torch.from_numpy(seed_z([seed], G.z_dim)).float().to(G.w_avg.device)
    ws = G.mapping(z, truncation_psi=settings.truncation_psi, truncation_cutoff=settings.truncation_cutoff)
    return ws[0].cpu().numpy()


def upload_target(catalog: Catalog, token: str) -> np.ndarray | None:
    """The aligned crop of an upload, written beside its latents."""
    path = catalog.root / UPLOADS / f"{token}.aligned.h5"
    if not inside(catalog.root, path):
        return None
    with open_checked(path, "facelatent.aligned") as fh:
        return fh["images"][0]


def load_face(catalog: Catalog, spec: FaceSpec, G: GeneratorBase, settings: GeneratorSettings) -> Face:
    """The latent a spec names; a name missing from the catalog is a 404, never a path lookup."""
    if spec.source == "seed":
        return Face(spec, seed_latent(G, spec.index, settings), f"random face, seed {spec.index}")
    if spec.source == "latents":
        if spec.name not in catalog.latents:
            raise RequestError(f"no latents file named {spec.name!r} in the results folder", 404)
        path = catalog.latents[spec.name]
        w = _row(path, "facelatent.latents", spec.index)
        face_id = face_ids(path)[spec.index]
        target = aligned_target(catalog.root, spec.name, face_id)
        return Face(spec, as_layers(w, G.num_ws, G.w_dim), f"{spec.name}: {face_id}", target)
    if spec.source == "synthetic":
        if spec.name not in catalog.synthetic:
            raise RequestError(f"no synthetic run named {spec.name!r} in the results folder", 404)
        w = _row(catalog.synthetic[spec.name], "facelatent.references", spec.index)
        return Face(spec, as_layers(w, G.num_ws, G.w_dim), f"synthetic {spec.name}: identity {spec.index}")
    path = catalog.root / UPLOADS / f"{spec.name}.h5"
    if not inside(catalog.root, path):
        raise RequestError(f"no projected upload {spec.name!r} (still projecting, or never uploaded)", 404)
    w = _row(path, "facelatent.latents", 0)
    return Face(spec, as_layers(w, G.num_ws, G.w_dim), f"uploaded photo {spec.name}", upload_target(catalog, spec.name))
