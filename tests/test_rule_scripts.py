"""Every rule script is an adapter: its log, its threads, and one call of the job named after its rule, with
every argument named and read off `snakemake.*` (STYLE.md: "no logic beyond that adapter")."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RULE = re.compile(r"^(?:rule|checkpoint) (\w+):\n((?:[ \t]+.*\n|\n)+)", re.M)
SCRIPT = re.compile(r'^[ \t]+script:\n[ \t]+"\.\./(workflow_scripts/\w+\.py)"', re.M)
SNAKEMAKE_FIELDS = {"input", "output", "params", "wildcards", "threads"}


def rule_scripts() -> dict[str, str]:
    """rule name -> its script, for every rule or checkpoint with a `script:` in rules/*.smk."""
    found = {}
    for smk in sorted((REPO / "rules").glob("*.smk")):
        for match in RULE.finditer(smk.read_text()):
            script = SCRIPT.search(match[2])
            if script:
                found[match[1]] = script[1]
    return found


RULE_SCRIPTS = rule_scripts()


def call_of(statement: ast.stmt) -> ast.Call:
    assert isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call), ast.unparse(statement)
    return statement.value


def reads_only_snakemake(value: ast.expr) -> bool:
    """True when the expression reads the `snakemake` object only: snakemake.input.x, snakemake.output[0],
    snakemake.input.get("x", []), snakemake.threads (literals allowed as subscripts and .get arguments)."""
    names = [node for node in ast.walk(value) if isinstance(node, ast.Name)]
    if not names or any(node.id != "snakemake" for node in names):
        return False
    for node in ast.walk(value):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.attr not in SNAKEMAKE_FIELDS:
                return False
        if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Attribute) and node.func.attr == "get"):
            return False
    return True


def test_every_rule_has_a_script_and_every_script_a_rule():
    assert len(RULE_SCRIPTS) >= 25, RULE_SCRIPTS
    used = {Path(script).name for script in RULE_SCRIPTS.values()}
    on_disk = {path.name for path in (REPO / "workflow_scripts").glob("*.py")}
    assert used == on_disk, (on_disk - used, used - on_disk)
    for rule, script in RULE_SCRIPTS.items():
        assert Path(script).stem == rule, f"rule {rule} runs {script}: one script per rule, named after it"


@pytest.mark.parametrize("rule", sorted(RULE_SCRIPTS))
def test_script_is_one_keyword_call_of_the_rules_job(rule):
    path = REPO / RULE_SCRIPTS[rule]
    tree = ast.parse(path.read_text(), filename=str(path))
    body = list(tree.body)

    # docstring, then imports from facelatent only
    assert ast.get_docstring(tree), f"{path.name}: no docstring"
    body.pop(0)
    imported: dict[str, str] = {}
    while body and isinstance(body[0], (ast.Import, ast.ImportFrom)):
        statement = body.pop(0)
        assert isinstance(statement, ast.ImportFrom) and statement.module.startswith("facelatent."), (
            f"{path.name}: only `from facelatent.<module> import ...` here, found {ast.unparse(statement)}"
        )
        imported.update({alias.asname or alias.name: statement.module for alias in statement.names})

    # the log, the threads where the rule uses them, then exactly one call: the job
    calls = [call_of(statement) for statement in body]
    names = [call.func.id if isinstance(call.func, ast.Name) else ast.unparse(call.func) for call in calls]
    assert names[0] == "setup_rule_logging" and ast.unparse(calls[0].args[0]) == "snakemake.log[0]", path.name
    if names[1] == "set_threads":
        assert ast.unparse(calls[1]) == "set_threads(snakemake.threads)", path.name
    assert names[-1] == rule and len(names) == (3 if names[1] == "set_threads" else 2), (
        f"{path.name}: expected setup_rule_logging, [set_threads,] {rule}(...); found {names}"
    )
    assert (
        imported.get("setup_rule_logging") == imported.get("set_threads", "facelatent.rulekit") == "facelatent.rulekit"
    )

    # the job: imported from the stage's job.py (or the fetcher), every argument named and read off snakemake
    module = imported.get(rule, "")
    assert module.endswith(".job") or module == "facelatent.fetch", f"{path.name}: {rule} comes from '{module}'"
    job_call = calls[-1]
    assert not job_call.args, f"{path.name}: positional arguments {[ast.unparse(a) for a in job_call.args]}"
    assert all(keyword.arg for keyword in job_call.keywords), f"{path.name}: ** arguments"
    for keyword in job_call.keywords:
        assert reads_only_snakemake(keyword.value), f"{path.name}: {keyword.arg}={ast.unparse(keyword.value)}"

    # the keywords fit the job's signature (a typo would otherwise surface only when the rule runs)
    job = getattr(importlib.import_module(module), rule)
    params = inspect.signature(job).parameters
    given = {keyword.arg for keyword in job_call.keywords}
    assert given <= set(params), f"{path.name}: {sorted(given - set(params))} are not parameters of {module}.{rule}"
    required = {
        name
        for name, p in params.items()
        if p.default is inspect.Parameter.empty and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    }
    assert required <= given, f"{path.name}: {module}.{rule} needs {sorted(required - given)}"
    assert inspect.getdoc(job), f"{module}.{rule} has no docstring"
    assert all(p.annotation is not inspect.Parameter.empty for p in params.values()), f"{module}.{rule}: type hints"
