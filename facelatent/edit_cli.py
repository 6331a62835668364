"""`facelatent edit`: edited latents (HDF5) plus one PNG per edited face."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from facelatent.edit import move
from facelatent.generators import load_generator
from facelatent.grids import to_uint8, write_png
from facelatent.latents import read_latents
from facelatent.store import read_attrs, write_table


def edit_latents_to_dir(latents: str | Path, direction: str | Path, strength: float, out_dir: str | Path,
                        generator: str | Path | None = None, mode: str = "relative", limit: int | None = None) -> Path:
    out_dir = Path(out_dir)
    w, frame = read_latents(latents)
    attrs = read_attrs(latents, "facelatent.latents")
    if limit:
        w, frame = w[:limit], frame.iloc[:limit]
    edited = move(w, np.load(direction), strength, mode)
    gen_path = generator or attrs["generator"].get("path")
    G = load_generator(gen_path)
    write_table(out_dir / "latents.h5", "facelatent.latents",
                {"ids": frame["ids"].astype(str).to_numpy(), "w": edited, "loss": frame["loss"].to_numpy(),
                 "psnr": frame["psnr"].to_numpy(), "steps": frame["steps"].to_numpy()},
                generator=attrs["generator"],
                config={"edit": {"direction": str(direction), "strength": strength, "mode": mode}})
    with torch.no_grad():
        for i in range(0, len(edited), 16):
            images = to_uint8(G.synthesis(torch.from_numpy(edited[i:i + 16]), noise_mode="const"))
            for image_id, image in zip(frame["ids"].iloc[i:i + 16], images):
                write_png(out_dir / f"{image_id}.png", image)
    return out_dir
