"""Rule merge_attributes: the generated shards' latents and scores in one file, streamed block by block."""

from facelatent.attributes.job import merge_attributes
from facelatent.rulekit import setup_rule_logging

setup_rule_logging(snakemake.log[0])
merge_attributes(
    latents=snakemake.input.latents,
    scores=snakemake.input.scores,
    predictors=snakemake.params.predictors,
    output=snakemake.output.attributes,
)
