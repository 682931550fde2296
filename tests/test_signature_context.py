"""Fields the analysis hands to signatures, and how false-positive signatures act.

Each case is a crafted capture (fingerprint.testing.craft) run through the pipeline a
live probe uses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fingerprint.analysis.findings import Finding
from fingerprint.analysis.pipeline import Pipeline, Result, analyze_files
from fingerprint.catalog import load_catalog
from fingerprint.report import build_report
from fingerprint.signature import SignatureLibrary, load_library
from fingerprint.testing.craft import Capture, http_response
from fingerprint.trust import TrustStore

RESOLVER = "203.0.113.53"
SERVER = "203.0.113.10"


def analyze(cap: Capture, tmp_path: Path, library: SignatureLibrary | None = None) -> Result:
    path = cap.write(tmp_path / "capture.pcapng")
    return analyze_files([str(path)], load_catalog(None), library or SignatureLibrary([]),
                         TrustStore(None), on_problem=lambda _line: None)


def only_finding(result: Result) -> Finding:
    assert len(result.verdicts.findings) == 1, result.verdicts.findings
    return result.verdicts.findings[0]


def tls_with_injection(cap: Capture, **inject: Any) -> None:
    control = cap.tcp(SERVER, 443, at=0.0)
    control.handshake()
    control.client_hello("example.com")
    control.server_hello()
    flow = cap.tcp(SERVER, 443, at=1.0)
    flow.handshake()
    flow.client_hello("twitter.com")
    flow.inject("RA", at_ms=5, ttl=100, **inject)


def test_seq_delta_is_offset_from_the_sequence_number_the_client_expects(tmp_path: Path) -> None:
    cap = Capture(seed=3)
    tls_with_injection(cap, seq_offset=4380)
    finding = only_finding(analyze(cap, tmp_path))
    injected = [e for e in finding.evidence if e.role == "injected"]
    assert [e.fields["tcp.seq_delta"] for e in injected] == [4380]


def test_seq_delta_wraps_below_the_expected_sequence_number(tmp_path: Path) -> None:
    cap = Capture(seed=4)
    tls_with_injection(cap, seq_offset=-1)
    finding = only_finding(analyze(cap, tmp_path))
    injected = [e for e in finding.evidence if e.role == "injected"]
    assert injected[0].fields["tcp.seq_delta"] == 0xFFFFFFFF


def test_no_seq_delta_for_an_answer_to_a_syn(tmp_path: Path) -> None:
    cap = Capture(seed=5, hints={"address_platform": {SERVER: "twitter"}})
    cap.tcp(SERVER, 443, at=0.0).syn_refused(ip_id=7, df=False)
    finding = only_finding(analyze(cap, tmp_path))
    responses = [e for e in finding.evidence if e.role == "response"]
    assert responses and "tcp.seq_delta" not in responses[0].fields


def test_dns_no_resolver_marks_answers_from_an_address_without_resolver(tmp_path: Path) -> None:
    cap = Capture(seed=6, hints={"no_resolver": ["203.0.113.77"]})
    cap.dns("203.0.113.77", "example.com", at=0.0)
    cap.dns("203.0.113.77", "twitter.com", at=1.0).respond(["157.240.1.1"], delay_ms=8, ttl=100)
    finding = only_finding(analyze(cap, tmp_path))
    assert finding.technique.value == "dns.injection"
    assert finding.context["dns.no_resolver"] is True


def test_dns_no_resolver_absent_for_a_working_resolver(tmp_path: Path) -> None:
    cap = Capture(seed=7)
    cap.dns(RESOLVER, "example.com", at=0.0).respond(["203.0.113.99"], delay_ms=20, ttl=60)
    query = cap.dns(RESOLVER, "twitter.com", at=1.0)
    query.respond(["8.7.198.45"], delay_ms=8, ttl=90, df=False)
    query.respond(["104.244.42.1"], delay_ms=150, ttl=60)
    finding = only_finding(analyze(cap, tmp_path))
    assert finding.technique.value == "dns.injection"
    assert "dns.no_resolver" not in finding.context


def test_vantage_point_from_probe_hints(tmp_path: Path) -> None:
    cap = Capture(seed=8, hints={"probe_cc": "uz", "probe_asn": "AS8193"})
    tls_with_injection(cap)
    finding = only_finding(analyze(cap, tmp_path))
    assert finding.context["probe.cc"] == "UZ"
    assert finding.context["probe.asn"] == 8193


def test_unshared_vantage_point_gives_no_fields(tmp_path: Path) -> None:
    cap = Capture(seed=8, hints={"probe_cc": "ZZ", "probe_asn": "AS0"})
    tls_with_injection(cap)
    finding = only_finding(analyze(cap, tmp_path))
    assert "probe.cc" not in finding.context and "probe.asn" not in finding.context


FALSE_POSITIVE = """\
id: fp-test-redirect
title: test look-alike
kind: false-positive
techniques: [http.blockpage]
status: test
references: [{source: test}]
match:
  matchers:
    - {field: http.header.location, op: prefix, value: "https://x.com/"}
