"""Rule create_references: the run's reference identities (Langevin resumes from references.h5.partial)."""

from facelatent.rulekit import set_threads, setup_rule_logging
from facelatent.synthetic.job import create_references

setup_rule_logging(snakemake.log[0])
set_threads(snakemake.threads)
create_references(
    generator=snakemake.input.generator,
    generator_settings=snakemake.params.generator,
    run_cfg=snakemake.params.run,
    obstacles_path=snakemake.input.get("obstacles"),
    embedder_weights=snakemake.input.embedder,
    mtcnn_weights=snakemake.input.get("mtcnn"),
    out_path=snakemake.output[0],
)
