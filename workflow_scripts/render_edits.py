"""Rule render_edits: an edit grid along one direction."""

from facelatent.directions.job import render_edits
from facelatent.rulekit import setup_rule_logging

setup_rule_logging(snakemake.log[0])
render_edits(
    generator=snakemake.input.generator,
    generator_settings=snakemake.params.generator,
    latents=snakemake.input.latents,
    direction=snakemake.input.direction,
    n_sources=snakemake.params.n_sources,
    distances=snakemake.params.distances,
    mode=snakemake.params.mode,
    title=snakemake.wildcards.edit,
    out_png=snakemake.output[0],
)
