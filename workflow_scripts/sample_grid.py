"""Rule sample_grid: a grid of generator samples for the report."""

from facelatent.generators.job import sample_grid
from facelatent.rulekit import setup_rule_logging

setup_rule_logging(snakemake.log[0])
sample_grid(
    generator=snakemake.input.generator,
    generator_settings=snakemake.params.generator,
    rows=snakemake.params.rows,
    cols=snakemake.params.cols,
    seed=snakemake.params.seed,
    output=snakemake.output[0],
)
