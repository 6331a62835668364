"""Rule train_encoder: a CNN image -> w regressed on the generator's own renders, to start projection."""

from facelatent.projection.encoder import EncoderConfig, train_encoder_job
from facelatent.rulekit import rule_generator, set_threads, setup_rule_logging

setup_rule_logging(snakemake.log[0])
set_threads(snakemake.threads)
G, info = rule_generator(snakemake.params.generator, snakemake.input.generator)
train_encoder_job(
    G,
    EncoderConfig(**snakemake.params.encoder),
    snakemake.params.w_avg_samples,
    snakemake.output[0],
    info,
)
