"""Rule fit_direction: an SVM normal (or a conditional one) -> {name}.npy + {name}.json."""

from facelatent.directions.job import fit_direction_job
from facelatent.rulekit import setup_rule_logging

setup_rule_logging(snakemake.log[0])
fit_direction_job(
    snakemake.wildcards.name,
    dict(snakemake.input.items()),
    snakemake.params.direction,
    snakemake.output.normal,
    snakemake.output.metrics,
)
