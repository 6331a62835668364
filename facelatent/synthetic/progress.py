"""Resumable progress inside `<out>.partial`: two alternating checkpoint slots.

Each slot holds fixed-shape, uncompressed datasets that are overwritten in place, so the file never
grows and a kill during a save can only damage the slot being written. A slot is valid once its
`complete` attribute is set, which happens after its data are written and flushed. The newest valid
slot (highest `iteration`, never file-listing order as in the original) is the one resumed. The file
is closed between saves, so a job killed between checkpoints leaves it intact. A partial file made
from other inputs is discarded: its resume key (the config, the generator's sha256, and the job's
other inputs, e.g. the FR weights' sha256 and the obstacle embeddings) must match part for part.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from facelatent.store import FORMATS, partial_path, resume_key_mismatch, set_resume_key

log = logging.getLogger(__name__)

SLOTS = ("checkpoint_a", "checkpoint_b")


def config_digest(config: Mapping) -> str:
    """Short hash of everything that changes a result."""
    return hashlib.sha256(json.dumps(dict(config), sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class Checkpoint:
    iteration: int  # the last iteration whose update is included; resume at iteration + 1
    arrays: dict[str, np.ndarray]


class CheckpointFile:
    """Checkpoints of one output file, kept in its `.partial` sibling."""

    def __init__(
        self,
        out_path: str | Path,
        fmt: str,
        config: Mapping,
        generator: Mapping | None = None,
        inputs: Mapping[str, str] | None = None,
    ):
        self.path = partial_path(out_path)
        self.fmt = fmt
        self.config = dict(config)
        self.generator = dict(generator or {})
        # resume key: part name -> digest; `inputs` adds the job's other inputs (FR weights, obstacle file ...)
        self.key = {
            "config": config_digest(self.config),
            "generator": str(self.generator.get("sha256") or config_digest(self.generator)),
            **dict(inputs or {}),
        }

    def _stale(self, fh: h5py.File) -> list[str]:
        return resume_key_mismatch(fh.attrs, self.key)

    def load(self) -> Checkpoint | None:
        """The newest complete checkpoint, or None (no file, made from other inputs, or unreadable)."""
        if not self.path.exists():
            return None
        try:
            with h5py.File(self.path, "r") as fh:
                stale = self._stale(fh)
                if stale:
                    log.warning("%s was made with another %s; starting over", self.path, ", ".join(stale))
                    return None
                done = [
                    (int(fh[s].attrs["iteration"]), s)
                    for s in SLOTS
                    if s in fh and bool(fh[s].attrs.get("complete", False))
                ]
                if not done:
                    return None
                iteration, slot = max(done)
                arrays = {k: v[()] for k, v in fh[slot].items()}
        except (OSError, KeyError) as exc:
            log.warning("%s is unreadable (killed while writing?): %s; starting over", self.path, exc)
            return None
        return Checkpoint(iteration, arrays)

    def _create(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with h5py.File(self.path, "w") as fh:
            fh.attrs["format"] = self.fmt
            fh.attrs["version"] = FORMATS[self.fmt]
            fh.attrs["generator"] = json.dumps(self.generator, sort_keys=True)
            fh.attrs["config"] = json.dumps(self.config, sort_keys=True, default=str)
            set_resume_key(fh.attrs, self.key)

    def _target_slot(self, fh: h5py.File) -> str:
        """The slot not holding the newest complete checkpoint."""
        done = [(int(fh[s].attrs["iteration"]), s) for s in SLOTS if s in fh and bool(fh[s].attrs.get("complete"))]
        newest = max(done)[1] if done else None
        return SLOTS[1] if newest == SLOTS[0] else SLOTS[0]

    def save(self, iteration: int, arrays: Mapping[str, np.ndarray]) -> None:
        """Write a checkpoint into the older slot, then mark it complete."""
        fresh = not self.path.exists()
        if not fresh:
            try:
                with h5py.File(self.path, "r") as fh:
                    fresh = bool(self._stale(fh))
            except OSError:
                fresh = True
        if fresh:
            self._create()
        with h5py.File(self.path, "a") as fh:
            name = self._target_slot(fh)
            slot = fh.require_group(name)
            slot.attrs["complete"] = False
            fh.flush()
            for key, value in arrays.items():
                value = np.asarray(value)
                if key in slot and (slot[key].shape != value.shape or slot[key].dtype != value.dtype):
                    del slot[key]
                if key not in slot:
                    slot.create_dataset(key, shape=value.shape, dtype=value.dtype)  # contiguous: rewritten in place
                slot[key][...] = value
            fh.flush()
            slot.attrs["iteration"] = int(iteration)
            slot.attrs["complete"] = True
            fh.flush()

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)
