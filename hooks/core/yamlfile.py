"""YAML files validated by a JSON Schema, with errors that name the file, line and key."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

from hooks.core.exceptions import ConfigError
from hooks.core.validators import built_validator

__all__ = [
    "MAX_EXPANDED_NODES",
    "Document",
    "compiled_schema",
    "line_of",
    "load_document",
    "load_yaml",
    "located",
    "validate",
]

Validator = Callable[[Any], Any]
#: How many values aliases may add to a file beyond what it writes out ("billion laughs"):
#: a document may expand to at most this many values or twice its own size.
MAX_EXPANDED_NODES = 100_000
#: Counting stops past this many values (the file is refused before).
_COUNT_LIMIT = 10_000_000


class Document(NamedTuple):
    """A parsed YAML file: its data, its text, and the line of each item of each top-level
    list (``item_lines["checks"][3]``: the line of the fourth check)."""

    data: Any
    text: str
    item_lines: dict[str, list[int]]


def load_yaml(path: Path) -> tuple[Any, str]:
    """Parse ``path`` safely; a syntax error names the file and line."""
    document = load_document(path)
    return document.data, document.text


def load_document(path: Path) -> Document:
    """Parse ``path`` safely, one item of each top-level list at a time.

    A file of ten thousand checks never exists as one tree of YAML nodes (each with two
    source marks: ~5 KB a check); each item is composed, measured for alias expansion and
    turned into data on its own. A syntax error names the file and line.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text: {exc}") from exc
    loader = _StreamLoader(text)
    try:
        data, lines = loader.load()
    except _Expands:
        data, lines = None, {}
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: YAML syntax error: {exc.problem or exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: YAML error: {exc}") from exc
    finally:
        loader.dispose()
    size, distinct = loader.size, loader.distinct
    allowed = max(MAX_EXPANDED_NODES, 2 * distinct)
    if size > allowed:
        raise ConfigError(
            f"{path}: the document expands to more than {allowed:,} values "
            f"through its aliases (&anchors and *references); it writes out {distinct:,}"
        )
    return Document(data, text, lines)


try:  # libyaml's parser when it is there; the composition is PyYAML's own either way
    from yaml._yaml import CParser as _Parser
except ImportError:  # pragma: no cover - PyYAML without libyaml

    class _Parser(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser):  # type: ignore[no-redef]
        def __init__(self, stream: str) -> None:
            yaml.reader.Reader.__init__(self, stream)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)


