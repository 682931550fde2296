"""Rules of issues 13 and 15, through the public entry points (fixture replays).

Each test names the rule; the fixtures are crafted by scripts/make_fixtures.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from fingerprint.output.ooni.measurements import measurements_from_pipeline
from fingerprint.report import build_report
from fingerprint.signature import SignatureLibrary, load_library
from fingerprint.testing.fixtures import Fixture

REPO = Path(__file__).resolve().parents[1]
PCAPS = REPO / "pcaps"


@pytest.fixture(scope="module")
def library() -> SignatureLibrary:
    return load_library(REPO / "signatures")


def report_of(folder: str, library: SignatureLibrary) -> dict[str, Any]:
    return Fixture(PCAPS / folder).analyze(library)[1]


def platform(report: dict[str, Any], pid: str) -> dict[str, Any]:
    return next(p for p in report["platforms"] if p["platform"] == pid)


def test_firewall_reset_is_located_before_the_server(library: SignatureLibrary) -> None:
    signal = platform(report_of("generic/firewall-syn-reset", library), "signal")
    [finding] = signal["findings"]
    assert finding["technique"] == "ip.reset"
    assert finding["location"]["hop"] == 3 and finding["location"]["router"] == "192.0.2.2"
    assert any("not the server behind it" in line for line in finding["evidence"])


@pytest.mark.parametrize("folder", ["false-positive/closed-port-rst",
                                    "false-positive/closed-port-rst-traced"])
def test_an_address_refusing_every_connection_is_not_accessible(
        folder: str, library: SignatureLibrary) -> None:
    """Rule 4: no TLS test ran (every SYN reset as a closed port would): inconclusive, and
    the report says why; the closed-port signature still clears it of ip.reset."""
    result, report = Fixture(PCAPS / folder).analyze(library)
    signal = platform(report, "signal")
    assert (signal["status"], signal["findings"]) == ("inconclusive", [])
    tls = [t for t in signal["tested"] if t["kind"] == "tls"]
    assert tls and not tls[0]["ok"] and "no TLS test ran" in tls[0]["detail"]
    assert [f.signatures for f in result.verdicts.suppressed] == [["fp-linux-closed-port-rst"]]


def test_address_wide_interception_names_issuer_and_proof(library: SignatureLibrary) -> None:
    twitter = platform(report_of("generic/address-mitm", library), "twitter")
    [finding] = twitter["findings"]
    assert finding["technique"] == "tls.mitm"
    text = "\n".join(finding["evidence"])
    assert "Fixture Interception Box CA" in text
    assert "validates on its own address 203.0.113.99" in text
    assert "every TLS connection to 203.0.113.10 is intercepted" in text


def test_a_capture_cut_short_is_not_accessible(library: SignatureLibrary) -> None:
    """Issue 15: tests the probe planned but the capture does not hold make the platform
    inconclusive, and the report says the capture ended early."""
    report = report_of("truncated/gfw-cut", library)
    linkedin = platform(report, "linkedin")
    assert (linkedin["status"], linkedin["findings"]) == ("inconclusive", [])
    assert {t["kind"] for t in linkedin["tested"] if not t["ok"]} == {"tls", "http"}
    ended = report["capture_ended_early"]
    assert "linkedin" in ended["platforms"]
    assert any("TLS of linkedin at 203.0.113.13" in r for r in ended["reasons"])


def test_a_capture_cut_short_says_so_in_the_schema_and_the_jsonl(library: SignatureLibrary) -> None:
    """The report key is an addition the report schema describes; every OONI measurement
    of the run carries the same under x_fingerprint."""
    result, _summary = Fixture(PCAPS / "truncated/gfw-cut").analyze(library)
    assert result.pipeline is not None
    report = build_report(result.verdicts, result.pipeline.catalog, "analyze")
    schema = json.loads((REPO / "fingerprint/schemas/report.schema.json").read_text())
    jsonschema.validate(json.loads(json.dumps(report, default=str)), schema)
    assert schema["properties"]["capture_ended_early"]["required"] == ["reasons", "platforms"]
    measurements = measurements_from_pipeline(result.pipeline, result.verdicts)
    assert measurements
    for measurement in measurements:
        ended = measurement["test_keys"]["x_fingerprint"]["capture_ended_early"]
        assert ended == report["capture_ended_early"]


def test_a_complete_capture_does_not_say_it_ended_early(library: SignatureLibrary) -> None:
    assert "capture_ended_early" not in report_of("lab/gfw", library)


def test_injection_then_residual_block_of_the_3_tuple(library: SignatureLibrary) -> None:
    """Issue 13 case 3: the injected RSTs (after the server's answer) are the finding; the
    controls that failed only after the trigger do not cancel it; the residual block is
    stated with its scope and measured duration."""
    report = report_of("generic/residual-3tuple", library)
    [finding] = platform(report, "twitter")["findings"]
    assert finding["technique"] == "tls.sni_reset"
    text = "\n".join(finding["evidence"])
    assert "every later connection to 203.0.113.10:443 failed for at least 3.0 s" in text
    assert "94.0 s after the trigger worked again" in text


def test_residual_block_of_the_client_blames_no_other_platform(library: SignatureLibrary) -> None:
    report = report_of("generic/residual-client", library)
    [finding] = platform(report, "twitter")["findings"]
    assert "later connections from the client to other addresses" in "\n".join(finding["evidence"])
    facebook = platform(report, "facebook")
    assert (facebook["status"], facebook["findings"]) == ("inconclusive", [])
    assert any("during residual blocking" in t["detail"] for t in facebook["tested"] if not t["ok"])


def test_a_finding_the_confirmation_round_does_not_reproduce_is_inconclusive(
        library: SignatureLibrary) -> None:
    """Issue 13 item 5 (analysis side): attempts marked by the probe's confirmation-round
    packet comment are judged apart; a finding they do not reproduce is inconclusive with
    both results, one they reproduce stays, noted as confirmed."""
    report = report_of("generic/confirmation-round", library)
    twitter = platform(report, "twitter")
    assert (twitter["status"], twitter["findings"]) == ("inconclusive", [])
    [check] = [t for t in twitter["tested"] if "not reproduced" in t["detail"]]
    assert "sweep: tls.sni_drop" in check["detail"] and "target tls_ok" in check["detail"]
    [finding] = platform(report, "facebook")["findings"]
    assert any(line.startswith("confirmed by the confirmation round") for line in finding["evidence"])


def test_no_residual_block_while_the_address_works(library: SignatureLibrary) -> None:
    """A connection that worked after a trigger shows the 3-tuple was not blocked: a later
    failure (a lost SYN, a control failing on its own) does not make the next target's
    own injected reset 'residual' (the UPB Iran captures had this shape)."""
    report = report_of("generic/no-residual-while-the-address-works", library)
    for pid, target in (("twitter", "twitter.com"), ("facebook", "www.facebook.com")):
        [finding] = platform(report, pid)["findings"]
        assert (finding["target"], finding["technique"]) == (target, "tls.sni_reset")
        assert not any("residual" in line for line in finding["evidence"])
