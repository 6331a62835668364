"""Rule visible_subspace: the eigenbasis of the generator's Jacobian Gram, and its spectrum figure."""

from facelatent.directions.job import visible_subspace
from facelatent.rulekit import set_threads, setup_rule_logging

setup_rule_logging(snakemake.log[0])
set_threads(snakemake.threads)
visible_subspace(
    generator=snakemake.input.generator,
    generator_settings=snakemake.params.generator,
    visible=snakemake.params.visible,
    w_avg_samples=snakemake.params.w_avg_samples,
    out_h5=snakemake.output.subspace,
    out_png=snakemake.output.spectrum,
)
