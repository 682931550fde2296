"""OONI measurements of recorded lab runs: envelope (vantage point, report_id, annotations),
df-005 connects, one df-007 rule for answers that never came, control-resolver lookups."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fingerprint.analysis.pipeline import Pipeline
from fingerprint.capture.reader import open_capture
from fingerprint.catalog import load_catalog
from fingerprint.cli import cli
from fingerprint.model import Failure
from fingerprint.output.ooni.envelope import ProbeInfo, new_run_id
from fingerprint.output.ooni.measurements import measurements_from_pipeline
from fingerprint.signature import load_library
from fingerprint.testing.fixtures import Fixture
from fingerprint.trust import TrustStore

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "pcaps" / "lab"
UZ = LAB / "uzbekistan-2021"
# OONI's report id: start time, test name, country, AS number, "n1", 16 letters/digits.
REPORT_ID = re.compile(r"^\d{8}T\d{6}Z_fingerprint_(?P<cc>[A-Z]{2})_(?P<asn>\d+)_n1_[A-Za-z0-9]{16}$")


def _fixture(folder: Path, probe: ProbeInfo | None = None) -> list[dict[str, Any]]:
    result, _report = Fixture(folder).analyze(load_library(ROOT / "signatures"))
    assert result.pipeline is not None
    return measurements_from_pipeline(result.pipeline, result.verdicts, probe)


def _by_input(measurements: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {m["input"]: m for m in measurements}


def test_replay_takes_the_vantage_point_from_the_capture_notes() -> None:
    measurements = _fixture(UZ)
    assert measurements
    assert {(m["probe_cc"], m["probe_asn"]) for m in measurements} == {("UZ", "AS8193")}
    # What the user gives wins over the notes.
    given = _fixture(UZ, ProbeInfo(cc="KZ", asn="AS9198"))
    assert {(m["probe_cc"], m["probe_asn"]) for m in given} == {("KZ", "AS9198")}
    match = REPORT_ID.match(given[0]["report_id"])
    assert match and (match["cc"], match["asn"]) == ("KZ", "9198")


def test_analyze_jsonl_of_a_lab_capture_carries_its_vantage_point(tmp_path: Path) -> None:
    jsonl = tmp_path / "uz.jsonl"
    result = CliRunner().invoke(cli, [
        "analyze", str(UZ / "capture.pcapng.gz"), "--catalog", str(UZ / "catalog.yaml"),
        "--ca-file", str(UZ / "ca.pem"), "--jsonl", str(jsonl)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert lines and {(m["probe_cc"], m["probe_asn"]) for m in lines} == {("UZ", "AS8193")}
    assert len({m["report_id"] for m in lines}) == 1


def test_report_id_has_ooni_form_with_country_and_network() -> None:
    for m in _fixture(UZ):
        match = REPORT_ID.match(m["report_id"])
        assert match, m["report_id"]
        assert (match["cc"], match["asn"]) == ("UZ", "8193")
        assert m["report_id"] == m["test_keys"]["x_fingerprint"]["run_id"]
        assert m["report_id"].startswith(m["test_start_time"].replace("-", "").replace(":", "")
                                         .replace(" ", "T"))
    assert REPORT_ID.match(new_run_id(0.0))["cc"] == "ZZ"  # type: ignore[index]
    assert new_run_id(0.0) != new_run_id(0.0)


def test_annotations_name_the_engine_and_the_host() -> None:
    for m in _fixture(UZ, ProbeInfo(annotations={"vantage": "lab"})):
        annotations = m["annotations"]
        assert annotations["engine_name"] == "fingerprint"
        assert annotations["engine_version"] == m["software_version"]
        assert annotations["platform"] == {"darwin": "macos", "win32": "windows"}.get(
            sys.platform, sys.platform)
        # Go's architecture names, as OONI Probe writes them (amd64, not x86_64).
        assert annotations["architecture"] not in ("", "x86_64", "aarch64")
        assert annotations["vantage"] == "lab"
        assert all(isinstance(v, str) for v in annotations.values())


def test_tcp_connect_entries_do_not_write_status_blocked() -> None:
    measurements = _fixture(LAB / "blackhole")
    connects = [c for m in measurements for c in m["test_keys"]["tcp_connect"]]
    assert connects and any(c["status"]["failure"] for c in connects)  # IP blocking is in it
    for connect in connects:
        assert set(connect["status"]) == {"failure", "success"}


def _no_resolver_failures(folder: Path) -> list[str | None]:
    result, _report = Fixture(folder).analyze(load_library(ROOT / "signatures"))
    assert result.pipeline is not None
    silent = result.hints.no_resolver
    return [q["failure"] for m in measurements_from_pipeline(result.pipeline, result.verdicts)
            for q in m["test_keys"]["queries"]
            if q["resolver_address"].rsplit(":", 1)[0] in silent and not q["answers"]]


@pytest.mark.parametrize("scenario", sorted(p.name for p in LAB.iterdir() if p.is_dir()))
def test_a_query_to_the_address_without_resolver_times_out_in_every_scenario(scenario: str
                                                                            ) -> None:
    # The probe waited its whole timeout for each of these (its notes say so), whether or
    # not the capture's last packet came that late: df-007's "some timer has expired".
    failures = _no_resolver_failures(LAB / scenario)
    assert failures, "every lab run asks the address that runs no resolver"
    assert set(failures) == {Failure.GENERIC_TIMEOUT.value}


def test_without_probe_notes_a_capture_that_stops_early_is_unknown_failure() -> None:
    # The same packets with no notes: nothing says the client waited, and the capture's
    # last packet came before the answer was due.
    folder = LAB / "kazakhstan"
    pipeline = Pipeline(load_catalog(folder / "catalog.yaml"), load_library(ROOT / "signatures"),
                        TrustStore(folder / "ca.pem"))
    with open_capture(str(Fixture(folder).capture)) as reader:
        for packet in reader:
            pipeline.feed(packet)
    verdicts = pipeline.finish()
    failures = [q["failure"] for m in measurements_from_pipeline(pipeline, verdicts)
                for q in m["test_keys"]["queries"]]
    assert any(f and f.startswith("unknown_failure: capture ended") for f in failures)


def test_control_resolver_answers_from_the_notes_are_queries() -> None:
    result, _report = Fixture(UZ).analyze(load_library(ROOT / "signatures"))
    assert result.pipeline is not None
    measurements = _by_input(measurements_from_pipeline(result.pipeline, result.verdicts))
    for name, address in (("telegram.org", "203.0.113.18"), ("twitter.com", "203.0.113.20")):
        queries = measurements[name]["test_keys"]["queries"]
        dot = [q for q in queries if q["engine"] == "dot"]
        assert {q["hostname"] for q in dot} == {name, "example.com"}
        mine = next(q for q in dot if q["hostname"] == name)
        assert mine["resolver_address"] == "203.0.113.54:853"
        assert mine["answers"] == [{"answer_type": "A", "ttl": None, "ipv4": address}]
        assert mine["failure"] is None and mine["tags"] == ["control"]
        ids = [q["transaction_id"] for q in queries]
        assert len(ids) == len(set(ids))
        # The resolver under test stays the envelope's resolver.
        assert measurements[name]["resolver_ip"] == "203.0.113.53"
    # An address target has no name to look up.
    assert all(q["engine"] != "dot" for q in measurements["203.0.113.18"]["test_keys"]["queries"])
