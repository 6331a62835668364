"""Rule sample_latents: one shard of seeded z mapped to w by the generator, stored as latents."""

from facelatent.attributes.job import sample_latents
from facelatent.rulekit import set_threads, setup_rule_logging

setup_rule_logging(snakemake.log[0])
set_threads(snakemake.threads)
sample_latents(
    generator=snakemake.input.generator,
    generator_settings=snakemake.params.generator,
    generated=snakemake.params.generated,
    shard=snakemake.wildcards.gshard,
    output=snakemake.output.latents,
)
