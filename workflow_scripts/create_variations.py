"""Rule create_variations: Dispersion / DisCo variations of one block of identities."""

from facelatent.rulekit import set_threads, setup_rule_logging
from facelatent.synthetic.job import create_variations

setup_rule_logging(snakemake.log[0])
set_threads(snakemake.threads)
create_variations(
    generator=snakemake.input.generator,
    generator_settings=snakemake.params.generator,
    references_path=snakemake.input.references,
    run_cfg=snakemake.params.run,
    part=snakemake.wildcards.part,
    directions=snakemake.input.get("directions", []),
    embedder_weights=snakemake.input.embedder,
    out_path=snakemake.output[0],
)
