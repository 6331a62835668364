"""The workflow itself: lint-clean, snakefmt-clean, and a dry run that lists every implemented rule."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def run(repo_root: Path, *args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=repo_root, capture_output=True, text=True,
                          timeout=timeout)


def test_lint_is_clean(repo_root):
    proc = run(repo_root, "--lint")
    assert "Congratulations, your workflow is in a good condition!" in proc.stdout + proc.stderr, proc.stdout[-3000:]


def test_snakefmt_check(repo_root):
    snakefmt = shutil.which("snakefmt") or str(Path(sys.executable).parent / "snakefmt")
    proc = subprocess.run([snakefmt, "--check", "Snakefile", "rules/"], cwd=repo_root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_every_rule_has_a_log(repo_root):
    for smk in (repo_root / "rules").glob("*.smk"):
        text = smk.read_text()
        for block in re.split(r"\n(?=(?:rule|checkpoint) )", text)[1:]:
            name = block.split(":")[0]
            if name.split()[1] == "all":
                continue
            assert "\n    log:" in block, f"{smk.name}: {name} has no log"
            assert "\n    threads:" in block and "mem_mb=" in block and "runtime=" in block, f"{name} lacks resources"
            if "gpu=1" in block:
                assert "\n    benchmark:" in block, f"{name} is a GPU rule without benchmark"


def test_report_targets_in_rules(repo_root):
    text = "".join(p.read_text() for p in (repo_root / "rules").glob("*.smk"))
    for target in ("faces_grid.png", "preview.png", "reconstructions.png", "results/edits/{name}.png",
                   "metrics.json", "verification.json"):
        assert re.search(r"report\(\s*\n?\s*\"[^\"]*" + re.escape(target), text), target


@pytest.mark.parametrize("rule", ["make_demo_data", "sample_grid", "index_dataset", "align_report", "merge_latents",
                                  "fit_direction", "visible_subspace", "fit_pca", "render_edits", "train_au_classifier",
                                  "embed_dataset", "create_references", "create_variations", "merge_samples",
                                  "plot_synthetic", "render_crops", "export_synthetics"])
def test_dry_run_lists_rule(repo_root, rule, tmp_path_factory):
    cache = tmp_path_factory.getbasetemp() / "dry_run.txt"
    if not cache.exists():
        proc = run(repo_root, "-n", "--forceall", "--quiet", "rules")
        assert proc.returncode == 0, proc.stderr[-3000:]
        cache.write_text(proc.stdout + proc.stderr)
    assert re.search(rf"^{rule}\s+\d+", cache.read_text(), re.M), f"{rule} missing from the dry run"
