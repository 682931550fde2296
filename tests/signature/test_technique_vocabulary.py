"""The closed technique vocabulary is one list: the code's `Technique` and both JSON schemas.

A technique added to one place only would let the analysis emit a report its own
schema refuses, or a signature name a technique no rule produces.  Every enum in
either schema that holds a technique (wherever it sits) must be the code's list.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fingerprint.model import Technique

SCHEMAS = Path(__file__).resolve().parents[2] / "fingerprint" / "schemas"
CODE = [t.value for t in Technique]


def technique_enums(node: Any, where: str = "#") -> Iterator[tuple[str, list[str]]]:
    """(JSON pointer, enum) of every enum that lists at least one known technique."""
    if isinstance(node, dict):
        enum = node.get("enum")
        if isinstance(enum, list) and set(enum) & set(CODE):
            yield where, enum
        for key, value in node.items():
            yield from technique_enums(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from technique_enums(value, f"{where}/{i}")


def test_the_code_lists_each_technique_once() -> None:
    assert len(CODE) == len(set(CODE))
    assert all(t.count(".") == 1 for t in CODE)


@pytest.mark.parametrize("schema", ["report.schema.json", "signature.schema.json"])
def test_schema_technique_enums_are_the_codes_list(schema: str) -> None:
    loaded = json.loads((SCHEMAS / schema).read_text())
    enums = list(technique_enums(loaded))
    assert enums, f"{schema} lists no technique"
    for where, enum in enums:
        assert len(enum) == len(set(enum)), f"{schema}{where}: a technique twice"
        missing = sorted(set(CODE) - set(enum))
        extra = sorted(set(enum) - set(CODE))
        assert not missing and not extra, (
            f"{schema}{where}: missing from the schema {missing}, not in fingerprint.model."
            f"Technique {extra}")


def test_both_schemas_define_the_vocabulary_once_and_refer_to_it() -> None:
    for schema in ("report.schema.json", "signature.schema.json"):
        loaded = json.loads((SCHEMAS / schema).read_text())
        assert [where for where, _ in technique_enums(loaded)] == ["#/$defs/technique"], schema
