"""Rule editor: the command that starts the browser editor on this workflow's results (written, logged, printed)."""

from facelatent.editor.job import editor
from facelatent.rulekit import setup_rule_logging

setup_rule_logging(snakemake.log[0])
editor(
    results=snakemake.params.results,
    configfile=snakemake.params.configfile,
    output=snakemake.output.command,
)
