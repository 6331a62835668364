"""Rule merge_samples: references + variation parts -> one columnar samples.h5."""

from facelatent.rulekit import setup_rule_logging
from facelatent.synthetic.job import merge_samples_job

setup_rule_logging(snakemake.log[0])
merge_samples_job(snakemake.input.references, list(snakemake.input.parts), snakemake.output[0])
