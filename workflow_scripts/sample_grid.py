"""Rule sample_grid: a grid of generator samples for the report."""

from facelatent.generators import load_configured_generator
from facelatent.grids import sample_grid
from facelatent.rulekit import setup_rule_logging

setup_rule_logging(snakemake.log[0])
G = load_configured_generator(snakemake.params.generator)
sample_grid(
    G,
    snakemake.output[0],
    rows=snakemake.params.rows,
    cols=snakemake.params.cols,
    seed=snakemake.params.seed,
    truncation_psi=snakemake.params.truncation_psi,
)
