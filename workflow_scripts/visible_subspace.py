"""Rule visible_subspace: the eigenbasis of the generator's Jacobian Gram, and its spectrum figure."""

from facelatent.rulekit import rule_generator, set_threads, setup_rule_logging
from facelatent.directions.visible import VisibleConfig
from facelatent.directions.job import visible_subspace_job

setup_rule_logging(snakemake.log[0])
set_threads(snakemake.threads)
G, info = rule_generator(snakemake.params.generator, snakemake.input.generator)
visible_subspace_job(
    G,
    VisibleConfig(**snakemake.params.visible),
    snakemake.params.w_avg_samples,
    snakemake.output.subspace,
    snakemake.output.spectrum,
    info,
)
