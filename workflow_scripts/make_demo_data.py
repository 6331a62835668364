"""Rule make_demo_data: DCGAN faces -> CK+, Multi-PIE, FFHQ and folder fixtures with planted labels."""

from facelatent.demo_data.job import make_demo_data
from facelatent.rulekit import setup_rule_logging

setup_rule_logging(snakemake.log[0])
make_demo_data(
    generator=snakemake.input.generator,
    mtcnn=snakemake.input.mtcnn,
    seed=snakemake.params.seed,
    sizes=snakemake.params.sizes,
    manifest=snakemake.output.manifest,
)
