"""Rule align_shard: detect/locate faces and align one shard at the generator's resolution."""

from facelatent.align.job import AlignConfig, align_shard
from facelatent.datasets import read_index
from facelatent.rulekit import set_threads, setup_rule_logging
from facelatent.devices import pick_device

setup_rule_logging(snakemake.log[0])
set_threads(snakemake.threads)
index = read_index(snakemake.input.index)
rows = index[index["shard"] == snakemake.wildcards.shard]
align_shard(
    rows,
    snakemake.params.root,
    snakemake.params.kind,
    snakemake.output[0],
    AlignConfig(**snakemake.params.align),
    device=str(pick_device()),
    mtcnn_weights=snakemake.input.get("mtcnn"),
)
