"""The confirmation round as the analysis must read it (issue 13, case 5).

Crafted runs: a sweep in which twitter.com's ClientHellos go unanswered while
example.com's on the same address pass (tls.sni_drop on the sweep alone),
then a confirmation round, named in the capture notes as the probe writes
them (`fingerprint.probes.confirm`): the control again, then the target.

* The target is silent again: the finding stands.
* The target now gets its ServerHello: the finding did not reproduce, so the
  platform is `inconclusive` with both results, never `blocked`.  That rule is
  the analysis' (phase 2 of issue 13, after the analysis moves into its
  package); until it lands the test is an expected failure, strict, so the
  marker must go when the rule arrives.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fingerprint.analysis.confirm import NOTES_KEY
from fingerprint.testing import replay
from fingerprint.testing.craft import START, Capture, TcpFlow

SERVER = "203.0.113.10"
CATALOG = """platforms:
  twitter:
    name: Twitter / X
    domains: [twitter.com]
    addresses: [203.0.113.10]
control:
  domains: [example.com]
  addresses: [203.0.113.99]
"""
CONFIRMATION_AT = 10.0


def _tls_attempt(cap: Capture, sni: str, at: float, answered: bool) -> TcpFlow:
    flow = cap.tcp(SERVER, 443, at=at)
    flow.handshake()
    flow.client_hello(sni)
    if answered:
        flow.server_hello()
    else:
        for retry_ms in (200, 600, 1400):
            flow.retransmit(at_ms=retry_ms)
        flow.client_close(at_ms=2000, rst=True)
    return flow


def _note(flow: TcpFlow, name: str, at: float) -> dict[str, Any]:
    return {"name": name, "dst": SERVER, "dport": 443, "sport": flow.sport, "proto": "tcp",
            "at": START + at}


def _run(tmp_path: Path, *, reproduces: bool) -> Path:
    notes: dict[str, Any] = {"start": START + CONFIRMATION_AT, "tests": []}
    cap = Capture(seed=21, hints={NOTES_KEY: notes})
    _tls_attempt(cap, "example.com", 0.0, answered=True)
    _tls_attempt(cap, "example.com", 0.1, answered=True)
    for index in range(3):
        _tls_attempt(cap, "twitter.com", 1.0 + index / 10, answered=False)
    control = _tls_attempt(cap, "example.com", CONFIRMATION_AT, answered=True)
    target = _tls_attempt(cap, "twitter.com", CONFIRMATION_AT + 0.5, answered=not reproduces)
    notes["tests"].append({
        "platform": "twitter", "technique": "tls.sni_drop", "family": "tls",
        "target": "twitter.com", "address": SERVER, "port": 443,
        "control": _note(control, "example.com", CONFIRMATION_AT),
        "test": _note(target, "twitter.com", CONFIRMATION_AT + 0.5)})
    notes["end"] = START + CONFIRMATION_AT + 3.0
    (tmp_path / "catalog.yaml").write_text(CATALOG)
    return cap.write(tmp_path / "capture.pcapng")


def test_a_finding_the_confirmation_reproduces_stands(tmp_path: Path) -> None:
    result = replay(_run(tmp_path, reproduces=True), catalog=tmp_path / "catalog.yaml")
    result.expect(technique="tls.sni_drop", target="twitter.com")
    assert result.status("twitter") == "blocked"


def test_a_finding_the_confirmation_does_not_reproduce_is_inconclusive(tmp_path: Path) -> None:
    result = replay(_run(tmp_path, reproduces=False), catalog=tmp_path / "catalog.yaml")
    assert result.status("twitter") == "inconclusive"
    assert not result.findings
    entry = next(p for p in result.report["platforms"] if p["platform"] == "twitter")
    text = str(entry)
    assert "confirm" in text, "both results are reported"
