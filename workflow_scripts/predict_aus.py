"""Rules predict_aus / predict_synthetic_aus: AU probabilities for every latent of a dataset or of synthetic samples."""

from facelatent.au.job import predict_aus
from facelatent.rulekit import setup_rule_logging

setup_rule_logging(snakemake.log[0])
predict_aus(snakemake.input.model, snakemake.input[1], snakemake.output[0])
