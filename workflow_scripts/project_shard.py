"""Rule project_shard: project one aligned shard into W / W+, resuming from its .partial file."""

from facelatent.encoder import load_encoder
from facelatent.generators import load_configured_generator
from facelatent.projection_job import ProjectionConfig, project_shard
from facelatent.rulekit import pick_device, set_threads, setup_rule_logging

setup_rule_logging(snakemake.log[0])
set_threads(snakemake.threads)
G = load_configured_generator(snakemake.params.generator, device=pick_device())
info = {"path": snakemake.input.generator, "sha256": G.checkpoint_sha256, **G.describe()}
encoder = load_encoder(snakemake.input.encoder, G) if snakemake.input.get("encoder") else None
project_shard(
    G,
    snakemake.input.aligned,
    snakemake.output[0],
    ProjectionConfig(**snakemake.params.projection),
    info,
    encoder=encoder,
)
