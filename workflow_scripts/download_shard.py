"""Rule download_shard: fetch one shard's FFHQ images (parallel, resumable, md5-checked) from its download list."""

from facelatent.datasets.job import download_shard
from facelatent.rulekit import setup_rule_logging

setup_rule_logging(snakemake.log[0])
download_shard(
    download_list=snakemake.input.download_list,
    shard=snakemake.wildcards.shard,
    root=snakemake.params.root,
    output=snakemake.output[0],
    workers=snakemake.threads,
)
