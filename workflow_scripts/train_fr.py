"""Rule train_fr: an IResNet with a margin head on one training set; resumes from its last checkpoint."""

from facelatent.fr.job import train_fr
from facelatent.rulekit import set_threads, setup_rule_logging

setup_rule_logging(snakemake.log[0])
set_threads(snakemake.threads)
train_fr(
    train_set=snakemake.params.train_set,
    cfg=snakemake.params.training,
    out_backbone=snakemake.output.backbone,
    out_initial=snakemake.output.initial,
    metrics_csv=snakemake.output.metrics,
    checkpoint_dir=snakemake.params.checkpoint_dir,
)
