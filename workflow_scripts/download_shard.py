"""Rule download_shard: fetch one shard's FFHQ images (parallel, resumable, md5-checked)."""


from facelatent.datasets import read_index
from facelatent.download import download_ffhq
from facelatent.rulekit import setup_rule_logging
from facelatent.store import atomic_write_json

setup_rule_logging(snakemake.log[0])
index = read_index(snakemake.input.index)
rows = index[index["shard"] == snakemake.wildcards.shard]
report = download_ffhq(
    snakemake.params.manifest,
    snakemake.params.root,
    indices=rows["index"].astype(int).tolist(),
    workers=snakemake.threads,
)
atomic_write_json(
    snakemake.output[0],
    {"shard": snakemake.wildcards.shard, "files": len(rows), "report": str(report)},
    indent=None,
)
