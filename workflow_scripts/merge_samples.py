"""Rule merge_samples: references + variation parts -> one columnar samples.h5."""

from facelatent.rulekit import setup_rule_logging
from facelatent.synthetic.job import merge_samples

setup_rule_logging(snakemake.log[0])
merge_samples(
    references=snakemake.input.references,
    parts=snakemake.input.parts,
    out_path=snakemake.output[0],
)
