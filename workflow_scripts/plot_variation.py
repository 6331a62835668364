"""Rule plot_variation: the run's per-face variation table, per-identity summary and figure."""

from facelatent.rulekit import setup_rule_logging
from facelatent.synthetic.job import plot_variation

setup_rule_logging(snakemake.log[0])
plot_variation(
    parts=snakemake.input.parts,
    references=snakemake.input.references,
    out_faces=snakemake.output.faces,
    out_identities=snakemake.output.identities,
    out_figure=snakemake.output.figure,
)
