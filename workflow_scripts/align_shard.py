"""Rule align_shard: detect/locate faces and align one shard at the generator's resolution."""

from facelatent.align.job import align_shard
from facelatent.rulekit import set_threads, setup_rule_logging

setup_rule_logging(snakemake.log[0])
set_threads(snakemake.threads)
align_shard(
    index=snakemake.input.index,
    shard=snakemake.wildcards.shard,
    kind=snakemake.params.kind,
    root=snakemake.params.root,
    align=snakemake.params.align,
    mtcnn=snakemake.input.get("mtcnn"),
    output=snakemake.output[0],
)