class _StreamLoader(_Parser, Composer, SafeConstructor, Resolver):
    """Safe loading that composes and constructs the top level's lists item by item."""

    def __init__(self, text: str) -> None:
        _Parser.__init__(self, text)
        Composer.__init__(self)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)
        self.anchors: _Anchors = _Anchors()
        #: Expanded sizes of anchored nodes (alive for the whole document) by id.
        self.shared: dict[int, int] = {}
        #: Values written out, and values with every alias followed.
        self.distinct = 0
        self.size = 0

    # Composer's (Python) composition over the parser's events, not libyaml's whole tree.
    def _node(self, parent: Any = None, index: Any = None) -> Any:
        return Composer.compose_node(self, parent, index)

    compose_scalar_node = Composer.compose_scalar_node
    compose_sequence_node = Composer.compose_sequence_node
    compose_mapping_node = Composer.compose_mapping_node
    compose_node = _node

    def _event(self) -> Any:
        return self.get_event()

    def _peek(self) -> Any:
        return self.peek_event()

    def load(self) -> tuple[Any, dict[str, list[int]]]:
        self._event()  # StreamStart
        if self.check_event(yaml.StreamEndEvent):
            return None, {}
        self._event()  # DocumentStart
        lines: dict[str, list[int]] = {}
        start = self._peek()
        if isinstance(start, yaml.MappingStartEvent) and start.anchor is None and start.implicit:
            data = self._top_mapping(lines)
        else:
            data = self._whole(self._node())
        self._event()  # DocumentEnd
        if not self.check_event(yaml.StreamEndEvent):
            raise yaml.composer.ComposerError(
                "expected a single document in the stream",
                None,
                "but found another document",
                self._event().start_mark,
            )
        self._event()  # StreamEnd
        return data, lines

    def _top_mapping(self, lines: dict[str, list[int]]) -> Any:
        start = self._event()
        node = yaml.MappingNode("tag:yaml.org,2002:map", [], start.start_mark, None)
        lists: dict[str, list[Any]] = {}
        while not self.check_event(yaml.MappingEndEvent):
            key = self._node(node)
            begin: Any = self._peek()
            if (
                isinstance(key, yaml.ScalarNode)
                and isinstance(begin, yaml.SequenceStartEvent)
                and begin.anchor is None
                and begin.implicit
            ):
                self._event()
                items, at = [], []
                while not self.check_event(yaml.SequenceEndEvent):
                    item = self._node()
                    at.append(item.start_mark.line + 1)
                    items.append(self._whole(item))
                end = self._event()
                opened: Any = begin.start_mark
                placeholder = yaml.SequenceNode("tag:yaml.org,2002:seq", [], opened, end.end_mark)
                node.value.append((key, placeholder))
                lists[key.value] = items
                lines[key.value] = at
                self._measure(key)
                continue
            value = self._node(node, key)
            node.value.append((key, value))
            if isinstance(value, yaml.SequenceNode):
                lines[str(key.value)] = [item.start_mark.line + 1 for item in value.value]
            self._measure(key)
            self._measure(value)
        self._event()
        data = self.construct_document(node)
        if isinstance(data, dict):
            for name, items in lists.items():
                if name in data:  # the key itself, not one a merge (<<) brought
                    data[name] = items
        return data

    def _whole(self, node: Any) -> Any:
        self._measure(node)
        return self.construct_document(node)

    def _measure(self, node: Any) -> None:
        """Count ``node``'s values with every alias followed (each shared node once), before
        it is turned into data."""
        local: dict[int, int] = {}
        shared = len(self.shared)
        self.size += _expanded_size(node, local, self.shared, self.anchors.ids)
        self.distinct += len(local) + len(self.shared) - shared
        if self.size > max(_COUNT_LIMIT, 2 * self.distinct):
            raise _Expands


class _Expands(Exception):
    """Past counting: the document is refused without constructing the rest."""


class _Anchors(dict[Any, yaml.Node]):
    """The composer's anchors, and the ids of their nodes (each stays alive with it)."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[int] = set()

    def __setitem__(self, key: Any, node: yaml.Node) -> None:
        self.ids.add(id(node))
        super().__setitem__(key, node)


def _expanded_size(
    node: yaml.Node, local: dict[int, int], shared: dict[int, int], anchored: set[int]
) -> int:
    """Nodes under ``node`` with every alias followed; each shared node is counted once."""
    key = id(node)
    known = shared.get(key, local.get(key))
    if known is not None:
        return known
    memo = shared if key in anchored else local
    memo[key] = _COUNT_LIMIT  # a cycle counts as too large
    total = 1
    if isinstance(node, yaml.SequenceNode):
        for item in node.value:
            total += _expanded_size(item, local, shared, anchored)
            if total > _COUNT_LIMIT:
                break
    elif isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            total += _expanded_size(k, local, shared, anchored)
            total += _expanded_size(v, local, shared, anchored)
            if total > _COUNT_LIMIT:
                break
    memo[key] = total
    return total


def line_of(text: str, keys: Sequence[str | int]) -> int | None:
    """The 1-based line of the key (or list item) at ``keys``, as deep as it exists."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    if node is None:
        return None
    line: int = node.start_mark.line + 1
    for key in keys:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == str(key)), None)
            if match is None:
                return line
            line, node = match[0].start_mark.line + 1, match[1]
        elif isinstance(node, yaml.SequenceNode):
            try:
                node = node.value[int(key)]
            except (ValueError, IndexError):
                return line
            line = node.start_mark.line + 1
        else:
            return line
    return line


def located(
    path: Path,
    text: str,
    keys: Sequence[str | int],
    message: str,
    line_keys: Sequence[str | int] | None = None,
) -> ConfigError:
    """A :class:`ConfigError` reading ``file:line: at <key path>: message``."""
    line = line_of(text, keys if line_keys is None else line_keys)
    where = f"{path}:{line}" if line else str(path)
    dotted = _dotted(keys)
    return ConfigError(f"{where}: {'at ' + dotted + ': ' if dotted else ''}{message}")


