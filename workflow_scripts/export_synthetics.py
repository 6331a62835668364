"""Rule export_synthetics: the run in Idiap synthetics' SampleCollection and stats layouts."""

from facelatent.rulekit import setup_rule_logging
from facelatent.synthetic.job import export_synthetics_job

setup_rule_logging(snakemake.log[0])
export_synthetics_job(
    snakemake.input.samples,
    snakemake.input.stats,
    snakemake.params.run,
    snakemake.output.samples,
    snakemake.output.reference_stats,
    snakemake.output.variation_stats,
)
