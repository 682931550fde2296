"""The cache of documents that passed their schema: a pass is remembered across runs,
a failure never is, and a cache that cannot be read or written changes nothing."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from fingerprint import _yaml
from fingerprint._yaml import LocatedYaml, load_located_yaml, save_validated, validate_located
from fingerprint.errors import SignatureError
from fingerprint.signature import load_library

SCHEMA = {"type": "object", "properties": {"when": {"type": "string"}},
          "required": ["when"], "additionalProperties": False}


@pytest.fixture
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(_yaml, "_VALIDATED", _yaml._ValidatedCache())
    return tmp_path / "fingerprint" / "validated-documents"


def test_a_passing_document_is_remembered_and_not_validated_again(
        fresh_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = load_located_yaml("a.yaml", "when: '2026-01-15'\n")
    validate_located(doc, SCHEMA, SignatureError)
    save_validated()
    assert len(fresh_cache.read_text().split()) == 1
    # A new process: the digest comes from the file, and jsonschema is not asked.
    monkeypatch.setattr(_yaml, "_VALIDATED", _yaml._ValidatedCache())
    monkeypatch.setattr("jsonschema.Draft202012Validator", None)
    validate_located(load_located_yaml("b.yaml", "when: '2026-01-15'\n"), SCHEMA, SignatureError)


def test_a_failing_document_is_refused_with_its_line_every_time(fresh_cache: Path) -> None:
    good = load_located_yaml("good.yaml", "when: '2026-01-15'\n")
    validate_located(good, SCHEMA, SignatureError)
    # Same text unquoted: YAML makes it a date, which the schema refuses.
    bad = load_located_yaml("bad.yaml", "\nwhen: 2026-01-15\n")
    assert isinstance(bad.data["when"], dt.date)
    for _ in range(2):
        with pytest.raises(SignatureError) as caught:
            validate_located(bad, SCHEMA, SignatureError)
        assert caught.value.line == 2
        save_validated()
    assert len(fresh_cache.read_text().split()) == 1


def test_a_changed_schema_validates_again(fresh_cache: Path) -> None:
    doc = LocatedYaml("a.yaml", {"when": "x", "extra": 1}, {(): 1, ("extra",): 1})
    loose = {"type": "object"}
    validate_located(doc, loose, SignatureError)
    with pytest.raises(SignatureError, match="extra"):
        validate_located(doc, SCHEMA, SignatureError)


def test_an_unwritable_cache_is_no_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    monkeypatch.setattr(_yaml, "_VALIDATED", _yaml._ValidatedCache())
    library = load_library()
    assert len(library) > 0
    assert not (blocker / "fingerprint").exists()


def test_the_library_loads_the_same_from_the_cache(fresh_cache: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    first = load_library()
    assert len(fresh_cache.read_text().split()) == len(first)
    monkeypatch.setattr(_yaml, "_VALIDATED", _yaml._ValidatedCache())
    second = load_library()
    assert [(s.id, s.data) for s in second.signatures] == [(s.id, s.data) for s in first.signatures]
