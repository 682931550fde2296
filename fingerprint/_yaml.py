"""Safe YAML loading that remembers where each value came from.

Signatures and catalogs are user input: errors must name the file and line.
PyYAML's safe_load drops positions, so we compose the node tree (safe: no
tags that build objects) and convert it ourselves, recording the line of every
mapping key and sequence item.  Anchors/aliases are refused, which also rules
out "billion laughs" expansion.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from fingerprint.errors import InputError

MAX_YAML_BYTES = 1 << 20
"""Signatures and catalogs are small; anything larger is a mistake or an attack."""
MAX_YAML_DEPTH = 32
"""Signatures nest about 5 levels, catalogs 4; deep nesting would exhaust the stack."""

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
    seen.add(id(node))
    if len(key) > MAX_YAML_DEPTH:
        raise InputError(where, f"nested deeper than {MAX_YAML_DEPTH} levels", node.start_mark.line + 1)
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
                with open(path, "rb") as head:
                    limit_line = head.read(MAX_YAML_BYTES).count(b"\n") + 1
                raise InputError(where, f"file is {size} bytes; the limit is {MAX_YAML_BYTES} "
                                        f"(reached on this line)", limit_line)
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
        message = f"invalid YAML: {exc.problem or exc.context}"
        start = exc.context_mark
        if exc.problem and exc.context and start is not None and mark is not None \
                and start.line != mark.line:
            # Where the unclosed construct began is where the mistake usually is.
            message += f" ({exc.context} started on line {start.line + 1})"
        raise InputError(where, message, line) from exc
    except yaml.reader.ReaderError as exc:
        # A control character: the reader knows its offset, not its line.
        raise InputError(where, f"invalid YAML: character {exc.character!r} is not allowed",
                         text.count("\n", 0, exc.position) + 1) from exc
    except yaml.YAMLError as exc:
        raise InputError(where, f"invalid YAML: {exc}") from exc
    except RecursionError:
        # PyYAML's pure-Python composer recurses per level (libyaml stops at its own limit).
        raise InputError(where, "invalid YAML: nested too deeply") from None
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


VALIDATED_CACHE_LIMIT = 4096
"""Digests remembered of documents that passed their schema (the shipped library is 200)."""


class _ValidatedCache:
    """Digests of (schema, document) pairs that passed validation, kept across runs.

    Validating the shipped signatures with jsonschema (and importing it) took a
    tenth of a second of every `analyze`.  The same schema and the same parsed
    document give the same result, so a digest of both stands for a pass; a
    document that fails is never recorded, and is refused with its line every time.
    The file holds hex digests only; an unreadable or unwritable cache is no cache.
    """

    def __init__(self) -> None:
        self._digests: dict[str, None] | None = None
        self._dirty = False
        self._schema_digests: dict[int, tuple[dict[str, Any], bytes]] = {}

    @staticmethod
    def path() -> Path:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        return Path(base) / "fingerprint" / "validated-documents"

    def digest(self, doc: LocatedYaml, schema: dict[str, Any]) -> str:
        known = self._schema_digests.get(id(schema))
        if known is None or known[0] is not schema:
            from fingerprint import __version__

            text = __version__ + json.dumps(schema, sort_keys=True)
            known = (schema, hashlib.sha256(text.encode()).digest())
            self._schema_digests[id(schema)] = known
        # repr tells apart what the schema tells apart (a date from its text, 1 from True).
        return hashlib.sha256(known[1] + repr(doc.data).encode()).hexdigest()

    def digests(self) -> dict[str, None]:
        if self._digests is None:
            try:
                self._digests = dict.fromkeys(self.path().read_text("ascii").split())
            except (OSError, ValueError):
                self._digests = {}
        return self._digests

    def add(self, digest: str) -> None:
        digests = self.digests()
        digests[digest] = None
        while len(digests) > VALIDATED_CACHE_LIMIT:
            del digests[next(iter(digests))]
        self._dirty = True

    def save(self) -> None:
        if not self._dirty or self._digests is None:
            return
        self._dirty = False
        path = self.path()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("w", encoding="ascii", dir=path.parent,
                                             prefix=".validated-", delete=False) as out:
                out.write("\n".join(self._digests) + "\n")
            os.replace(out.name, path)
        except OSError:
            pass


_VALIDATED = _ValidatedCache()


def save_validated() -> None:
    """Record the documents validated since the last call (callers load many, then save once)."""
    _VALIDATED.save()


def validate_located(doc: LocatedYaml, schema: dict[str, Any], error_type: type[InputError]) -> None:
    """Validate against a JSON Schema; the first error (by document order) is raised with its line."""
    digest = _VALIDATED.digest(doc, schema)
    if digest in _VALIDATED.digests():
        return
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    errors = list(validator.iter_errors(doc.data))
    if not errors:
        _VALIDATED.add(digest)
        return
    def where(error: Any) -> list[str | int]:
        path = list(error.absolute_path)
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            # Point at the unexpected key itself, not at the mapping holding it.
            known = error.schema.get("properties", {})
            extra = [k for k in error.instance if k not in known]
            if extra:
                return [*path, min(extra, key=lambda k: doc.line_of([*path, k]) or 0)]
        return path

    errors.sort(key=lambda e: doc.line_of(where(e)) or 0)
    first = errors[0]
    location = "/".join(str(p) for p in where(first)) or "(top level)"
    raise error_type(doc.path, f"{location}: {first.message}", doc.line_of(where(first)))
