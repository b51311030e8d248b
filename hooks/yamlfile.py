"""YAML files validated by a JSON Schema, with errors that name the file, line and key."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from hooks.exceptions import ConfigError

Validator = Callable[[Any], Any]
#: How many values aliases may add to a file beyond what it writes out ("billion laughs"):
#: a document may expand to at most this many values or twice its own size.
MAX_EXPANDED_NODES = 100_000
#: Counting stops past this many values (the file is refused before).
_COUNT_LIMIT = 10_000_000


def load_yaml(path: Path) -> tuple[Any, str]:
    """Parse ``path`` safely; a syntax error names the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text: {exc}") from exc
    try:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
        try:
            node = loader.get_single_node()
            if node is not None:
                sizes: dict[int, int] = {}
                size = _expanded_size(node, sizes)
                allowed = max(MAX_EXPANDED_NODES, 2 * len(sizes))  # len(sizes): distinct nodes
                if size > allowed:
                    raise ConfigError(
                        f"{path}: the document expands to more than {allowed:,} values "
                        f"through its aliases (&anchors and *references); it writes out "
                        f"{len(sizes):,}"
                    )
            return (loader.construct_document(node) if node is not None else None), text
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: YAML syntax error: {exc.problem or exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: YAML error: {exc}") from exc


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """Nodes in the document with every alias followed; each shared node is counted once."""
    known = sizes.get(id(node))
    if known is not None:
        return known
    sizes[id(node)] = _COUNT_LIMIT  # a cycle counts as too large
    total = 1
    if isinstance(node, yaml.SequenceNode):
        for item in node.value:
            total += _expanded_size(item, sizes)
            if total > _COUNT_LIMIT:
                break
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            total += _expanded_size(key, sizes) + _expanded_size(value, sizes)
            if total > _COUNT_LIMIT:
                break
    sizes[id(node)] = total
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


def item_lines(text: str, key: str) -> list[int]:
    """The 1-based line of each item of the top-level list ``key`` (one parse for all)."""
    try:
        node = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        return []
    if not isinstance(node, yaml.MappingNode):
        return []
    for k, v in node.value:
        if k.value == key and isinstance(v, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in v.value]
    return []


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
    import fastjsonschema

    schema = json.loads(Path(schema_path).read_text(encoding="utf-8"))
    how, _, key = part.partition(":")
    if how == "items":
        schema = schema["properties"][key]["items"]
    elif how == "without":
        schema["properties"][key] = {**schema["properties"][key], "items": {}}
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
