"""Rule fit_direction: an SVM normal (or a conditional one) -> {name}.npy + {name}.json."""

from facelatent.directions.job import fit_direction
from facelatent.rulekit import setup_rule_logging

setup_rule_logging(snakemake.log[0])
fit_direction(
    name=snakemake.wildcards.name,
    entry=snakemake.params.entry,
    latents=snakemake.input.get("latents"),
    attributes=snakemake.input.get("attributes"),
    visible=snakemake.input.get("visible"),
    primal=snakemake.input.get("primal"),
    conditions=snakemake.input.get("conditions", []),
    primal_metrics=snakemake.input.get("primal_metrics"),
    planted=snakemake.input.get("planted"),
    planted_of=snakemake.params.planted_of,
    svm=snakemake.params.svm,
    visible_energy=snakemake.params.visible_energy,
    space=snakemake.params.space,
    out_npy=snakemake.output.normal,
    out_json=snakemake.output.metrics,
)
