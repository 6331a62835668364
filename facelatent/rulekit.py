"""Helpers shared by the thin rule scripts in `workflow_scripts/`: the job's log file and its thread count."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import torch


def setup_rule_logging(log_path: str | Path) -> None:
    """Send logging, warnings and stderr (tqdm bars, Lightning) to the rule's log file, line-buffered."""
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    stream = open(log_path, "w", buffering=1)  # noqa: SIM115 - lives for the whole job
    sys.stderr = stream
    logging.basicConfig(
        stream=stream, level=logging.INFO, force=True, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.captureWarnings(True)
    job = os.environ.get("SLURM_JOB_ID")
    if job:
        logging.getLogger("facelatent").info("SLURM job %s on %s", job, os.uname().nodename)


def set_threads(threads: int) -> None:
    """Match torch's intra-op threads to the rule's `threads:` so jobs do not oversubscribe cores."""
    torch.set_num_threads(max(1, int(threads)))
