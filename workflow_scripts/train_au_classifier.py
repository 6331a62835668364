"""Rule train_au_classifier: Lightning MLP + logistic baseline on subject-disjoint splits."""

from pathlib import Path

from facelatent.au.job import AUConfig, train_au_job
from facelatent.rulekit import set_threads, setup_rule_logging
from facelatent.devices import pick_device

setup_rule_logging(snakemake.log[0])
set_threads(snakemake.threads)
params = {k: v for k, v in snakemake.params.au.items() if k != "dataset"}
train_au_job(
    snakemake.input.latents,
    AUConfig(**params),
    Path(snakemake.output.model).parent,
    accelerator="gpu" if pick_device().type == "cuda" else "cpu",
)
