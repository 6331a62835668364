"""Rule merge_crops: the crop parts' manifests concatenated into crops.tsv (paths relative to crops/)."""

from facelatent.rulekit import setup_rule_logging
from facelatent.synthetic.job import merge_crops

setup_rule_logging(snakemake.log[0])
merge_crops(
    manifests=snakemake.input.manifests,
    out_path=snakemake.output.manifest,
)
