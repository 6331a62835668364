"""Rule embed_dataset: the embed_shard files merged, subjects joined, verification metrics by subject."""

from facelatent.embeddings.job import embed_dataset
from facelatent.rulekit import set_threads, setup_rule_logging

setup_rule_logging(snakemake.log[0])
set_threads(snakemake.threads)
embed_dataset(
    shards=snakemake.input.shards,
    index_tsv=snakemake.input.index,
    spec=snakemake.params.embedder,
    crop=snakemake.params.crop,
    out_h5=snakemake.output.embeddings,
    out_json=snakemake.output.metrics,
    out_png=snakemake.output.histogram,
    metrics_config=snakemake.params.metrics,
)
