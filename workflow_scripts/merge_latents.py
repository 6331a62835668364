"""Rule merge_latents: one latents file per dataset, index labels joined, plus a reconstruction grid."""

from facelatent.generators import load_generator
from facelatent.latents import merge_latent_shards, reconstruction_grid
from facelatent.rulekit import setup_rule_logging

setup_rule_logging(snakemake.log[0])
merge_latent_shards(list(snakemake.input.shards), snakemake.input.index, snakemake.output.latents)
G = load_generator(snakemake.input.generator, expect=snakemake.params.generator)
reconstruction_grid(G, list(snakemake.input.aligned), snakemake.output.latents, snakemake.output.grid)
