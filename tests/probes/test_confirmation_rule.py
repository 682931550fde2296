"""The confirmation round as the analysis must read it (issue 13, case 5).

Crafted runs: a sweep in which twitter.com's ClientHellos go unanswered while
example.com's on the same address pass (tls.sni_drop on the sweep alone),
then a confirmation round, named in the capture notes as the probe writes
them (`fingerprint.probes.confirm`): the control again, then the target.

* The target is silent again: the finding stands.
* The target now gets its ServerHello: the finding did not reproduce, so the
  platform is `inconclusive` with both results, never `blocked`.  That rule is
  the analysis' (phase 2 of issue 13, after the analysis moves into its
  package).
* After an injected reset, the round's target and control are both reset at the
  SYN (the censor's residual blocking of the client): that is no contradiction of
  the finding, which stands with the round named; the same round going silent
  (an outage) would not confirm anything.
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


def _residual_run(tmp_path: Path, *, reset_at_syn: bool) -> Path:
    """Sweep: the control works, twitter.com's ClientHello draws a forged RST.  Round: the
    control and the target again, both answered by a RST to the SYN (or both silent)."""
    notes: dict[str, Any] = {"start": START + CONFIRMATION_AT, "tests": []}
    cap = Capture(seed=22, hints={NOTES_KEY: notes})
    _tls_attempt(cap, "example.com", 0.0, answered=True)
    _tls_attempt(cap, "example.com", 0.1, answered=True)
    trigger = cap.tcp(SERVER, 443, at=1.0)
    trigger.handshake()
    trigger.client_hello("twitter.com")
    trigger.inject("RA", at_ms=40, ttl=112, df=False, window=2219)
    flows = []
    for offset, name in ((0.0, "example.com"), (0.5, "twitter.com")):
        flow = cap.tcp(SERVER, 443, at=CONFIRMATION_AT + offset)
        if reset_at_syn:
            flow.syn_refused(ttl=112, df=False)
        else:
            flow.syn_unanswered()
        flows.append((flow, name, CONFIRMATION_AT + offset))
    (control, cname, cat), (target, tname, tat) = flows
    notes["tests"].append({
        "platform": "twitter", "technique": "tls.sni_reset", "family": "tls",
        "target": "twitter.com", "address": SERVER, "port": 443,
        "control": _note(control, cname, cat), "test": _note(target, tname, tat)})
    notes["end"] = START + CONFIRMATION_AT + 3.0
    (tmp_path / "catalog.yaml").write_text(CATALOG)
    return cap.write(tmp_path / "capture.pcapng")


def test_a_round_that_meets_residual_blocking_leaves_the_finding(tmp_path: Path) -> None:
    result = replay(_residual_run(tmp_path, reset_at_syn=True), catalog=tmp_path / "catalog.yaml")
    finding = result.expect(technique="tls.sni_reset", target="twitter.com")
    assert any("met the censor's residual blocking" in note for note in finding.notes)
    assert result.status("twitter") == "blocked"


def test_a_round_gone_silent_confirms_nothing(tmp_path: Path) -> None:
    result = replay(_residual_run(tmp_path, reset_at_syn=False), catalog=tmp_path / "catalog.yaml")
    assert result.status("twitter") == "inconclusive"
    assert not result.findings


def _transfer(cap: Capture, sni: str, at: float, *, gap_ms: float) -> TcpFlow:
    """A TLS attempt whose 16.8 kB after the handshake arrive `gap_ms` apart per segment."""
    flow = cap.tcp(SERVER, 443, at=at)
    flow.handshake()
    flow.client_hello(sni)
    end = flow.server_hello()
    last = flow.server_send(b"\x17\x03\x03" + bytes(12 * 1400 - 3), at_ms=end + 5, gap_ms=gap_ms)
    flow.client_close(at_ms=last + 5)
    return flow


def _throttle_run(tmp_path: Path, *, reproduces: bool) -> Path:
    """Sweep: the control transfers fast, twitter.com's three transfers about 30 times
    slower (all behind a congested queue).  Round: the control, then the target, slow again
    or not."""
    notes: dict[str, Any] = {"start": START + CONFIRMATION_AT, "tests": []}
    cap = Capture(seed=23, hints={NOTES_KEY: notes})
    _transfer(cap, "example.com", 0.0, gap_ms=3)
    for index in range(3):
        _transfer(cap, "twitter.com", 1.0 + index * 2.0, gap_ms=95)
    control = _transfer(cap, "example.com", CONFIRMATION_AT, gap_ms=3)
    target = _transfer(cap, "twitter.com", CONFIRMATION_AT + 0.5,
                       gap_ms=95 if reproduces else 3.5)
    notes["tests"].append({
        "platform": "twitter", "technique": "tls.sni_throttle", "family": "tls",
        "target": "twitter.com", "address": SERVER, "port": 443,
        "control": _note(control, "example.com", CONFIRMATION_AT),
        "test": _note(target, "twitter.com", CONFIRMATION_AT + 0.5)})
    notes["end"] = START + CONFIRMATION_AT + 3.0
    (tmp_path / "catalog.yaml").write_text(CATALOG)
    return cap.write(tmp_path / "capture.pcapng")


def test_a_throttle_the_round_reproduces_stands(tmp_path: Path) -> None:
    result = replay(_throttle_run(tmp_path, reproduces=True), catalog=tmp_path / "catalog.yaml")
    finding = result.expect(technique="tls.sni_throttle", target="twitter.com")
    assert any("confirmed by the confirmation round" in note for note in finding.notes)


def test_a_throttle_the_round_does_not_reproduce_is_inconclusive(tmp_path: Path) -> None:
    """Issue 13, slow middlebox: the sweep's targets, sent after their controls, queued behind
    a congested hop; the lone pair of the round transfers alike: not a throttle."""
    result = replay(_throttle_run(tmp_path, reproduces=False), catalog=tmp_path / "catalog.yaml")
    assert result.status("twitter") == "inconclusive"
    assert not result.findings
    entry = next(p for p in result.report["platforms"] if p["platform"] == "twitter")
    assert "kB/s" in str(entry) and "not reproduced" in str(entry)
