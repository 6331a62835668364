"""Rule predict_synthetic_aus: AU probabilities for every face of a synthetic run's samples."""

from facelatent.au.job import predict_synthetic_aus
from facelatent.rulekit import setup_rule_logging

setup_rule_logging(snakemake.log[0])
predict_synthetic_aus(
    model_ckpt=snakemake.input.model,
    samples_h5=snakemake.input.samples,
    out_tsv=snakemake.output[0],
)
