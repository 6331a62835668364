"""Rule align_report: rejects table (fails above the configured share) and a preview grid."""

from facelatent.align_job import summarize_rejects
from facelatent.latents import aligned_preview
from facelatent.rulekit import setup_rule_logging

setup_rule_logging(snakemake.log[0])
rejects, aligned = summarize_rejects(list(snakemake.input), snakemake.params.max_reject_share)
tmp = snakemake.output.rejects + ".partial"
rejects.to_csv(tmp, sep="\t", index=False)
__import__("os").replace(tmp, snakemake.output.rejects)
aligned_preview(list(snakemake.input), snakemake.output.preview)
