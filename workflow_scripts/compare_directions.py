"""Rule compare_directions: the entanglement matrix and the response / drift table over every direction."""

from facelatent.attributes.job import compare_directions
from facelatent.rulekit import setup_rule_logging

setup_rule_logging(snakemake.log[0])
compare_directions(
    summaries=snakemake.input.summaries,
    sources=snakemake.params.sources,
    out_tsv=snakemake.output.table,
    out_png=snakemake.output.figure,
)
