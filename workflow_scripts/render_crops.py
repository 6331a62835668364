"""Rule render_crops: one part's ArcFace 112x112 PNGs, crops/{part}/{identity:05d}/{label}.png, plus its manifest."""

from facelatent.rulekit import set_threads, setup_rule_logging
from facelatent.synthetic.job import render_crops

setup_rule_logging(snakemake.log[0])
set_threads(snakemake.threads)
render_crops(
    generator=snakemake.input.generator,
    generator_settings=snakemake.params.generator,
    references_path=snakemake.input.references,
    variations_path=snakemake.input.get("variations"),
    run_cfg=snakemake.params.run,
    embedder_weights=snakemake.input.embedder,
    out_dir=snakemake.output.crops,
    manifest_path=snakemake.output.manifest,
)
