"""Helpers shared by the thin rule scripts in `workflow_scripts/` (logging, device choice)."""

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
    logging.basicConfig(stream=stream, level=logging.INFO, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)
    job = os.environ.get("SLURM_JOB_ID")
    if job:
        logging.getLogger("facelatent").info("SLURM job %s on %s", job, os.uname().nodename)


def pick_device(requested: str = "auto") -> torch.device:
    """The job's device. `auto`: the CPU without CUDA; else the job's assigned GPU, which is the first
    visible one under `CUDA_VISIBLE_DEVICES` (SLURM and the cluster profile set the mask per job, so
    `cuda:0` is relative to it). Without a mask every job sees every GPU and Snakemake's `gpu=1`
    resource names no device, so `auto` means GPU 0 and warns when there are several: give each run a
    mask (`CUDA_VISIBLE_DEVICES=1 snakemake ...`) or cap local runs with `--resources gpu=1`.
    """
    if requested != "auto":
        return torch.device(requested)
    if not torch.cuda.is_available():
        return torch.device("cpu")
    if not os.environ.get("CUDA_VISIBLE_DEVICES") and torch.cuda.device_count() > 1:
        logging.getLogger("facelatent").warning(
            "device auto: %d GPUs visible and no CUDA_VISIBLE_DEVICES mask; using cuda:0 (every such job "
            "shares it: set CUDA_VISIBLE_DEVICES per run, or run with --resources gpu=1)",
            torch.cuda.device_count())
    return torch.device("cuda:0")


def set_threads(threads: int) -> None:
    """Match torch's intra-op threads to the rule's `threads:` so jobs do not oversubscribe cores."""
    torch.set_num_threads(max(1, int(threads)))


def rule_generator(generator_params: dict, checkpoint: str | Path):
    """The configured generator on the job's device, and the facts its outputs record about it."""
    from facelatent.generators import load_configured_generator

    G = load_configured_generator(generator_params, device=pick_device())
    return G, {"path": str(checkpoint), "sha256": G.checkpoint_sha256, **G.describe()}
