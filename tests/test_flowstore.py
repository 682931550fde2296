"""Bounded memory for long captures, and what a capture's end or the user tells the analysis.

* Closed flows that no finding cites are packed (`fingerprint.analysis.flowstore`): the
  report, the OONI measurements and the evidence must not change for it.
* An interrupted capture: a SYN, DNS query or ClientHello sent just before the
  capture ends is pending, not evidence of a drop.
* `analyze --probe-cc/--probe-asn` reach the analysis, so country-scoped
  signatures fire on another tool's capture.
"""

from __future__ import annotations

import gc
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fingerprint.analysis import index as observation_index
from fingerprint.analysis.flowstore import PackedFlow, pack, unpack
from fingerprint.analysis.observe import TcpFlow
from fingerprint.analysis.pipeline import Result, analyze_files
from fingerprint.capture.reader import open_ip_frames
from fingerprint.capture.writer import CaptureWriter
from fingerprint.catalog import load_catalog
from fingerprint.cli import cli
from fingerprint.model import Technique
from fingerprint.output.ooni.measurements import measurements_from_pipeline
from fingerprint.report import build_report
from fingerprint.signature import SignatureLibrary, load_library
from fingerprint.testing.craft import Capture, http_response
from fingerprint.trust import TrustStore

REPO = Path(__file__).resolve().parent.parent
RESOLVER = "203.0.113.53"
TLS_SERVER = "203.0.113.10"
HTTP_SERVER = "203.0.113.20"
SILENT_SERVER = "203.0.113.30"
REFUSING_SERVER = "203.0.113.31"


def _busy_capture(path: Path) -> Path:
    """Many attempts per target with mixed outcomes, spread over more than the idle
    timeout so flows close both while the capture is read and at its end."""
    cap = Capture(seed=21)
    t = 0.0
    for round_ in range(8):
        for name in ("twitter.com", "example.com"):
            cap.dns(RESOLVER, name, at=t).respond(["203.0.113.10"], delay_ms=20, ttl=58)
            t += 0.1
        flow = cap.tcp(TLS_SERVER, 443, at=t)
        flow.handshake()
        flow.client_hello("twitter.com")
        if round_ % 4 == 1:
            flow.server_hello()
        elif round_ % 4 == 2:
            flow.inject("RA", at_ms=12, ttl=101, ip_id=0)
        else:
            flow.client_close(at_ms=3000)
        t += 4.0
        control = cap.tcp(TLS_SERVER, 443, at=t)
        control.handshake()
        control.client_hello("example.com")
        control.server_hello()
        t += 0.5
        web = cap.tcp(HTTP_SERVER, 80, at=t)
        web.handshake()
        web.http_get("www.facebook.com")
        web.http_reply(http_response(302, "Found", [("Location", "http://blocked.example/")]))
        t += 0.5
        cap.tcp(SILENT_SERVER, 443, at=t).syn_unanswered()
        t += 4.0
        cap.tcp(REFUSING_SERVER, 443, at=t).syn_refused()
        t += 1.0 if round_ != 3 else 40.0  # a gap: the first half closes mid-capture
    return cap.write(path)


def _outputs(result: Result) -> tuple[str, str]:
    assert result.pipeline is not None
    report = build_report(result.verdicts, result.pipeline.catalog, "analyze")
    report.pop("generated", None)
    measurements = measurements_from_pipeline(result.pipeline, result.verdicts,
                                              run_id="20240101T000000Z_fingerprint_00",
                                              test_start_time=0.0)
    return (json.dumps(report, sort_keys=True, default=str),
            json.dumps(measurements, sort_keys=True, default=str))


def _analyze(path: Path, library: SignatureLibrary | None = None) -> Result:
    return analyze_files([str(path)], load_catalog(None), library or load_library(None),
                         TrustStore(None), on_problem=lambda _line: None)


def test_packed_flows_change_no_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _busy_capture(tmp_path / "busy.pcapng")
    packed = _analyze(path)
    assert packed.pipeline is not None
    items = [item for group in packed.pipeline.index.tcp_groups.values()
             for item in group.items]
    assert sum(isinstance(item, PackedFlow) for item in items) >= 10
    techniques = {f.technique for f in packed.verdicts.findings}
    assert {Technique.IP_BLACKHOLE, Technique.TLS_SNI_DROP, Technique.HTTP_BLOCKPAGE} <= techniques
    monkeypatch.setattr(observation_index, "EVIDENCE_FLOWS", 10**6)  # every kept flow whole
    whole = _analyze(path)
    assert whole.pipeline is not None
    assert not any(isinstance(item, PackedFlow) for group in
                   whole.pipeline.index.tcp_groups.values() for item in group.items)
    assert _outputs(packed) == _outputs(whole)


