"""The shape of the code, kept: no import cycles (function-level and `TYPE_CHECKING` imports count), imports
point down the layers only (the CLI at the top, the shared helpers at the bottom), and no module over 400
lines.

Imports are read from the source with `ast`, so the test needs nothing installed and sees every import,
including those that only run on one path.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("nas_res", "cli")
MAX_LINES = 400
STATED = 320  # past this (about 300), a module's docstring says why it is one module: "Over 300 lines: ..."
# Each layer imports only from layers below it: cli -> nas_res (the public names) -> api -> experiments ->
# search -> latency -> results -> inspect -> training -> space -> arch and data (independent of each other) -> the
# shared helpers (files, lazy, memory, version, yamlfile) -> errors.
LAYERS = [
    {"cli"},
    {"nas_res"},
    {"api"},
    {"experiments"},
    {"search"},
    {"latency"},
    {"results"},
    {"inspect"},
    {"training"},
    {"space"},
    {"arch", "data"},
    {"files", "lazy", "memory", "version", "yamlfile"},
    {"errors"},
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


def imported(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The project modules `name` imports anywhere in its file (`from . import x` names module x)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import a.b.c` imports a.b.c; an attribute is its module
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    known = modules()
    edges = {name: imported(name, path, known) for name, path in known.items()}
    for name in edges:  # a package's __init__ runs before its modules: not an edge of theirs
        edges[name] = {t for t in edges[name] if not name.startswith(t + ".")}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_imports_are_read_from_every_place(tmp_path):
    source = "from .b import x\nif TYPE_CHECKING:\n    from . import c\ndef f():\n    import p.d\n"
    (tmp_path / "m.py").write_text(source)
    known = {"p.m": tmp_path / "m.py", "p.b": Path(), "p.c": Path(), "p.d": Path(), "p": Path()}
    assert imported("p.m", tmp_path / "m.py", known) == {"p", "p.b", "p.c", "p.d"}


def test_no_import_cycles():
    found = cycles(graph())
    assert not found, "import cycles (break each by moving the shared piece down a layer):\n" + "\n".join(
        " <-> ".join(c) for c in found
    )


def part(module: str) -> str:
    """The layer's member a module belongs to: `cli`, `nas_res` (the package itself) or nas_res's
    subpackage or top-level module (`arch`, `search`, `errors`, ...)."""
    parts = module.split(".")
    if parts[0] == "cli" or parts[:2] == ["nas_res", "cli"]:
        return "cli"
    return parts[1] if len(parts) > 1 else "nas_res"


def rank(module: str) -> int:
    member = part(module)
    return next(i for i, layer in enumerate(LAYERS) if member in layer)


def test_every_module_has_a_layer():
    for name in modules():
        rank(name)  # StopIteration: a new subpackage or top-level module needs its place in LAYERS


def test_imports_point_down_the_layers():
    wrong = sorted(
        f"{name} imports {target}"
        for name, targets in graph().items()
        for target in targets
        if part(name) != part(target) and rank(target) <= rank(name)
    )
    assert not wrong, "imports that go up or across the layers (see LAYERS):\n" + "\n".join(wrong)


def test_no_module_over_400_lines():
    sizes = {name: len(path.read_text().splitlines()) for name, path in modules().items()}
    over = sorted(f"{name}: {n} lines" for name, n in sizes.items() if n > MAX_LINES)
    assert not over, f"over {MAX_LINES} lines (split each along a seam): {over}"


def test_a_long_module_says_why_it_is_one():
    unstated = sorted(
        f"{name}: {n} lines"
        for name, path in modules().items()
        if (n := len(path.read_text().splitlines())) > STATED
        and "Over 300 lines:" not in (ast.get_docstring(ast.parse(path.read_text())) or "")
    )
    assert not unstated, f"over {STATED} lines without 'Over 300 lines: <why>' in the docstring: {unstated}"
