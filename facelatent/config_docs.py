"""The config key table of config/README.md, from the schema.

Regenerate with `python -m facelatent.config_docs config/schema.yaml config/README.md`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml


def rows(node: dict, prefix: str = "") -> list[tuple[str, str, str, str]]:
    out = []
    for name, sub in node.get("properties", {}).items():
        key = f"{prefix}{name}"
        kind = sub.get("type", "")
        kind = " or ".join(kind) if isinstance(kind, list) else kind
        if "enum" in sub:
            kind += " (" + " / ".join(map(str, sub["enum"])) + ")"
        default = json.dumps(sub.get("default"))
        out.append((key, kind, default, " ".join(str(sub.get("description", "")).split())))
        out += rows(sub, key + ".")
        if isinstance(sub.get("additionalProperties"), dict):
            out += rows(sub["additionalProperties"], key + ".<name>.")
    return out + kind_rows(node, prefix)


def kind_rows(node: dict, prefix: str) -> list[tuple[str, str, str, str]]:
    """Keys that one dataset kind takes (`allOf` branches `if: {kind: K}, then: ...`), marked with the kind."""
    out = []
    for branch in node.get("allOf", []):
        kind = branch["if"]["properties"]["kind"]["const"]
        out += [(key, t, d, f"kind {kind} only: {m}") for key, t, d, m in rows(branch["then"], prefix)]
    return out


def key_table(schema_path: str | Path) -> str:
    schema = yaml.safe_load(Path(schema_path).read_text())
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    lines += [f"| `{k}` | {t} | `{d}` | {m.replace('|', '/')} |" for k, t, d, m in rows(schema)]
    return "\n".join(lines) + "\n"


MARKER = "## Every key"


def update_readme(readme: str | Path, schema_path: str | Path) -> None:
    """Replace the generated part of config/README.md (a blank line after the marker's paragraph, then the table)."""
    readme = Path(readme)
    head, _, tail = readme.read_text().partition(MARKER)
    intro = tail.split("| key |")[0].rstrip("\n")
    readme.write_text(head + MARKER + intro + "\n\n" + key_table(schema_path))


if __name__ == "__main__":
    schema = sys.argv[1] if len(sys.argv) > 1 else "config/schema.yaml"
    if len(sys.argv) > 2:
        update_readme(sys.argv[2], schema)
    else:
        sys.stdout.write(key_table(schema))
