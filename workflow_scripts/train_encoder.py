"""Rule train_encoder: a CNN image -> w regressed on the generator's own renders, to start projection."""

from facelatent.projection.job import train_encoder
from facelatent.rulekit import set_threads, setup_rule_logging

setup_rule_logging(snakemake.log[0])
set_threads(snakemake.threads)
train_encoder(
    generator=snakemake.input.generator,
    generator_settings=snakemake.params.generator,
    encoder=snakemake.params.encoder,
    w_avg_samples=snakemake.params.w_avg_samples,
    output=snakemake.output[0],
)
