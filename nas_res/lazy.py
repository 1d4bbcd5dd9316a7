"""A package's public names, imported on first use (PEP 562), so that importing one light module
(`nas_res.yamlfile`, `nas_res.errors`) does not import torch, Optuna and SciPy through the package's
`__init__`: a command can refuse a broken file in a fraction of a second.

`nas_res.cost` and `nas_res.train` are functions that share their names with modules (as
`nas_res.search.plan` and `nas_res.results.export`); the import system binds a module to its name in
the package when it first imports it, which would hide the function. A lazy package keeps the name
for the function (the module stays reachable as `sys.modules["nas_res.cost"]` and through
`from nas_res.cost import ...`), as the eager imports did.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any


class _LazyPackage(types.ModuleType):
    _lazy_names: dict[str, str]  # public name -> module that defines it ("" for a submodule of that name)

    def __getattr__(self, name: str) -> Any:
        source = self.__dict__.get("_lazy_names", {}).get(name)
        if source is None:
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        if source == "":
            value: Any = importlib.import_module(f"{self.__name__}.{name}")
        else:
            value = getattr(importlib.import_module(source, self.__name__), name)
        self.__dict__[name] = value
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        names = self.__dict__.get("_lazy_names", {})
        if isinstance(value, types.ModuleType) and names.get(name):
            return  # the import system binding the module `name`; the public name is what its module defines
        super().__setattr__(name, value)

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self.__dict__.get("_lazy_names", {})))


def export_lazily(package: str, names: dict[str, str]) -> None:
    """Make the package `package` (its `__name__`) resolve each of `names` (public name -> the module
    defining it, relative as `.arch`, or "" for the submodule of that name) when it is first used."""
    module = sys.modules[package]
    module.__class__ = _LazyPackage
    module.__dict__["_lazy_names"] = dict(names)
