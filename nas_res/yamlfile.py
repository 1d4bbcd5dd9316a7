"""Reading a user's YAML (or JSON) file: every way it can fail is one message naming the file.

What a real file never needs is refused while the file is parsed, before anything else reads it:
- an alias bomb: a few lines of nested anchors and aliases (`&a [*a, *a, ...]`) stand for billions of
  values, which whatever walks the document (a check, a report, JSON output) would expand. The loader
  counts every value as if each alias were written out and stops at `MAX_VALUES`, at the line where
  the count passed it, so a bomb is refused in milliseconds; an alias inside the node it names (a loop)
  is refused too. The built-in experiments share arch descriptions through anchors (`&net34`,
  `<<: *net34`): aliases as such are fine.
- a key given twice in one mapping (PyYAML keeps the last silently, so an arm defined twice ran once):
  one message naming the key and both lines. A merge (`<<: *base`) followed by a key of the base is
  an override, not a duplicate.
- nesting deeper than `MAX_DEPTH`.

This module imports no torch (nor anything that does), so a command can refuse a broken file before
it pays for importing its machinery.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .errors import ResnasError, a

MAX_BYTES = 1 << 20  # templates, arch, recipe and study files are a few KB; /dev/zero is not one
MAX_VALUES = 100_000  # values (scalars, lists, mappings) with aliases written out; a built-in file holds < 2,000
MAX_DEPTH = 64  # mappings and lists within each other; a built-in file nests < 10
MERGE = "tag:yaml.org,2002:merge"


class _Refused(Exception):
    """What the loader refuses; `read_yaml` names the file."""


class _Loader(yaml.SafeLoader):
    """`yaml.SafeLoader` that counts what it composes (see the module's docstring)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._sizes: dict[int, int] = {}  # id(node) -> values in it with aliases written out
        self._depth = 0
        self._aliases: list[str] = []  # the alias names met, for the message

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            node = self.anchors.get(event.anchor)
            if node is not None and id(node) not in self._sizes:  # the anchor's node is still being composed
                raise _Refused(
                    f"line {event.start_mark.line + 1}: alias *{event.anchor} is inside the node it names "
                    "(a loop that never ends when written out)"
                )
            if event.anchor not in self._aliases:
                self._aliases.append(event.anchor)
            return super().compose_node(parent, index)  # the anchored node, counted where it is used
        self._depth += 1
        if self._depth > MAX_DEPTH:
            line = self.peek_event().start_mark.line + 1
            raise _Refused(f"line {line}: nested too deeply (more than {MAX_DEPTH} levels)")
        node = super().compose_node(parent, index)
        self._depth -= 1
        size = 1
        if isinstance(node, SequenceNode):
            size += sum(self._sizes[id(item)] for item in node.value)
        elif isinstance(node, MappingNode):
            size += sum(self._sizes[id(k)] + self._sizes[id(v)] for k, v in node.value)
            self._check_keys(node)
        if size > MAX_VALUES:
            written_out = (
                f" with its aliases written out ({', '.join('*' + a for a in self._aliases[:3])}"
                f"{', ...' if len(self._aliases) > 3 else ''})"
                if self._aliases
                else ""
            )
            raise _Refused(
                f"line {node.start_mark.line + 1}: holds more than {MAX_VALUES:,} values{written_out}; "
                "a real file holds a few hundred"
            )
        self._sizes[id(node)] = size
        return node

    def _check_keys(self, node: MappingNode) -> None:
        """A key that appears twice in one mapping (as its value: `1` and `0x1` are the same key)."""
        seen: dict[Any, ScalarNode] = {}
        for key, _ in node.value:
            if not isinstance(key, ScalarNode) or key.tag == MERGE:
                continue  # a list or mapping as a key is the constructor's error; merges may override
            value = self.construct_object(key)
            try:
                first = seen.get(value)
            except TypeError:  # unhashable: the constructor says so
                continue
            if first is None:
                seen[value] = key
            else:
                lines = (first.start_mark.line + 1, key.start_mark.line + 1)
                if first.value == key.value:
                    where = f"lines {lines[0]} and {lines[1]}" if lines[0] != lines[1] else f"line {lines[0]}"
                    raise _Refused(f"key {key.value!r} appears twice ({where})")
                raise _Refused(
                    f"key {key.value!r} (line {lines[1]}) is the same key as {first.value!r} (line {lines[0]})"
                )


def parse_yaml(text: str, where: str, what: str = "file") -> Any:
    """The document in `text` (JSON is YAML too), loaded safely with the checks above; every failure is
    one `ResnasError` naming `where`."""
    loader = None
    try:
        loader = _Loader(text)  # its reader refuses control characters at once
        return loader.get_single_data()
    except _Refused as err:
        raise ResnasError(f"not a usable {what}: {err}", where=where) from None
    except yaml.YAMLError as err:
        raise ResnasError(f"not valid YAML: {_yaml_error(err)}", where=where) from None
    except RecursionError:
        raise ResnasError(f"not a usable {what}: YAML nested too deeply", where=where) from None
    finally:
        if loader is not None:
            loader.dispose()


def _yaml_error(err: yaml.YAMLError) -> str:
    """PyYAML's error on one line: where and what, then what it was reading (its own text names the
    stream "<unicode string>" and draws a caret under a copy of the line)."""
    if isinstance(err, yaml.reader.ReaderError):
        return f"character {err.position + 1}: {err.reason} (#x{err.character:04x})"
    if not isinstance(err, yaml.MarkedYAMLError) or err.problem_mark is None:
        return " ".join(str(err).split())
    mark = err.problem_mark
    text = f"line {mark.line + 1}, column {mark.column + 1}: {err.problem}"
    if err.context:
        start = err.context_mark
        at = f" at line {start.line + 1}, column {start.column + 1}" if start is not None else ""
        text += f" ({err.context}{at})"
    return " ".join(text.split())


def read_yaml(path: str | Path, what: str = "file") -> Any:
    """`parse_yaml` of the file, read up to `MAX_BYTES`; `what` names the kind of file in messages."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
        if len(raw) > MAX_BYTES:
            raise ResnasError(
                f"more than {MAX_BYTES >> 20} MiB; {a(what)} is a short YAML text (is this the right file?)",
                where=str(path),
            )
        text = raw.decode("utf-8")
    except OSError as err:
        raise ResnasError(f"cannot read {what} ({err.strerror or err})", where=str(path)) from None
    except UnicodeDecodeError as err:
        raise ResnasError(
            f"not a text file: byte {err.start} is not UTF-8; {a(what)} is YAML text", where=str(path)
        ) from None
    return parse_yaml(text, str(path), what)


def parse_stored_json(text: str | bytes, where: str) -> Any:
    """JSON that resnas wrote and reads back (a study's config in its database): a damaged or
    tampered value (not JSON, a key twice, nested too deeply) is one `ResnasError` naming `where`."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for k, v in items:
            if k in d:
                raise ValueError(f"key {k!r} appears twice")
            d[k] = v
        return d

    try:
        return json.loads(text, object_pairs_hook=pairs)
    except RecursionError:
        raise ResnasError("damaged: its stored JSON is nested too deeply", where=where) from None
    except ValueError as err:  # json.JSONDecodeError is one
        raise ResnasError(f"damaged: its stored JSON is not usable ({err})", where=where) from None
