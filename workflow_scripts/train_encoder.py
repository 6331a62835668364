"""Rule train_encoder: a CNN image -> w regressed on the generator's own renders, to start projection."""

from facelatent.encoder import EncoderConfig, train_encoder_job
from facelatent.generators import load_configured_generator
from facelatent.rulekit import pick_device, set_threads, setup_rule_logging

setup_rule_logging(snakemake.log[0])
set_threads(snakemake.threads)
G = load_configured_generator(snakemake.params.generator, device=pick_device())
info = {"path": snakemake.input.generator, "sha256": G.checkpoint_sha256, **G.describe()}
train_encoder_job(
    G,
    EncoderConfig(**snakemake.params.encoder),
    snakemake.params.w_avg_samples,
    snakemake.output[0],
    info,
)
