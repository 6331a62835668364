"""The job's torch device, chosen the same way by rule scripts, the CLI and library code."""

from __future__ import annotations

import logging
import os

import torch


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
            torch.cuda.device_count(),
        )
    return torch.device("cuda:0")
