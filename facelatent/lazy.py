"""Lazy re-exports for the stage packages (PEP 562), so that importing one light module of a stage (what the
Snakefile does while it builds the DAG) does not import torch through the stage's `__init__`."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], object], Callable[[], list]]:
    """Module `__getattr__` and `__dir__` for `package` that import `exports[name]` (a module) on first use."""

    def __getattr__(name: str) -> object:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(exports[name]), name)

    def __dir__() -> list:
        return sorted(exports)

    return __getattr__, __dir__


def exports_of(modules: Mapping[str, tuple[str, ...]]) -> dict[str, str]:
    """{name: module} from {module: names}, the form the stage `__init__`s list their re-exports in."""
    return {name: module for module, names in modules.items() for name in names}
