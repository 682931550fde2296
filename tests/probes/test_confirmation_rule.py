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
from fingerprint.testing.craft import START, Capture
from fingerprint.testing.scenes import round_note, tls_attempt, write_catalog

SERVER = "203.0.113.10"
CONFIRMATION_AT = 10.0


def _run(tmp_path: Path, *, reproduces: bool) -> Path:
    notes: dict[str, Any] = {"start": START + CONFIRMATION_AT, "tests": []}
    cap = Capture(seed=21, hints={NOTES_KEY: notes})
    tls_attempt(cap, SERVER, "example.com", 0.0, answered=True)
    tls_attempt(cap, SERVER, "example.com", 0.1, answered=True)
    for index in range(3):
        tls_attempt(cap, SERVER, "twitter.com", 1.0 + index / 10, answered=False)
    control = tls_attempt(cap, SERVER, "example.com", CONFIRMATION_AT, answered=True)
    target = tls_attempt(cap, SERVER, "twitter.com", CONFIRMATION_AT + 0.5, answered=not reproduces)
    notes["tests"].append({
        "platform": "twitter", "technique": "tls.sni_drop", "family": "tls",
        "target": "twitter.com", "address": SERVER, "port": 443,
        "control": round_note(control, "example.com", CONFIRMATION_AT),
        "test": round_note(target, "twitter.com", CONFIRMATION_AT + 0.5)})
    notes["end"] = START + CONFIRMATION_AT + 3.0
    write_catalog(tmp_path)
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
    tls_attempt(cap, SERVER, "example.com", 0.0, answered=True)
    tls_attempt(cap, SERVER, "example.com", 0.1, answered=True)
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
        "control": round_note(control, cname, cat), "test": round_note(target, tname, tat)})
    notes["end"] = START + CONFIRMATION_AT + 3.0
    write_catalog(tmp_path)
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
