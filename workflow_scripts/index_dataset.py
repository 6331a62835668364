"""Checkpoint index_dataset: list a dataset's images and labels, assign shards."""

from facelatent.datasets import index_and_shard
from facelatent.rulekit import setup_rule_logging

setup_rule_logging(snakemake.log[0])
dataset = snakemake.params.dataset
options = dict(dataset["options"])
if dataset["kind"] == "ffhq":
    options["manifest"] = snakemake.input.manifest
    options.setdefault("missing", "download")  # download_shard fetches each shard after indexing
index_and_shard(
    dataset["kind"],
    dataset["root"],
    snakemake.output.index,
    snakemake.output.shards,
    images_per_shard=snakemake.params.images_per_shard,
    **options,
)
