"""Rule compare_fr: the papers' table (rows: training sets; columns: benchmarks and their average) and a plot."""

from facelatent.fr.job import compare_fr
from facelatent.rulekit import setup_rule_logging

setup_rule_logging(snakemake.log[0])
compare_fr(
    evaluations=snakemake.input.evaluations,
    out_tsv=snakemake.output.table,
    out_png=snakemake.output.figure,
)
