"""Rule render_crops: an ArcFace 112x112 PNG per face, crops/{identity:05d}/{label}.png, plus a manifest."""

from facelatent.rulekit import set_threads, setup_rule_logging
from facelatent.synthetic.job import render_crops

setup_rule_logging(snakemake.log[0])
set_threads(snakemake.threads)
render_crops(
    generator=snakemake.input.generator,
    generator_settings=snakemake.params.generator,
    samples_path=snakemake.input.samples,
    run_cfg=snakemake.params.run,
    embedder_weights=snakemake.input.embedder,
    out_dir=snakemake.output.crops,
    manifest_path=snakemake.output.manifest,
)
