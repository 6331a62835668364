"""Rule evaluate_direction: one direction's edit measured on held-out samples (response, side effects, drift)."""

from facelatent.attributes.job import evaluate_direction
from facelatent.rulekit import set_threads, setup_rule_logging

setup_rule_logging(snakemake.log[0])
set_threads(snakemake.threads)
evaluate_direction(
    name=snakemake.wildcards.name,
    direction=snakemake.input.direction,
    target=snakemake.params.target,
    generator=snakemake.input.generator,
    generator_settings=snakemake.params.generator,
    generated=snakemake.params.generated,
    embedder_spec=snakemake.params.embedder,
    embedder_weights=snakemake.input.embedder,
    crop=snakemake.params.crop,
    mtcnn=snakemake.input.get("mtcnn"),
    dlib68=snakemake.input.get("dlib68"),
    out_tsv=snakemake.output.table,
    out_json=snakemake.output.summary,
    out_png=snakemake.output.figure,
)
