"""Rule fit_pca: GANSpace-style principal directions of a latent set."""

from facelatent.directions.job import fit_pca
from facelatent.rulekit import setup_rule_logging

setup_rule_logging(snakemake.log[0])
fit_pca(
    latents=snakemake.input.latents,
    components=snakemake.params.components,
    space=snakemake.params.space,
    normals=snakemake.output.normals,
    info_json=snakemake.output.info,
)
