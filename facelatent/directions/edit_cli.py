"""`facelatent edit`: edited latents (HDF5) plus one PNG per edited face."""

from __future__ import annotations

from pathlib import Path

import torch
from tqdm import tqdm

from facelatent.directions.edit import move, read_direction
from facelatent.errors import InputFileError
from facelatent.generators import load_generator
from facelatent.grids import to_uint8, write_png
from facelatent.latents import read_latents
from facelatent.store import read_attrs, write_table


def edit_latents_to_dir(
    latents: str | Path,
    direction: str | Path,
    strength: float,
    out_dir: str | Path,
    generator: str | Path | None = None,
    mode: str = "relative",
    limit: int | None = None,
    progress: bool = True,
) -> Path:
    """Move every latent by `strength` along the direction; write `latents.h5` and `{id}.png` per face to `out_dir`."""
    out_dir = Path(out_dir)
    w, frame = read_latents(latents)
    attrs = read_attrs(latents, "facelatent.latents")
    if limit:
        w, frame = w[:limit], frame.iloc[:limit]
    edited = move(w, read_direction(direction, w.shape[1], w.shape[2]), strength, mode)
    generator = generator or attrs["generator"].get("path")
    if not generator:
        raise InputFileError(latents, "records no generator checkpoint path; pass --generator")
    G = load_generator(generator)
    write_table(
        out_dir / "latents.h5",
        "facelatent.latents",
        {
            "ids": frame["ids"].astype(str).to_numpy(),
            "w": edited,
            "loss": frame["loss"].to_numpy(),
            "psnr": frame["psnr"].to_numpy(),
            "steps": frame["steps"].to_numpy(),
        },
        generator=attrs["generator"],
        config={"edit": {"direction": str(direction), "strength": strength, "mode": mode}},
    )
    with torch.no_grad():
        for i in tqdm(range(0, len(edited), 16), desc="rendering edits", unit="batch", disable=not progress):
            images = to_uint8(G.synthesis(torch.from_numpy(edited[i : i + 16]), noise_mode="const"))
            for image_id, image in zip(frame["ids"].iloc[i : i + 16], images, strict=True):
                write_png(out_dir / f"{image_id}.png", image)
    return out_dir
