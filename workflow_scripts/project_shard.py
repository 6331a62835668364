"""Rule project_shard: project one aligned shard into W / W+, resuming from its .partial file."""

from facelatent.generators import check_generator_matches, load_generator
from facelatent.projection_job import ProjectionConfig, project_shard
from facelatent.rulekit import pick_device, set_threads, setup_rule_logging

setup_rule_logging(snakemake.log[0])
set_threads(snakemake.threads)
gen = snakemake.params.generator
G = load_generator(snakemake.input.generator, device=pick_device())
check_generator_matches(G, snakemake.input.generator, gen["resolution"], gen["w_dim"])
info = {"path": snakemake.input.generator, "sha256": G.checkpoint_sha256, **G.describe()}
project_shard(
    G,
    snakemake.input.aligned,
    snakemake.output[0],
    ProjectionConfig(**snakemake.params.projection),
    info,
)