def test_pack_keeps_what_verdicts_and_measurements_read(tmp_path: Path) -> None:
    path = _busy_capture(tmp_path / "busy.pcapng")
    result = _analyze(path)
    assert result.pipeline is not None
    analysis = result.pipeline.index
    flows = [f for group in analysis.tcp_groups.values() for f in group
             if not f.compact and f.outcome is not None]
    assert flows
    for flow in flows:
        outcome = analysis.outcome(flow)
        record = pack(flow, outcome)
        assert record is not None
        copy: TcpFlow = unpack(record, flow.server)
        assert copy.outcome is not None
        assert copy.outcome.kind == outcome.kind
        assert [(p.ts, p.tcp_flags) for p in copy.outcome.decisive] == \
            [(p.ts, p.tcp_flags) for p in outcome.decisive]
        assert bool(copy.outcome.injected) == bool(outcome.injected)
        for name in ("client", "client_port", "server_port", "first_ts", "last_ts", "closed_ts",
                     "syn_count", "synack_conflicts", "trigger_sends", "client_closed_ts",
                     "server_packet_count", "server_bytes", "server_data_first_ts",
                     "server_data_last_ts", "trigger_len", "client_hello", "http_request",
                     "flight", "response", "server_data", "trigger_kind", "trigger_name"):
            assert getattr(copy, name) == getattr(flow, name), name
        for name in ("syn", "synack", "handshake_rst", "trigger"):
            original, rebuilt = getattr(flow, name), getattr(copy, name)
            assert (original is None) == (rebuilt is None), name
            if original is not None:
                assert (rebuilt.frame, rebuilt.ts, rebuilt.ttl, rebuilt.ip_id, rebuilt.df,
                        rebuilt.tcp_flags, rebuilt.src, rebuilt.dst, rebuilt.capture) == (
                    original.frame, original.ts, original.ttl, original.ip_id, original.df,
                    original.tcp_flags, original.src, original.dst, original.capture), name


# --------------------------------------------------------------------------- interrupted capture

def _interrupted(path: Path, last_gap: float) -> Path:
    """Controls and targets that work, then a SYN, a query and a ClientHello to blocked-looking
    targets sent `last_gap` seconds before the last packet of the capture."""
    cap = Capture(seed=5)
    cap.dns(RESOLVER, "example.com", at=0.0).respond(["203.0.113.99"], delay_ms=20, ttl=58)
    control = cap.tcp(TLS_SERVER, 443, at=0.5)
    control.handshake()
    control.client_hello("example.com")
    control.server_hello()
    for n, address in enumerate(("203.0.113.98", "203.0.113.97")):
        cap.tcp(address, 443, at=1.0 + n).handshake()
    end = 10.0
    cap.tcp(SILENT_SERVER, 443, at=end - last_gap).syn_unanswered(retries=0)
    cap.dns(RESOLVER, "twitter.com", at=end - last_gap)
    late = cap.tcp(TLS_SERVER, 443, at=end - last_gap)
    late.handshake()
    late.client_hello("twitter.com")
    # Something unrelated closes the capture at `end`.
    other = cap.tcp("203.0.113.96", 443, at=end)
    other.handshake()
    return cap.write(path)


@pytest.mark.parametrize("last_gap, pending", [(0.5, True), (6.0, False)])
def test_interrupted_capture_is_pending_not_blocked(tmp_path: Path, last_gap: float,
                                                    pending: bool) -> None:
    path = _interrupted(tmp_path / "cut.pcapng", last_gap)
    result = _analyze(path, SignatureLibrary([]))
    techniques = {f.technique for f in result.verdicts.findings}
    expected = {Technique.IP_BLACKHOLE, Technique.DNS_DROP, Technique.TLS_SNI_DROP}
    if pending:
        assert techniques.isdisjoint(expected), techniques
    else:  # the same packets with time to answer are drops
        assert expected <= techniques, techniques
    assert result.pipeline is not None
    measurements = measurements_from_pipeline(result.pipeline, result.verdicts)
    failures = [entry["failure"] for m in measurements
                for key in ("queries", "tcp_connect", "tls_handshakes")
                for entry in m["test_keys"][key] if entry.get("failure")]
    assert any(str(f).startswith("unknown_failure: capture ended") for f in failures) == pending


# --------------------------------------------------------------------------- vantage hints

def _without_hints(source: Path, out: Path) -> Path:
    """The capture's packets without the probe's section comment (another tool's capture)."""
    with open_ip_frames(source) as frames, CaptureWriter(out, sync=False) as writer:
        for frame in frames.ip_frames():
            writer.write(frame.ts, frame.data)
    return out


def _signatures(output: str) -> set[str]:
    report: dict[str, Any] = json.loads(output)
    return {s for p in report["platforms"] for f in p["findings"] for s in f["signatures"]}


def test_probe_cc_reaches_country_scoped_signatures(tmp_path: Path) -> None:
    capture = _without_hints(REPO / "pcaps/uz/sni-drop-2021/capture.pcapng.gz",
                             tmp_path / "other-tool.pcap")
    runner = CliRunner()
    plain = runner.invoke(cli, ["analyze", str(capture), "--json"], catch_exceptions=False)
    assert "uz-sni-drop-2021" not in _signatures(plain.output)
    jsonl = tmp_path / "m.jsonl"
    told = runner.invoke(cli, ["analyze", str(capture), "--json", "--probe-cc", "uz",
                               "--probe-asn", "AS8193", "--jsonl", str(jsonl)],
                         catch_exceptions=False)
    assert "uz-sni-drop-2021" in _signatures(told.output)
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert lines and all(m["probe_cc"] == "UZ" and m["probe_asn"] == "AS8193" for m in lines)
    # A country the signature is not scoped to does not make it fire.
    other = runner.invoke(cli, ["analyze", str(capture), "--json", "--probe-cc", "KZ"],
                          catch_exceptions=False)
    assert "uz-sni-drop-2021" not in _signatures(other.output)


def test_analysis_builds_no_reference_cycles(tmp_path: Path) -> None:
    """`fewer_collections` pauses the cyclic collector while a capture is analysed: that
    is only safe while the pipeline frees everything by reference counting."""
    path = _busy_capture(tmp_path / "busy.pcapng")
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        result = _analyze(path)
        _outputs(result)
        del result
        assert gc.collect() == 0
    finally:
        if was_enabled:
            gc.enable()
