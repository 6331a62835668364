"""The house rules (STYLE.md): one folder per stage, each naming its files; the top level holds shared modules only."""

from __future__ import annotations

import ast

# modules two or more stages import (ARCHITECTURE.md's list), the entry points, and the config docs generator
TOP_LEVEL = {
    "__init__", "__main__", "cli", "rulekit", "config", "config_docs", "errors", "paths", "store", "latents",
    "images", "figures", "grids", "checkpoints", "pickle_safe", "fetch", "download", "devices",
}  # fmt: skip
STAGES = {
    "align", "au", "datasets", "demo_data", "detect", "directions", "embeddings", "generators", "projection",
    "synthetic",
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
