"""Rule visible_subspace: the eigenbasis of the generator's Jacobian Gram, and its spectrum figure."""

from facelatent.generators import load_configured_generator
from facelatent.rulekit import pick_device, set_threads, setup_rule_logging
from facelatent.visible import VisibleConfig
from facelatent.visible_job import visible_subspace_job

setup_rule_logging(snakemake.log[0])
set_threads(snakemake.threads)
G = load_configured_generator(snakemake.params.generator, device=pick_device())
info = {"path": snakemake.input.generator, "sha256": G.checkpoint_sha256, **G.describe()}
visible_subspace_job(
    G,
    VisibleConfig(**snakemake.params.visible),
    snakemake.params.w_avg_samples,
    snakemake.output.subspace,
    snakemake.output.spectrum,
    info,
)
