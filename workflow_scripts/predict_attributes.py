"""Rule predict_attributes: one latent shard rendered and scored by every configured predictor (resumable)."""

from facelatent.attributes.job import predict_attributes
from facelatent.rulekit import set_threads, setup_rule_logging

setup_rule_logging(snakemake.log[0])
set_threads(snakemake.threads)
predict_attributes(
    generator=snakemake.input.generator,
    generator_settings=snakemake.params.generator,
    generated=snakemake.params.generated,
    latents=snakemake.input.latents,
    mtcnn=snakemake.input.get("mtcnn"),
    dlib68=snakemake.input.get("dlib68"),
    output=snakemake.output.scores,
)
