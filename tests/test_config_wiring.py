"""Documented keys do what they say: generator settings reach the renders, every rule checks the generator,
align.template selects the template, PCA directions get edit grids."""

from __future__ import annotations

import json
import re
import runpy
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml

from facelatent.errors import ConfigError, InputFileError
from facelatent.generators import load_generator
from facelatent.generators.stylegan2 import StyleGAN2Generator

SG2 = Path(__file__).parent / "data" / "stylegan2_g64tiny"


@pytest.fixture(scope="module")
def sg2() -> StyleGAN2Generator:
    G = StyleGAN2Generator(**json.loads((SG2 / "init_kwargs.json").read_text())["init_kwargs"])
    G.load_state_dict(torch.load(SG2 / "G_state_dict.pt", weights_only=True), strict=True)
    return G.eval().requires_grad_(False)


def dcgan_settings(dcgan_path, **override) -> dict:
    return {
        "kind": "dcgan",
        "checkpoint": str(dcgan_path),
        "resolution": 64,
        "w_dim": 100,
        "truncation_psi": 1.0,
        "truncation_cutoff": None,
        "noise_mode": "const",
        **override,
    }


# ---- generator.truncation_cutoff and generator.noise_mode ---------------------------------------------


def test_sample_grid_applies_truncation_cutoff(sg2, tmp_path):
    from facelatent.grids import sample_grid

    cut = sample_grid(sg2, tmp_path / "cut.png", rows=1, cols=2, truncation_psi=0.5, truncation_cutoff=1)
    full = sample_grid(sg2, tmp_path / "full.png", rows=1, cols=2, truncation_psi=0.5)
    none = sample_grid(sg2, tmp_path / "none.png", rows=1, cols=2, truncation_psi=0.5, truncation_cutoff=0)
    plain = sample_grid(sg2, tmp_path / "plain.png", rows=1, cols=2, truncation_psi=1.0)
    assert not np.array_equal(cut, full) and not np.array_equal(cut, plain)
    assert np.array_equal(none, plain)  # a cutoff of 0 truncates no ws


def test_sample_grid_applies_noise_mode(sg2, tmp_path):
    from facelatent.grids import sample_grid

    grids = [sample_grid(sg2, tmp_path / f"{i}.png", rows=1, cols=2, noise_mode="random") for i in range(2)]
    const = [sample_grid(sg2, tmp_path / f"c{i}.png", rows=1, cols=2, noise_mode="const") for i in range(2)]
    assert not np.array_equal(*grids) and np.array_equal(*const)


def test_edit_grid_applies_noise_mode(sg2, tmp_path):
    from facelatent.directions.edit import edit_grid

    ws = sg2.mapping(torch.randn(2, sg2.z_dim, generator=torch.Generator().manual_seed(0))).numpy()
    d = np.ones(sg2.w_dim, np.float32)
    grids = [edit_grid(sg2, ws, d, [-1.0, 1.0], tmp_path / f"{i}.png", noise_mode="random") for i in range(2)]
    assert not np.array_equal(*grids)


def run_script(repo_root: Path, name: str, **fields) -> None:
    """Run a rule script as Snakemake does: with a `snakemake` object in its globals."""
    snakemake = SimpleNamespace(**{"log": [str(fields.pop("log"))], "threads": 1, **fields})
    runpy.run_path(str(repo_root / "workflow_scripts" / f"{name}.py"), init_globals={"snakemake": snakemake})


def test_sample_grid_rule_reads_the_generator_settings(repo_root, dcgan_path, tmp_path, monkeypatch):
    import facelatent.grids

    seen = {}
    monkeypatch.setattr(facelatent.grids, "sample_grid", lambda G, out, **kw: seen.update(kw))
    settings = dcgan_settings(dcgan_path, truncation_psi=0.7, truncation_cutoff=3, noise_mode="none")
    run_script(
        repo_root,
        "sample_grid",
        log=tmp_path / "log",
        output=[str(tmp_path / "grid.png")],
        input=SimpleNamespace(generator=str(dcgan_path)),
        params=SimpleNamespace(rows=1, cols=1, seed=0, generator=settings),
    )
    assert (seen["truncation_psi"], seen["truncation_cutoff"], seen["noise_mode"]) == (0.7, 3, "none")


# ---- every rule that loads the config's generator checks it ---------------------------------------------


RULE = re.compile(r"^(?:rule|checkpoint) (\w+):\n((?:[ \t]+.*\n|\n)+)", re.M)
# make_demo_data renders the fixtures with the pinned DCGAN whatever the config's generator is
NOT_THE_CONFIG_GENERATOR = {"make_demo_data"}


def rule_blocks(repo_root: Path) -> dict[str, str]:
    return {m[1]: m[2] for smk in sorted((repo_root / "rules").glob("*.smk")) for m in RULE.finditer(smk.read_text())}


