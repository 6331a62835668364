"""Rule merge_stats: the references' stats and the variation parts' stats merged into stats.h5."""

from facelatent.rulekit import setup_rule_logging
from facelatent.synthetic.job import merge_stats_job

setup_rule_logging(snakemake.log[0])
merge_stats_job(snakemake.input.references, list(snakemake.input.parts), snakemake.output[0])
