"""Every fixture under pcaps/ replays to its expected report.

A fixture folder holds one capture and the report `fingerprint analyze --json`
gave when the fixture was checked (`expected.json`).  Replay goes through the
same pipeline a live probe run uses (capture hints included), with the whole
shipped signature library; the stable part of the report - per platform its
status, techniques, and each finding's target, technique and signatures -
must be unchanged.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fingerprint.signature import SignatureLibrary, load_library
from fingerprint.testing.fixtures import Fixture, find_fixtures, verdict_summary

REPO = Path(__file__).resolve().parents[1]
PCAPS = REPO / "pcaps"
FIXTURES = find_fixtures(PCAPS)


@pytest.fixture(scope="module")
def library() -> SignatureLibrary:
    return load_library(REPO / "signatures")


def test_there_are_fixtures() -> None:
    assert len(FIXTURES) >= 30


@pytest.mark.parametrize("fixture", FIXTURES, ids=[str(f.folder.relative_to(PCAPS))
                                                     for f in FIXTURES])
def test_fixture_replays_to_its_expected_report(fixture: Fixture, library: SignatureLibrary) -> None:
    _result, report = fixture.analyze(library)
    assert verdict_summary(report) == verdict_summary(fixture.expected())


@pytest.mark.parametrize("fixture", [f for f in FIXTURES if f.folder.parent.name == "clean"],
                         ids=lambda f: f.folder.name)
def test_clean_captures_stay_accessible(fixture: Fixture, library: SignatureLibrary) -> None:
    _result, report = fixture.analyze(library)
    assert report["platforms"], "a clean capture still tests platforms"
    for platform in report["platforms"]:
        assert platform["status"] == "accessible", platform
        assert platform["findings"] == []


@pytest.mark.parametrize("fixture", FIXTURES, ids=[str(f.folder.relative_to(PCAPS))
                                                     for f in FIXTURES])
def test_fixture_folder_is_complete_and_small(fixture: Fixture) -> None:
    assert fixture.capture.stat().st_size < 64 * 1024
    readme = fixture.folder / "README.md"
    assert readme.is_file() and "ource" in readme.read_text(), "README names its source"
