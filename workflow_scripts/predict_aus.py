"""Rule predict_aus: AU probabilities for every latent of a dataset or sample collection."""

from facelatent.au.job import predict_aus
from facelatent.rulekit import setup_rule_logging

setup_rule_logging(snakemake.log[0])
predict_aus(snakemake.input.model, snakemake.input.latents, snakemake.output[0])
