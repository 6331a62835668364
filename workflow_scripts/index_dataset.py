"""Checkpoint index_dataset: list a dataset's images and labels, assign shards, write each shard's rows and FFHQ's
download lists."""

from facelatent.datasets.job import index_dataset
from facelatent.rulekit import setup_rule_logging

setup_rule_logging(snakemake.log[0])
index_dataset(
    kind=snakemake.params.kind,
    root=snakemake.params.root,
    options=snakemake.params.options,
    images_per_shard=snakemake.params.images_per_shard,
    manifest=snakemake.input.get("manifest"),
    index=snakemake.output.index,
    shards=snakemake.output.shards,
    rows=snakemake.output.rows,
    downloads=snakemake.output.downloads,
)
