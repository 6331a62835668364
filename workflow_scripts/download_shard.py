"""Rule download_shard: fetch one shard's FFHQ images (parallel, resumable, md5-checked)."""

import json
from pathlib import Path

from facelatent.datasets import read_index
from facelatent.download import download_ffhq
from facelatent.rulekit import setup_rule_logging

setup_rule_logging(snakemake.log[0])
index = read_index(snakemake.input.index)
rows = index[index["shard"] == snakemake.wildcards.shard]
report = download_ffhq(
    snakemake.params.manifest,
    snakemake.params.root,
    indices=rows["index"].astype(int).tolist(),
    workers=snakemake.threads,
)
out = Path(snakemake.output[0])
out.parent.mkdir(parents=True, exist_ok=True)
tmp = out.with_name(out.name + ".partial")
tmp.write_text(json.dumps({"shard": snakemake.wildcards.shard, "files": len(rows), "report": str(report)}))
tmp.replace(out)
