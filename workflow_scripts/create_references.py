"""Rule create_references: the run's reference identities (Langevin resumes from references.h5.partial)."""

from facelatent.rulekit import set_threads, setup_rule_logging
from facelatent.synthetic.job import create_references_job

setup_rule_logging(snakemake.log[0])
set_threads(snakemake.threads)
create_references_job(
    snakemake.input.generator,
    snakemake.params.run,
    snakemake.output[0],
    obstacles_path=snakemake.input.get("obstacles"),
    embedder_weights=snakemake.input.embedder,
    expect_generator=snakemake.params.generator,
)
