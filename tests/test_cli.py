"""The console script's flags that mirror config keys take their defaults from the config dataclasses."""

from __future__ import annotations

from dataclasses import replace

import pytest

from facelatent.cli import build_parser, projection_config
from facelatent.projection.config import ProjectionConfig

SHARD = ["project-shard", "--generator", "G.pt", "--aligned", "a.h5", "--out", "l.h5"]
PROJECTION_FLAGS = [
    "--space",
    "--steps",
    "--batch-size",
    "--loss",
    "--seed",
    "--checkpoint-every",
    "--schedule",
    "--refine",
]


def test_project_shard_flags_left_out_take_the_config_defaults():
    args = build_parser().parse_args(SHARD)
    assert all(getattr(args, flag[2:].replace("-", "_")) is None for flag in PROJECTION_FLAGS)
    assert projection_config(args) == ProjectionConfig()


def test_project_shard_flags_given_override_the_config_defaults():
    args = build_parser().parse_args(
        [
            *SHARD,
            "--steps",
            "7",
            "--space",
            "w+",
            "--loss",
            '{"mse": 1.0}',
            "--schedule",
            '{"w_avg_samples": 20}',
            "--encoder",
            "e.pt",
        ]
    )
    assert projection_config(args) == replace(
        ProjectionConfig(), steps=7, space="w+", loss={"mse": 1.0}, schedule={"w_avg_samples": 20}, init="encoder"
    )


def test_project_shard_help_shows_the_config_defaults(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["project-shard", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    defaults = ProjectionConfig()
    for flag, value in [
        ("--steps STEPS", defaults.steps),
        ("--batch-size BATCH_SIZE", defaults.batch_size),
        ("--checkpoint-every CHECKPOINT_EVERY", defaults.checkpoint_every),
    ]:
        assert f"{flag} (default: from config schema: {value})" in text
