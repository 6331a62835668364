"""Rule judge_synthetic: dlib's ResNet judges a synthetic run's identity separation, next to the run's FR model."""

from facelatent.judge.job import judge_synthetic
from facelatent.rulekit import setup_rule_logging

setup_rule_logging(snakemake.log[0])
judge_synthetic(
    samples=snakemake.input.samples,
    manifest=snakemake.input.manifest,
    crops_dir=snakemake.params.crops_dir,
    model=snakemake.input.model,
    predictor=snakemake.input.predictor,
    out_json=snakemake.output.metrics,
    out_png=snakemake.output.histogram,
    max_identities=snakemake.params.max_identities,
    metrics_config=snakemake.params.metrics,
)
