"""Rule make_demo_data: DCGAN faces -> CK+, Multi-PIE, FFHQ and folder fixtures with planted labels."""

from pathlib import Path

from facelatent.demo_data.manifest import make_demo_data_with_manifest
from facelatent.rulekit import setup_rule_logging

setup_rule_logging(snakemake.log[0])
make_demo_data_with_manifest(
    Path(snakemake.output.manifest).parent,
    generator_path=snakemake.input.generator,
    seed=snakemake.params.seed,
    sizes=snakemake.params.sizes,
    manifest_path=snakemake.output.manifest,
    mtcnn_weights=snakemake.input.mtcnn,
)
