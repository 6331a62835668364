"""Which device `auto` picks (CPU-only machines stand in for GPUs via monkeypatched torch.cuda)."""

from __future__ import annotations

import logging

import pytest
import torch

from facelatent.devices import pick_device


@pytest.fixture
def gpus(monkeypatch):
    def visible(n: int) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n)

    return visible


def test_auto_is_the_cpu_without_cuda(gpus):
    gpus(0)
    assert pick_device() == torch.device("cpu")


def test_auto_is_the_first_device_of_the_jobs_mask(gpus, monkeypatch, caplog):
    """Under CUDA_VISIBLE_DEVICES (SLURM, the cluster profile) cuda:0 is the job's own GPU: no warning."""
    gpus(1)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    with caplog.at_level(logging.WARNING):
        assert pick_device() == torch.device("cuda:0")
    assert not caplog.records


def test_auto_warns_when_unmasked_jobs_share_gpu_0(gpus, monkeypatch, caplog):
    gpus(4)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with caplog.at_level(logging.WARNING):
        assert pick_device() == torch.device("cuda:0")
    assert any("4 GPUs visible and no CUDA_VISIBLE_DEVICES" in r.getMessage() for r in caplog.records)


def test_an_explicit_device_is_kept(gpus):
    gpus(4)
    assert pick_device("cuda:2") == torch.device("cuda:2")
