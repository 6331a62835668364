"""Rule evaluate_fr: one model on every benchmark, 10-fold accuracy with mirrored embeddings, and TAR@FAR."""

from facelatent.fr.job import evaluate_fr
from facelatent.rulekit import set_threads, setup_rule_logging

setup_rule_logging(snakemake.log[0])
set_threads(snakemake.threads)
evaluate_fr(
    models={snakemake.wildcards.frmodel: f"iresnet:{snakemake.input.weights}"},
    weights={snakemake.wildcards.frmodel: snakemake.input.weights},
    benchmarks=snakemake.params.benchmarks,
    out_tsv=snakemake.output.evaluation,
    batch_size=snakemake.params.batch_size,
)
