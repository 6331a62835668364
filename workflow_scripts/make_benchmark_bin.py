"""Rule make_benchmark_bin: a verification .bin in insightface's layout from held-out subjects of an aligned dataset."""

from facelatent.fr.job import make_benchmark_bin
from facelatent.rulekit import setup_rule_logging

setup_rule_logging(snakemake.log[0])
make_benchmark_bin(
    shards=snakemake.input.shards,
    index=snakemake.input.index,
    subjects=snakemake.params.entry.get("subjects"),
    pairs_per_kind=snakemake.params.entry["pairs_per_kind"],
    seed=snakemake.params.entry["seed"],
    out_bin=snakemake.output.bin,
    out_json=snakemake.output.summary,
)
