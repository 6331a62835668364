"""Rule project_shard: project one aligned shard into W / W+, resuming from its .partial file."""

from facelatent.projection.job import project_shard
from facelatent.rulekit import set_threads, setup_rule_logging

setup_rule_logging(snakemake.log[0])
set_threads(snakemake.threads)
project_shard(
    generator=snakemake.input.generator,
    generator_settings=snakemake.params.generator,
    aligned=snakemake.input.aligned,
    projection=snakemake.params.projection,
    encoder=snakemake.input.get("encoder"),
    facenet=snakemake.input.get("facenet"),
    output=snakemake.output[0],
)
