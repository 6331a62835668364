"""Rule plot_synthetic: angle histograms, stats over iterations, the image grid and verification metrics."""

from facelatent.rulekit import setup_rule_logging
from facelatent.synthetic.plots import plot_synthetic_job

setup_rule_logging(snakemake.log[0])
plot_synthetic_job(
    snakemake.input.samples,
    snakemake.input.stats,
    snakemake.input.manifest,
    snakemake.input.crops,
    snakemake.params.run,
    snakemake.output.histograms,
    snakemake.output.stats,
    snakemake.output.grid,
    snakemake.output.metrics,
    metrics_config=snakemake.params.metrics,
)
