"""Rule project_shard: project one aligned shard into W / W+, resuming from its .partial file."""

from facelatent.projection.encoder import load_encoder
from facelatent.projection.job import ProjectionConfig, project_shard
from facelatent.rulekit import rule_generator, set_threads, setup_rule_logging

setup_rule_logging(snakemake.log[0])
set_threads(snakemake.threads)
G, info = rule_generator(snakemake.params.generator, snakemake.input.generator)
encoder = load_encoder(snakemake.input.encoder, G) if snakemake.input.get("encoder") else None
project_shard(
    G,
    snakemake.input.aligned,
    snakemake.output[0],
    ProjectionConfig(**snakemake.params.projection),
    info,
    encoder=encoder,
    facenet_weights=snakemake.input.get("facenet"),
)
