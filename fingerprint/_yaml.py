"""Safe YAML loading that remembers where each value came from.

Signatures and catalogs are user input: errors must name the file and line.
PyYAML's safe_load drops positions, so we compose the node tree (safe: no
tags that build objects) and convert it ourselves, recording the line of every
mapping key and sequence item.  Anchors/aliases are refused, which also rules
out "billion laughs" expansion.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from fingerprint.errors import InputError

MAX_YAML_BYTES = 1 << 20
"""Signatures and catalogs are small; anything larger is a mistake or an attack."""

PathKey = tuple[str | int, ...]


class LocatedYaml:
    """A parsed YAML document plus the source line of each value (by key path)."""

    def __init__(self, path: str, data: Any, lines: dict[PathKey, int]) -> None:
        self.path = path
        self.data = data
        self.lines = lines

    def line_of(self, key_path: Sequence[str | int]) -> int | None:
        """Line of the deepest known ancestor of `key_path` (1-based)."""
        key = tuple(key_path)
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key[:-1]
        return self.lines.get((), None)


# libyaml's C parser when PyYAML was built with it (10x faster on a large library).
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _scalar(node: yaml.ScalarNode, constructor: yaml.constructor.SafeConstructor) -> Any:
    # The composer already resolved the tag (int, bool, ...); the safe constructor builds it.
    return constructor.construct_object(node, deep=True)


def _convert(node: yaml.Node, key: PathKey, lines: dict[PathKey, int], where: str,
             constructor: yaml.constructor.SafeConstructor, seen: set[int]) -> Any:
    if id(node) in seen:
        # The composer shares one node between an anchor and its aliases.
        raise InputError(where, "YAML anchors and aliases are not allowed", node.start_mark.line + 1)
    if not isinstance(node, yaml.ScalarNode):
        seen.add(id(node))
    lines[key] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise InputError(where, "mapping keys must be plain strings",
                                 key_node.start_mark.line + 1)
            name = str(_scalar(key_node, constructor))
            if name in result:
                raise InputError(where, f"duplicate key {name!r}", key_node.start_mark.line + 1)
            result[name] = _convert(value_node, (*key, name), lines, where, constructor, seen)
            lines[(*key, name)] = key_node.start_mark.line + 1
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, (*key, i), lines, where, constructor, seen)
                for i, item in enumerate(node.value)]
    assert isinstance(node, yaml.ScalarNode)
    return _scalar(node, constructor)


def load_located_yaml(path: str | Path, text: str | None = None) -> LocatedYaml:
    """Parse one YAML document; raises InputError naming file and line."""
    where = str(path)
    if text is None:
        try:
            size = Path(path).stat().st_size
            if size > MAX_YAML_BYTES:
                raise InputError(where, f"file is {size} bytes; the limit is {MAX_YAML_BYTES}")
            raw = Path(path).read_bytes()
        except OSError as exc:
            raise InputError(where, exc.strerror or str(exc)) from exc
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(where, f"not UTF-8 text (byte {exc.start})") from exc
    elif len(text) > MAX_YAML_BYTES:
        raise InputError(where, f"document is {len(text)} characters; the limit is {MAX_YAML_BYTES}")
    try:
        node = yaml.compose(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise InputError(where, f"invalid YAML: {exc.problem or exc.context}", line) from exc
    except yaml.YAMLError as exc:
        raise InputError(where, f"invalid YAML: {exc}") from exc
    if node is None:
        raise InputError(where, "file is empty")
    lines: dict[PathKey, int] = {}
    try:
        data = _convert(node, (), lines, where, yaml.constructor.SafeConstructor(), set())
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        raise InputError(where, f"invalid value: {exc.problem}",
                         mark.line + 1 if mark else None) from exc
    return LocatedYaml(where, data, lines)


def validate_located(doc: LocatedYaml, schema: dict[str, Any], error_type: type[InputError]) -> None:
    """Validate against a JSON Schema; the first error (by document order) is raised with its line."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    errors = list(validator.iter_errors(doc.data))
    if not errors:
        return
    errors.sort(key=lambda e: doc.line_of(list(e.absolute_path)) or 0)
    first = errors[0]
    location = "/".join(str(p) for p in first.absolute_path) or "(top level)"
    raise error_type(doc.path, f"{location}: {first.message}", doc.line_of(list(first.absolute_path)))
