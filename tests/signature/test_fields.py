"""The signature field registry: matcher, lint, schema and CONTRIBUTING agree with it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from fingerprint.cli import cli
from fingerprint.errors import SignatureError
from fingerprint.signature import load_library
from fingerprint.signature.fields import (
    FIELDS,
    SCHEMA_PATH,
    Source,
    closest,
    is_packet_field,
    lookup,
    markdown_table,
    schema_field,
    stale_files,
)
from fingerprint.signature.match import build_matcher

REPO = Path(__file__).resolve().parents[2]

SIGNATURE = """\
id: xx-typo
title: a signature with a misspelt field
kind: censor
techniques: [tls.sni_reset]
status: test
references: [{{source: test}}]
match:
  matchers:
    - {{field: tcp.flags, op: equals, value: R}}
    - {{field: {field}, op: equals, value: 0}}
fixtures: {{positive: [pcaps/cn/gfw-rst-type1]}}
"""


def test_schema_and_contributing_are_generated_from_the_registry() -> None:
    assert stale_files() == [], "run: python scripts/signature_fields.py --write"
    schema = json.loads(SCHEMA_PATH.read_text())
    assert schema["$defs"]["matcher"]["properties"]["field"] == schema_field()
    assert markdown_table() in (REPO / "CONTRIBUTING.md").read_text()


def test_every_field_the_shipped_library_uses_is_registered() -> None:
    library = load_library(None)
    used = {m.field for s in library.signatures for m in s.rule.matchers}
    assert used and all(lookup(name) is not None for name in used)


def test_registry_names_are_unique_and_sources_known() -> None:
    names = [f.name for f in FIELDS]
    assert len(names) == len(set(names))
    assert all(f.sources and set(f.sources) <= set(Source) for f in FIELDS)


def test_header_family_and_packet_sources() -> None:
    assert lookup("http.header.location") is not None
    assert lookup("http.header.") is None and lookup("http.header.X Y") is None
    assert is_packet_field("tcp.window") and is_packet_field("dns.answer")
    assert not is_packet_field("trigger.sni") and not is_packet_field("probe.cc")
    # tcp.* is not a packet field by its prefix: the handshake outcome is the finding's.
    assert not is_packet_field("tcp.handshake")


def test_matcher_refuses_an_unknown_field_naming_the_closest() -> None:
    with pytest.raises(ValueError, match=r"unknown field 'tcp\.windw' \(did you mean 'tcp\.window'"):
        build_matcher({"field": "tcp.windw", "op": "equals", "value": 0})
    assert closest("ip.tll") == "ip.ttl"


def test_loading_refuses_an_unknown_field_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "xx-typo.yaml"
    path.write_text(SIGNATURE.format(field="tcp.windw"))
    with pytest.raises(SignatureError, match=r"xx-typo\.yaml:10: .*'tcp\.window'"):
        load_library(path)


def test_lint_refuses_a_misspelt_field_with_file_line_and_closest(tmp_path: Path) -> None:
    folder = tmp_path / "signatures"
    folder.mkdir()
    (folder / "xx-typo.yaml").write_text(SIGNATURE.format(field="tcp.windw"))
    result = CliRunner().invoke(cli, ["signatures", "lint", str(folder)])
    assert result.exit_code == 1
    assert "xx-typo.yaml:10: match/matchers/1/field: unknown field 'tcp.windw' (did you mean " \
           "'tcp.window'?)" in result.output
    (folder / "xx-typo.yaml").write_text(SIGNATURE.format(field="tcp.window"))
    assert "unknown field" not in CliRunner().invoke(cli, ["signatures", "lint", str(folder)]).output
