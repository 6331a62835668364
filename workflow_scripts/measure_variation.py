"""Rule measure_variation: pose, expression, light and FR angle to the reference of one crop part's faces."""

from facelatent.rulekit import set_threads, setup_rule_logging
from facelatent.synthetic.job import measure_variation

setup_rule_logging(snakemake.log[0])
set_threads(snakemake.threads)
measure_variation(
    references=snakemake.input.references,
    variations=snakemake.input.get("variations"),
    manifest=snakemake.input.manifest,
    crops_dir=snakemake.params.crops_dir,
    mtcnn_weights=snakemake.input.mtcnn,
    out_path=snakemake.output.table,
    identities_per_part=snakemake.params.identities_per_part,
)
