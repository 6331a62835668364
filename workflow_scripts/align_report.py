"""Rule align_report: rejects table (fails above the configured share) and a preview grid."""

from facelatent.align.job import summarize_rejects
from facelatent.latents import aligned_preview
from facelatent.rulekit import setup_rule_logging
from facelatent.store import atomic_write_text

setup_rule_logging(snakemake.log[0])
rejects, aligned = summarize_rejects(list(snakemake.input), snakemake.params.max_reject_share)
atomic_write_text(snakemake.output.rejects, rejects.to_csv(sep="\t", index=False))
aligned_preview(list(snakemake.input), snakemake.output.preview)
