"""Rule render_edits: an edit grid along one direction."""

from facelatent.directions.job import render_edits_job
from facelatent.rulekit import setup_rule_logging

setup_rule_logging(snakemake.log[0])
render_edits_job(
    snakemake.input.generator,
    snakemake.input.latents,
    snakemake.input.direction,
    snakemake.params.edits,
    snakemake.output[0],
    title=snakemake.wildcards.edit,
    expect_generator=snakemake.params.generator,
)
