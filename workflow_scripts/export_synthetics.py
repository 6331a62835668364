"""Rule export_synthetics: the run in Idiap synthetics' SampleCollection and stats layouts."""

from facelatent.rulekit import setup_rule_logging
from facelatent.synthetic.job import export_synthetics

setup_rule_logging(snakemake.log[0])
export_synthetics(
    samples=snakemake.input.samples,
    stats=snakemake.input.stats,
    run_cfg=snakemake.params.run,
    out_samples=snakemake.output.samples,
    out_reference_stats=snakemake.output.reference_stats,
    out_variation_stats=snakemake.output.variation_stats,
)
