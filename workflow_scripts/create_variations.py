"""Rule create_variations: Dispersion / DisCo variations of one block of identities."""

from facelatent.rulekit import set_threads, setup_rule_logging
from facelatent.synthetic.job import create_variations_job

setup_rule_logging(snakemake.log[0])
set_threads(snakemake.threads)
create_variations_job(
    snakemake.input.generator,
    snakemake.input.references,
    snakemake.params.run,
    snakemake.wildcards.part,
    snakemake.output[0],
    directions=list(snakemake.input.get("directions", [])),
    embedder_weights=snakemake.input.embedder,
    expect_generator=snakemake.params.generator,
)
