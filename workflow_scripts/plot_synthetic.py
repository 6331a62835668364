"""Rule plot_synthetic: angle histograms, stats over iterations, the image grid and verification metrics."""

from facelatent.rulekit import setup_rule_logging
from facelatent.synthetic.job import plot_synthetic

setup_rule_logging(snakemake.log[0])
plot_synthetic(
    samples=snakemake.input.samples,
    stats=snakemake.input.stats,
    manifest=snakemake.input.manifest,
    crops_dir=snakemake.params.crops_dir,
    run_cfg=snakemake.params.run,
    out_histograms=snakemake.output.histograms,
    out_stats=snakemake.output.stats,
    out_grid=snakemake.output.grid,
    out_metrics=snakemake.output.metrics,
    metrics_config=snakemake.params.metrics,
)
