"""Rule sample_grid: a grid of generator samples for the report."""

from facelatent.generators import GeneratorSettings, load_configured_generator
from facelatent.grids import sample_grid
from facelatent.rulekit import setup_rule_logging

setup_rule_logging(snakemake.log[0])
settings = GeneratorSettings.coerce(snakemake.params.generator)
G = load_configured_generator(settings)
sample_grid(
    G,
    snakemake.output[0],
    rows=snakemake.params.rows,
    cols=snakemake.params.cols,
    seed=snakemake.params.seed,
    truncation_psi=settings.truncation_psi,
    truncation_cutoff=settings.truncation_cutoff,
    noise_mode=settings.noise_mode,
)
