"""A package's public names, imported on first use (PEP 562), so that importing one light module
(`nas_res.yamlfile`, `nas_res.errors`) does not import torch, Optuna and SciPy through the package's
`__init__`: a command can refuse a broken file in a fraction of a second.

`nas_res.search.plan` and `nas_res.results.export` are functions that share their names with
modules; the import system binds a module to its name in the package when it first imports it,
which would hide the function. A lazy package keeps the name for the function (the module stays
reachable through `sys.modules` and `from nas_res.search.plan import ...`), as eager imports did.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any


class _LazyPackage(types.ModuleType):
    _lazy_names: dict[str, str]  # public name -> module that defines it
    _lazy_modules: dict[str, str]  # public name -> module that is it

    def __getattr__(self, name: str) -> Any:
        names, modules = self.__dict__.get("_lazy_names", {}), self.__dict__.get("_lazy_modules", {})
        if name in modules:
            value: Any = importlib.import_module(modules[name], self.__name__)
        elif name in names:
            value = getattr(importlib.import_module(names[name], self.__name__), name)
        else:
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        self.__dict__[name] = value
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        lazy = self.__dict__.get("_lazy_names", {})
        if isinstance(value, types.ModuleType) and name in lazy:
            return  # the import system binding the submodule `name`: the public name is what its module defines
        super().__setattr__(name, value)

    def __dir__(self) -> list[str]:
        lazy = set(self.__dict__.get("_lazy_names", {})) | set(self.__dict__.get("_lazy_modules", {}))
        return sorted(set(super().__dir__()) | lazy)


def export_lazily(package: str, names: dict[str, str], modules: dict[str, str] | None = None) -> None:
    """Make the package `package` (its `__name__`) resolve each of `names` (public name -> the module
    defining it, relative as `.arch.cost`) and of `modules` (public name -> the module it stands for)
    when it is first used."""
    module = sys.modules[package]
    module.__class__ = _LazyPackage
    module.__dict__["_lazy_names"] = dict(names)
    module.__dict__["_lazy_modules"] = dict(modules or {})
