"""Rule embed_dataset: FR embeddings of an aligned dataset and verification metrics by subject."""

from facelatent.embeddings.job import embed_dataset
from facelatent.rulekit import set_threads, setup_rule_logging
from facelatent.devices import pick_device

setup_rule_logging(snakemake.log[0])
set_threads(snakemake.threads)
embed_dataset(
    list(snakemake.input.aligned),
    snakemake.input.index,
    snakemake.params.embedder,
    snakemake.params.crop,
    snakemake.output.embeddings,
    snakemake.output.metrics,
    snakemake.output.histogram,
    weights=snakemake.input.model,
    device=str(pick_device()),
    metrics_config=snakemake.params.metrics,
)
