"""Rule align_shard: locate faces (detector, landmark files or the manifest's points) and align one shard's rows at
the generator's resolution."""

from facelatent.align.job import align_shard
from facelatent.rulekit import set_threads, setup_rule_logging

setup_rule_logging(snakemake.log[0])
set_threads(snakemake.threads)
align_shard(
    rows=snakemake.input.rows,
    shard=snakemake.wildcards.shard,
    kind=snakemake.params.kind,
    landmark_source=snakemake.params.landmark_source,
    root=snakemake.params.root,
    align=snakemake.params.align,
    mtcnn=snakemake.input.get("mtcnn"),
    dlib68=snakemake.input.get("dlib68"),
    output=snakemake.output[0],
)
