"""The top-level command group, whose commands' modules are imported only when used.

Startup cost: a command reads and checks the user's file before it imports torch, Optuna or SciPy
(seconds, hundreds of MB), so a typo is refused at once. Two rules keep it so: a command's module is
imported only when that command runs (or --help lists it), and a command imports its machinery in its
body, after the checks that need none (tests/test_yamlfile.py holds them to it).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping

import typer
from typer.core import TyperGroup

from .common import reflow_help

# name -> (module, attribute): a command function, or a Typer app for a group; listed as --help lists them
LAZY = {
    "train": (".train", "train_cmd"),
    "evaluate": (".evaluate", "evaluate_cmd"),
    "search": (".search", "search_cmd"),
    "worker": (".search", "worker_cmd"),
    "finalize": (".finalize", "finalize_cmd"),
    "fidelity": (".finalize", "fidelity_cmd"),
    "studies": (".reports", "studies_cmd"),
    "leaderboard": (".reports", "leaderboard_cmd"),
    "compare": (".reports", "compare_cmd"),
    "plot": (".reports", "plot_cmd"),
    "refine": (".refine", "refine_cmd"),
    "latency": (".latency", "latency_cmd"),
    "export": (".reports", "export_cmd"),
    "gradients": (".gradients", "gradients_cmd"),
    "activations": (".activations", "activations_cmd"),
}
LAZY_GROUPS = {"study": (".study", "study_app"), "experiment": (".experiment", "experiment_app")}


class _Commands(MutableMapping):
    """The top-level commands: those main.py defines, and those of `LAZY` and `LAZY_GROUPS`, made when
    first looked up (Typer's group reads its commands through this mapping only)."""

    def __init__(self, defined: MutableMapping) -> None:
        self.made = dict(defined)

    def _names(self) -> list[str]:
        defined = [n for n in self.made if n not in LAZY and n not in LAZY_GROUPS]
        return [*LAZY, *defined, *LAZY_GROUPS]

    def __getitem__(self, name: str):
        if name not in self.made:
            if name not in LAZY and name not in LAZY_GROUPS:
                raise KeyError(name)
            module, attr = LAZY.get(name) or LAZY_GROUPS[name]
            found = getattr(importlib.import_module(module, __package__), attr)
            one = typer.Typer(add_completion=False)
            if isinstance(found, typer.Typer):
                one.add_typer(found, name=name)
            else:
                one.command(name)(found)
            reflow_help(one)
            self.made[name] = typer.main.get_group(one).commands[name]
        return self.made[name]

    def __setitem__(self, name: str, command) -> None:
        self.made[name] = command

    def __delitem__(self, name: str) -> None:
        del self.made[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())


class LazyGroup(TyperGroup):
    """Typer's group over `_Commands`: `typer.Typer(cls=LazyGroup)`."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.commands = _Commands(self.commands)
