"""The golden set: every fixture's whole `--json` report and OONI measurements, kept verbatim.

`tests/test_fixtures.py` pins the stable part of each fixture's report (status,
techniques, findings' signatures).  This test pins everything else the
analysis produces from the same capture: confidences, locations, evidence
lines and packets, `tested` checks, and the OONI measurements built from the
same observations.  It exists so that moving code inside the analysis can be
proved not to change behaviour: a move must leave every file here unchanged.

Only what legitimately varies between runs is normalised: the report's
`generated` time, the OONI run id, report id and measurement start time
(taken from the clock when none is given), and the annotations naming the
machine and the tool's version.  To record the set again after an
intended change of behaviour, run

    FINGERPRINT_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/analysis/test_golden.py

and review the diff of `tests/analysis/golden/` like any other change.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from fingerprint._json import dumps_indented
from fingerprint.output.ooni.measurements import measurements_from_pipeline
from fingerprint.report import build_report
from fingerprint.signature import SignatureLibrary, load_library
from fingerprint.testing.fixtures import Fixture, find_fixtures

REPO = Path(__file__).resolve().parents[2]
PCAPS = REPO / "pcaps"
GOLDEN = Path(__file__).resolve().parent / "golden"
FIXTURES = find_fixtures(PCAPS)
UPDATE = os.environ.get("FINGERPRINT_UPDATE_GOLDEN") == "1"
RUN_ID = "20260101T000000Z_fingerprint_ZZ_0_n1_golden"
START = 1767225600.0  # 2026-01-01T00:00:00Z: a fixed test start for the OONI envelope


@pytest.fixture(scope="module")
def library() -> SignatureLibrary:
    return load_library(REPO / "signatures")


def golden_text(fixture: Fixture, library: SignatureLibrary) -> str:
    """The report and measurements as `analyze --json` would print them, normalised."""
    result, _summary = fixture.analyze(library)
    capture = str(fixture.capture.relative_to(REPO))
    report = build_report(result.verdicts, _catalog_of(result), "analyze",
                          extra={"inputs": [capture], "packets": result.packets,
                                 "problems": result.problems})
    report["generated"] = "(normalised)"
    assert result.pipeline is not None
    measurements = measurements_from_pipeline(result.pipeline, result.verdicts, run_id=RUN_ID,
                                              test_start_time=START, inputs=[capture])
    for measurement in measurements:
        # The machine's architecture and OS (df-000 annotations) are not the analysis'.
        for key in ("architecture", "platform", "engine_version"):
            if key in measurement.get("annotations", {}):
                measurement["annotations"][key] = "(normalised)"
    return dumps_indented({"report": report, "ooni": measurements}) + "\n"


def _catalog_of(result: Any) -> Any:
    return result.pipeline.catalog


@pytest.mark.parametrize("fixture", FIXTURES, ids=[str(f.folder.relative_to(PCAPS))
                                                     for f in FIXTURES])
def test_fixture_gives_its_golden_report(fixture: Fixture, library: SignatureLibrary) -> None:
    path = GOLDEN / (str(fixture.folder.relative_to(PCAPS)).replace("/", "__") + ".json")
    text = golden_text(fixture, library)
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.is_file(), f"no golden report for {fixture.folder}: record the set (see the docstring)"
    expected = path.read_text()
    if text != expected:
        # Parsed first: the failure then shows which key differs, not a wall of text.
        assert json.loads(text) == json.loads(expected)
        assert text == expected


def test_every_golden_file_has_its_fixture() -> None:
    names = {str(f.folder.relative_to(PCAPS)).replace("/", "__") + ".json" for f in FIXTURES}
    stale = sorted(p.name for p in GOLDEN.glob("*.json") if p.name not in names)
    assert not stale, f"golden reports without a fixture: {stale}"
