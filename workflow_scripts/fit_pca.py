"""Rule fit_pca: GANSpace-style principal directions of a latent set."""

from facelatent.directions.job import fit_pca_job
from facelatent.rulekit import setup_rule_logging

setup_rule_logging(snakemake.log[0])
fit_pca_job(
    snakemake.input.latents,
    snakemake.params.components,
    snakemake.params.space,
    list(snakemake.output.normals),
    snakemake.output.info,
)
