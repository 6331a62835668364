"""Rule check_leakage: each synthetic identity's closest real person; identities too close are left out of train.tsv."""

from facelatent.judge.job import check_leakage
from facelatent.rulekit import setup_rule_logging

setup_rule_logging(snakemake.log[0])
check_leakage(
    samples=snakemake.input.samples,
    manifest=snakemake.input.manifest,
    embeddings=snakemake.input.embeddings,
    datasets=snakemake.params.datasets,
    leakage_cfg=snakemake.params.leakage,
    run_spec=snakemake.params.embedder,
    out_tsv=snakemake.output.table,
    out_train=snakemake.output.train,
    out_json=snakemake.output.summary,
    out_png=snakemake.output.histogram,
    metrics_config=snakemake.params.metrics,
)