def test_every_rule_that_loads_the_generator_checks_it(repo_root):
    """A script that opens the generator also reads params.generator, which the rule passes."""
    checked = []
    for name, block in rule_blocks(repo_root).items():
        script = re.search(r'script:\n\s+"\.\./(workflow_scripts/\w+\.py)"', block)
        text = (repo_root / script[1]).read_text() if script else ""
        loads = "snakemake.input.generator" in text
        if not loads or name in NOT_THE_CONFIG_GENERATOR:
            continue
        assert "snakemake.params.generator" in text, f"{script[1]} does not check the generator against the config"
        assert "generator=get_generator_params()" in block, f"rule {name} does not pass the generator settings"
        checked.append(name)
    assert {
        "create_references",
        "create_variations",
        "render_crops",
        "render_edits",
        "merge_latents",
        "sample_grid",
        "project_shard",
        "train_encoder",
        "visible_subspace",
    } <= set(checked)


@pytest.mark.parametrize(
    "override, message",
    [
        ({"resolution": 256}, "generator resolution is 64 but the config says 256"),
        ({"kind": "stylegan2"}, "checkpoint holds a dcgan generator but the config says stylegan2"),
    ],
)
def test_load_generator_checks_what_it_is_told_to_expect(dcgan_path, override, message):
    with pytest.raises(InputFileError, match=message):
        load_generator(dcgan_path, expect=dcgan_settings(dcgan_path, **override))


def test_render_edits_checks_the_generator(repo_root, dcgan_path, tmp_path):
    with pytest.raises(InputFileError, match="w_dim is 100 but the config says 512"):
        run_script(
            repo_root,
            "render_edits",
            log=tmp_path / "log",
            output=[str(tmp_path / "e.png")],
            input=SimpleNamespace(generator=str(dcgan_path), latents="unused.h5", direction="unused.npy"),
            params=SimpleNamespace(
                n_sources=1, distances=[0.0], mode="absolute", generator=dcgan_settings(dcgan_path, w_dim=512)
            ),
            wildcards=SimpleNamespace(edit="smile"),
        )


def test_merge_latents_checks_the_generator(repo_root, dcgan_path, tmp_path, monkeypatch):
    import facelatent.projection.job

    monkeypatch.setattr(facelatent.projection.job, "merge_latent_shards", lambda *a: None)  # not the subject here
    with pytest.raises(InputFileError, match="resolution is 64 but the config says 128"):
        run_script(
            repo_root,
            "merge_latents",
            log=tmp_path / "log",
            input=SimpleNamespace(shards=[], aligned=[], index="x.tsv", generator=str(dcgan_path)),
            output=SimpleNamespace(latents="x.h5", grid="x.png"),
            params=SimpleNamespace(generator=dcgan_settings(dcgan_path, resolution=128)),
        )


def test_synthetic_jobs_check_the_generator(dcgan_path, tmp_path):
    from facelatent.synthetic.job import create_references

    with pytest.raises(InputFileError, match="resolution is 64 but the config says 1024"):
        create_references(
            generator=dcgan_path,
            run_cfg={"num_identities": 2},
            out_path=tmp_path / "references.h5",
            device="cpu",
            generator_settings=dcgan_settings(dcgan_path, resolution=1024),
        )


# ---- align.template ---------------------------------------------------------------------------------------


def test_align_template_selects_the_template(monkeypatch):
    from facelatent.align import job as align_job

    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (128, 128, 3), np.uint8)
    points = align_job.arcface_points(128) + rng.normal(0, 2, (5, 2))
    monkeypatch.setitem(align_job.TEMPLATES, "shifted", lambda size: align_job.arcface_points(size) + 4)
    arcface = align_job.align_from_points(image, points, align_job.AlignConfig(method="template", output_size=32))
    shifted = align_job.align_from_points(
        image, points, align_job.AlignConfig(method="template", output_size=32, template="shifted")
    )
    assert arcface.shape == shifted.shape == (32, 32, 3) and not np.array_equal(arcface, shifted)


def test_unknown_align_template_names_the_key():
    from facelatent.align.job import AlignConfig

    with pytest.raises(ConfigError, match="config key 'align.template': unknown template 'ffhq'"):
        AlignConfig(method="template", template="ffhq")


# ---- PCA directions get edit grids -----------------------------------------------------------------------------


def test_pca_directions_get_edit_grids(repo_root):
    config = yaml.safe_load((repo_root / "config" / "config.yaml").read_text())
    assert config["pca"]["components"] > 0
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "results/edits/pca_0.png", "--quiet", "rules"],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=180,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-2000:]
    assert re.search(r"^render_edits\s+1$", out, re.M) and re.search(r"^fit_pca\s+1$", out, re.M), out[-2000:]
