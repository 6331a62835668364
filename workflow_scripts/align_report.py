"""Rule align_report: rejects table (fails above the configured share) and a preview grid."""

from facelatent.align.job import align_report
from facelatent.rulekit import setup_rule_logging

setup_rule_logging(snakemake.log[0])
align_report(
    shards=snakemake.input,
    max_reject_share=snakemake.params.max_reject_share,
    rejects=snakemake.output.rejects,
    preview=snakemake.output.preview,
)
