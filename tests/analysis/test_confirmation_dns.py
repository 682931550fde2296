"""The confirmation round judges DNS findings too (issue 13, item 5).

Crafted runs: in the sweep the resolver leaves twitter.com's queries unanswered
while example.com's are answered (dns.drop on the sweep alone); then the round,
named in the capture notes as the probe writes them (`fingerprint.probes.confirm`
on the lab branch): the control query, then the target's.  A burst that lost the
sweep's queries does not lose the round's: the target is answered and the
finding is inconclusive with both results.  A resolver that drops the name drops
it again: the finding stands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fingerprint.analysis.confirm import NOTES_KEY
from fingerprint.testing import replay
from fingerprint.testing.craft import START, Capture
from fingerprint.testing.scenes import round_note, write_catalog

RESOLVER = "203.0.113.53"
ROUND_AT = 10.0


def _run(tmp_path: Path, *, reproduces: bool) -> Path:
    notes: dict[str, Any] = {"start": START + ROUND_AT, "tests": []}
    cap = Capture(seed=5, hints={NOTES_KEY: notes})
    for at in (0.0, 0.1):
        cap.dns(RESOLVER, "example.com", at=at).respond(["203.0.113.99"], delay_ms=30, ttl=60)
    for at in (0.2, 0.3):
        cap.dns(RESOLVER, "twitter.com", at=at)
    control = cap.dns(RESOLVER, "example.com", at=ROUND_AT)
    control.respond(["203.0.113.99"], delay_ms=30, ttl=60)
    target = cap.dns(RESOLVER, "twitter.com", at=ROUND_AT + 0.1)
    if not reproduces:
        target.respond(["203.0.113.10"], delay_ms=30, ttl=60)
    notes["tests"].append({
        "platform": "twitter", "technique": "dns.drop", "family": "dns",
        "target": "twitter.com", "address": RESOLVER, "port": 53,
        "control": round_note(control, "example.com", ROUND_AT),
        "test": round_note(target, "twitter.com", ROUND_AT + 0.1)})
    notes["end"] = START + ROUND_AT + 3.0
    # A later control query (after the round): the capture runs past the round's window.
    cap.dns(RESOLVER, "example.com", at=ROUND_AT + 5.0).respond(["203.0.113.99"], delay_ms=30,
                                                                 ttl=60)
    write_catalog(tmp_path)
    return cap.write(tmp_path / "capture.pcapng")


def test_a_dns_finding_the_round_reproduces_stands(tmp_path: Path) -> None:
    result = replay(_run(tmp_path, reproduces=True), catalog=tmp_path / "catalog.yaml")
    finding = result.expect(technique="dns.drop", target="twitter.com")
    assert any(note.startswith("confirmed by the confirmation round") for note in finding.notes)
    assert result.status("twitter") == "blocked"


def test_a_dns_finding_the_round_does_not_reproduce_is_inconclusive(tmp_path: Path) -> None:
    result = replay(_run(tmp_path, reproduces=False), catalog=tmp_path / "catalog.yaml")
    assert result.status("twitter") == "inconclusive"
    assert not result.findings
    [check] = [c for c in result.result.verdicts.checks if c.detail.startswith("not reproduced")]
    assert "sweep: dns.drop" in check.detail
    assert "target NOERROR 203.0.113.10" in check.detail and check.control_ok is True