def _dotted(keys: Sequence[str | int]) -> str:
    out = ""
    for key in keys:
        out += f"[{key}]" if isinstance(key, int) or str(key).isdigit() else f".{key}"
    return out.lstrip(".")


@cache
def compiled_schema(schema_path: str, part: str = "") -> Validator:
    """The schema at ``schema_path`` compiled once per process.

    ``part`` ``"items:KEY"`` is the schema of one item of the top-level list ``KEY``;
    ``"without:KEY"`` the whole schema with that list's items left unchecked.
    """
    schema = json.loads(Path(schema_path).read_text(encoding="utf-8"))
    how, _, key = part.partition(":")
    if how == "items":
        schema = schema["properties"][key]["items"]
    elif how == "without":
        schema["properties"][key] = {**schema["properties"][key], "items": {}}
    built = built_validator(schema)
    if built is not None:
        return built
    import fastjsonschema

    validator: Validator = fastjsonschema.compile(schema)
    return validator


Hints = Callable[[list[str], str], str | None]


def validate(
    data: Any,
    schema_path: Path,
    path: Path,
    text: str,
    hints: Hints | None = None,
    *,
    each: str | None = None,
) -> None:
    """Validate ``data``; raise a :class:`ConfigError` naming file, line and key.

    With ``each`` (a top-level list, such as a suite's ``checks``), every item is checked
    on its own, so the error names every wrong item at once, one ``file:line`` per line.
    """
    error = _first_error(compiled_schema(str(schema_path)), data, [], path, text, hints)
    if error is None:
        return  # the common case: one validation, one compiled schema
    if each is None or not isinstance(data, dict) or not isinstance(data.get(each), list):
        raise error
    errors = [
        _first_error(
            compiled_schema(str(schema_path), f"without:{each}"), data, [], path, text, hints
        )
    ]
    item = compiled_schema(str(schema_path), f"items:{each}")
    errors += [
        _first_error(item, value, [each, str(index)], path, text, hints)
        for index, value in enumerate(data[each])
    ]
    found = [e for e in errors if e is not None]
    if found:
        raise ConfigError("\n".join(str(e) for e in found))


def _first_error(
    validator: Validator,
    data: Any,
    prefix: list[str],
    path: Path,
    text: str,
    hints: Hints | None,
) -> ConfigError | None:
    import fastjsonschema

    try:
        validator(data)
    except fastjsonschema.JsonSchemaValueException as exc:
        keys: list[str] = prefix + [str(p) for p in (exc.path or [])][1:]  # drop "data"
        message = _message(exc, [str(p) for p in (exc.path or [])][1:])
        if hints is not None:
            message = hints(keys, exc.rule or "") or message
        # An unknown key explains most errors at its place (a typo hides the query), be it
        # a property (additionalProperties: false) or a name (propertyNames: enum).
        allowed = _allowed_keys(exc.definition if isinstance(exc.definition, dict) else {})
        if allowed is not None and isinstance(exc.value, dict):
            unknown = sorted(k for k in exc.value if k not in allowed)
            if unknown:
                return located(
                    path,
                    text,
                    keys,
                    f"unknown key {unknown[0]!r} (allowed: {', '.join(allowed)})",
                    line_keys=[*keys, unknown[0]],
                )
        return located(path, text, keys, message)
    return None


def _allowed_keys(definition: dict[str, Any]) -> list[str] | None:
    """The keys a mapping may have at ``definition``, when the schema closes them."""
    names = definition.get("propertyNames")
    if isinstance(names, dict) and "enum" in names:
        return list(names["enum"])
    if definition.get("additionalProperties") is False:
        return sorted(definition.get("properties", {}))
    return None


def _message(exc: Any, keys: list[str]) -> str:
    text = str(exc.message)
    dotted = "data" + "".join(f"[{k}]" if k.isdigit() else f".{k}" for k in keys)
    if text.startswith(dotted):
        text = text[len(dotted) :].strip()
    elif text.startswith("data"):
        text = text.split(" ", 1)[-1]
    return text
