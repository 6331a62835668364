"""The house rules (STYLE.md): one folder per stage, each naming its files; the top level holds shared modules only."""

from __future__ import annotations

import ast
import re
import subprocess
import sys

# modules two or more stages import (ARCHITECTURE.md's list), the entry points, and the config docs generator
TOP_LEVEL = {
    "__init__", "__main__", "cli", "rulekit", "config", "config_docs", "errors", "paths", "store", "latents",
    "images", "figures", "grids", "checkpoints", "pickle_safe", "fetch", "download", "devices", "lazy",
}  # fmt: skip
STAGES = {
    "align", "attributes", "au", "datasets", "demo_data", "detect", "directions", "embeddings", "fr", "generators",
    "judge", "projection", "synthetic",
}  # fmt: skip


def test_top_level_holds_only_shared_modules(repo_root):
    package = repo_root / "facelatent"
    modules = {p.stem for p in package.glob("*.py")}
    assert modules <= TOP_LEVEL, (
        f"new top-level modules {sorted(modules - TOP_LEVEL)}: put them in their stage's folder"
    )
    folders = {p.name for p in package.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders == STAGES, f"stage folders changed: {sorted(folders ^ STAGES)} (update STYLE.md and this test)"


def test_stages_are_one_level_deep_and_name_their_files(repo_root):
    for stage in sorted(STAGES):
        folder = repo_root / "facelatent" / stage
        nested = [p.name for p in folder.iterdir() if p.is_dir() and p.name != "__pycache__"]
        assert not nested, f"facelatent/{stage}/ nests {nested}: stages are one level deep"
        doc = ast.get_docstring(ast.parse((folder / "__init__.py").read_text())) or ""
        unnamed = [p.name for p in sorted(folder.glob("*.py")) if p.name != "__init__.py" and f"`{p.name}`" not in doc]
        assert not unnamed, f"facelatent/{stage}/__init__.py's docstring does not name {unnamed}"


def test_building_the_dag_imports_neither_torch_nor_opencv(repo_root):
    """Every Snakemake job on a cluster parses the Snakefile twice; torch there cost about 2.5 s per parse."""
    rule_files = [repo_root / "Snakefile", *sorted((repo_root / "rules").glob("*.smk"))]
    modules = sorted(
        {m for f in rule_files for m in re.findall(r"^from (facelatent[\w.]*) import", f.read_text(), re.M)}
    )
    assert modules, "the rule files import nothing from facelatent: this test lost its subject"
    code = f"import sys\nfor m in {modules!r}: __import__(m)\nprint(sorted({{'torch', 'cv2'}} & set(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=repo_root)
    assert loaded.stdout.strip() == "[]", f"importing {modules} loads {loaded.stdout.strip()}"
