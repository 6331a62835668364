"""Synthetic identity datasets (Idiap `synthetics` algorithms with their defects fixed).

References: `langevin` (repulsion in FR angle, batched forces, resumable), `random`, `reject`.
Variations: `dispersion` and DisCo (covariate initialisation). Columnar HDF5 files per run, an export
to synthetics' SampleCollection layout, ArcFace crops, and the report's figures.
"""

from facelatent.synthetic.config import RunConfig, part_identities, part_names
from facelatent.synthetic.dispersion import DispersionConfig, run_dispersion
from facelatent.synthetic.forces import (
    Repulsion,
    embeddings_and_forces,
    interaction_forces,
    per_identity_interaction_forces,
)
from facelatent.synthetic.langevin import LangevinConfig, run_langevin
from facelatent.synthetic.references import random_references, reject_references
from facelatent.synthetic.render import FacePipeline

__all__ = [
    "DispersionConfig", "FacePipeline", "LangevinConfig", "Repulsion", "RunConfig", "embeddings_and_forces",
    "interaction_forces", "part_identities", "part_names", "per_identity_interaction_forces", "random_references",
    "reject_references", "run_dispersion", "run_langevin",
]