fixtures: {positive: [pcaps/none]}
"""


def redirect_capture() -> Capture:
    cap = Capture(seed=9)
    control = cap.tcp(SERVER, 80, at=0.0)
    control.handshake()
    control.http_get("example.com")
    control.http_reply(http_response(200, "OK", body=b"<html>example</html>"))
    flow = cap.tcp(SERVER, 80, at=1.0)
    flow.handshake()
    flow.http_get("twitter.com")
    flow.http_reply(http_response(301, "Moved Permanently", [("Location", "https://x.com/")]))
    return cap


def test_false_positive_signature_suppresses_the_finding_and_the_target_counts_as_working(
        tmp_path: Path) -> None:
    catalog = load_catalog(None)
    plain = analyze(redirect_capture(), tmp_path)
    assert [f.technique.value for f in plain.verdicts.findings] == ["http.blockpage"]
    assert build_report(plain.verdicts, catalog, "analyze")["platforms"][0]["status"] == "blocked"

    sig_dir = tmp_path / "sigs"
    sig_dir.mkdir()
    (sig_dir / "fp-test-redirect.yaml").write_text(FALSE_POSITIVE)
    result = analyze(redirect_capture(), tmp_path, load_library(sig_dir))
    assert result.verdicts.findings == []
    assert [f.signatures for f in result.verdicts.suppressed] == [["fp-test-redirect"]]
    report = build_report(result.verdicts, catalog, "analyze")
    twitter = next(p for p in report["platforms"] if p["platform"] == "twitter")
    assert twitter["status"] == "accessible"


def test_pipeline_feed_gives_the_same_context_as_files(tmp_path: Path) -> None:
    cap = Capture(seed=10, hints={"probe_cc": "CN"})
    tls_with_injection(cap, seq_offset=1460)
    from_files = only_finding(analyze(cap, tmp_path))
    pipeline = Pipeline(load_catalog(None), SignatureLibrary([]), TrustStore(None),
                        cap.capture_hints())
    from fingerprint.capture.reader import open_capture
    with open_capture(tmp_path / "capture.pcapng") as reader:
        for packet in reader:
            pipeline.feed(packet)
    live = pipeline.finish().findings
    assert len(live) == 1
    assert live[0].context == from_files.context


def test_synack_conflicts_counts_attempts_with_a_forged_synack(tmp_path: Path) -> None:
    cap = Capture(seed=11)
    control = cap.tcp(SERVER, 443, at=0.0)
    control.handshake()
    control.client_hello("example.com")
    control.server_hello()
    plain = cap.tcp(SERVER, 443, at=1.0)
    plain.handshake()
    plain.client_hello("twitter.com")
    plain.inject("RA", at_ms=5, ttl=100)
    raced = cap.tcp(SERVER, 443, at=2.0)
    raced.forged_handshake(ttl=100, delay_ms=8)
    raced.client_hello("twitter.com")
    raced.inject("RA", at_ms=5, ttl=100)
    finding = only_finding(analyze(cap, tmp_path))
    assert finding.context["outcome"] == "reset"
    assert finding.context["tcp.synack_conflicts"] == 1


def test_retransmitted_synack_is_no_conflict(tmp_path: Path) -> None:
    cap = Capture(seed=12)
    control = cap.tcp(SERVER, 443, at=0.0)
    control.handshake()
    control.client_hello("example.com")
    control.server_hello()
    flow = cap.tcp(SERVER, 443, at=1.0)
    flow.handshake()
    flow._from_server(1.5, "SA", seq=flow.server_isn)  # the same SYN-ACK again
    flow.client_hello("twitter.com")
    flow.inject("RA", at_ms=5, ttl=100)
    finding = only_finding(analyze(cap, tmp_path))
    assert finding.context["tcp.synack_conflicts"] == 0
