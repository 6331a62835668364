"""Rule merge_stats: the references' stats and the variation parts' stats merged into stats.h5."""

from facelatent.rulekit import setup_rule_logging
from facelatent.synthetic.job import merge_stats

setup_rule_logging(snakemake.log[0])
merge_stats(
    references=snakemake.input.references,
    parts=snakemake.input.parts,
    out_path=snakemake.output[0],
)
