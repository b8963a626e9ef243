"""Names of a package loaded on first use (PEP 562), so that importing a light
part of a package never pulls in its heavy parts (torch, pandas, solvers)."""
from __future__ import annotations

import importlib
from typing import Callable


def lazy_exports(package: str, namespace: dict, exports: dict[str, str]) -> Callable[[str], object]:
    """A module ``__getattr__`` for ``package``: ``exports`` maps a public name
    to the module (absolute, or relative to ``package`` with a leading dot)
    that defines it; the value is cached in ``namespace`` on first use."""

    def __getattr__(name: str):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name], package), name)
        namespace[name] = value
        return value

    return __getattr__
