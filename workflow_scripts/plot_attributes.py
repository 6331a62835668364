"""Rule plot_attributes: each predicted score's histogram with the faces at each end."""

from facelatent.attributes.job import plot_attributes
from facelatent.rulekit import set_threads, setup_rule_logging

setup_rule_logging(snakemake.log[0])
set_threads(snakemake.threads)
plot_attributes(
    generator=snakemake.input.generator,
    generator_settings=snakemake.params.generator,
    attributes=snakemake.input.attributes,
    predictors=snakemake.params.predictors,
    ends=snakemake.params.ends,
    out_png=snakemake.output.figure,
)
