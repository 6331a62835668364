"""Synthetic identity datasets (Idiap `synthetics` algorithms with their defects fixed).

References: `langevin` (repulsion in FR angle, batched forces, resumable), `random`, `reject`.
Variations: `dispersion` and DisCo (covariate initialisation). Columnar HDF5 files per run, an export
to synthetics' SampleCollection layout, ArcFace crops, and the report's figures.

Files:
- `config.py`: The `synthetic.runs.{run}` config entry as plain dataclasses, and the split of identities into parts.
- `disco.py`: DisCo = Dispersion with covariate initialisation (ALGORITHMS.md 3.2).
- `dispersion.py`: Dispersion variations (ALGORITHMS.md 3.1): augmentations of each reference spread apart in W,
  identity kept.
- `export.py`: Export to the Idiap `synthetics` layouts (ALGORITHMS.md 1.4, 2.5) so their tools can read our runs.
- `face_gate.py`: The face gate: MTCNN on each reference's crop (confidence, five points near the template) and
  seeded redraws of those that fail.
- `files.py`: Columnar HDF5 layouts of a synthetic run (one row per face, never one group per sample).
- `forces.py`: Forces on W latents: identity repulsion (Langevin), reference anchor and latent repulsion (Dispersion).
- `imagery.py`: ArcFace 112x112 crops of every face on disk, and the identities x variations grid built from them.
- `job.py`: The jobs behind the synthetic rules: read inputs, call the algorithms, write the run's files.
- `langevin.py`: Langevin references (Geissbuehler et al.; ALGORITHMS.md 2.4): overdamped Langevin dynamics of W
  latents.
- `plots.py`: Figures and verification metrics of a synthetic run: angle histograms, stats over iterations, EER.
- `progress.py`: Resumable progress inside `<out>.partial`: two alternating checkpoint slots.
- `references.py`: Reference identities: `random` (ALGORITHMS.md 2.1), `reject` (2.2) and the initial latents of
  `langevin`.
- `render.py`: The differentiable chain every synthetic algorithm runs: W -> generator -> crop -> FR embedding.
- `stats.py`: Per-iteration statistics with the original `stats.h5` dataset names (ALGORITHMS.md 2.5).
- `variation.py`: Intra-class variation per face (yaw, pitch, roll, mouth width, brightness and side-light
  asymmetry, by facelatent.attributes' estimators), and each face's FR angle to its reference.
- `variation_report.py`: One part's variation table, the run's merged table, per-identity spreads and figure.
- `tiny.py`: A tiny random-weight FR model for tests and benchmarks whose subject is the code around the embedder.
"""

from facelatent.lazy import exports_of, lazy_exports

_EXPORTS = exports_of(
    {
        "facelatent.synthetic.config": ("RunConfig", "part_identities", "part_names"),
        "facelatent.synthetic.dispersion": ("DispersionConfig", "run_dispersion"),
        "facelatent.synthetic.forces": (
            "Repulsion",
            "embeddings_and_forces",
            "interaction_forces",
            "per_identity_interaction_forces",
        ),
        "facelatent.synthetic.langevin": ("LangevinConfig", "run_langevin"),
        "facelatent.synthetic.references": ("random_references", "reject_references"),
        "facelatent.synthetic.render": ("FacePipeline",),
    }
)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
