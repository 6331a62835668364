"""Rule predict_aus: AU probabilities for every latent of a dataset."""

from facelatent.au.job import predict_aus
from facelatent.rulekit import setup_rule_logging

setup_rule_logging(snakemake.log[0])
predict_aus(
    model_ckpt=snakemake.input.model,
    latents_h5=snakemake.input.latents,
    out_tsv=snakemake.output[0],
)
