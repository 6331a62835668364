"""Rule train_au_classifier: Lightning MLP + logistic baseline on subject-disjoint splits."""

from facelatent.au.job import train_au_classifier
from facelatent.rulekit import set_threads, setup_rule_logging

setup_rule_logging(snakemake.log[0])
set_threads(snakemake.threads)
train_au_classifier(
    latents_h5=snakemake.input.latents,
    au=snakemake.params.au,
    model_ckpt=snakemake.output.model,
    metrics_json=snakemake.output.metrics,
    per_au_tsv=snakemake.output.per_au,
    roc_png=snakemake.output.roc,
    pr_png=snakemake.output.pr,
)
