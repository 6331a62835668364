"""Rule merge_latents: one latents file per dataset, index labels joined, plus a reconstruction grid."""

from facelatent.projection.job import merge_latents
from facelatent.rulekit import setup_rule_logging

setup_rule_logging(snakemake.log[0])
merge_latents(
    shards=snakemake.input.shards,
    aligned=snakemake.input.aligned,
    index=snakemake.input.index,
    generator=snakemake.input.generator,
    generator_settings=snakemake.params.generator,
    latents=snakemake.output.latents,
    grid=snakemake.output.grid,
)
