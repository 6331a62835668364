"""Rule render_crops: an ArcFace 112x112 PNG per face, crops/{identity:05d}/{label}.png, plus a manifest."""

from facelatent.rulekit import set_threads, setup_rule_logging
from facelatent.synthetic.imagery import render_crops_job

setup_rule_logging(snakemake.log[0])
set_threads(snakemake.threads)
render_crops_job(
    snakemake.input.generator,
    snakemake.input.samples,
    snakemake.params.run,
    snakemake.output.crops,
    snakemake.output.manifest,
    embedder_weights=snakemake.input.embedder,
    expect_generator=snakemake.params.generator,
)
