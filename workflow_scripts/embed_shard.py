"""Rule embed_shard: FR embeddings of one aligned shard, batch by batch, resuming from its .partial file."""

from facelatent.embeddings.job import embed_shard
from facelatent.rulekit import set_threads, setup_rule_logging

setup_rule_logging(snakemake.log[0])
set_threads(snakemake.threads)
embed_shard(
    aligned=snakemake.input.aligned,
    spec=snakemake.params.embedder,
    crop=snakemake.params.crop,
    batch_size=snakemake.params.batch_size,
    weights=snakemake.input.model,
    output=snakemake.output.embeddings,
)
