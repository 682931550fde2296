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
* A throttle is judged by the round's transfers, the control's just before the
  target's: slow again stands, alike is inconclusive (the sweep's transfers were made
  at different moments through a busy queue).
* An ip.* finding is confirmed only when the round's control address connected: both
  reset is an outage or a block of the client's whole address.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fingerprint.analysis.confirm import NOTES_KEY
from fingerprint.testing import replay
from fingerprint.testing.craft import START, Capture, QuicFlow, TcpFlow
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


TRANSFER = bytes(65536)


def _transfer(cap: Capture, sni: str, at: float, *, gap_ms: float) -> TcpFlow:
    """A handshake, then 64 kB in segments `gap_ms` apart (80 ms: about 17 kB/s)."""
    flow = cap.tcp(SERVER, 443, at=at)
    flow.handshake()
    flow.client_hello(sni)
    end = flow.server_hello()
    flow.server_send(TRANSFER, at_ms=end + 1, gap_ms=gap_ms, fin=True)
    return flow


def _throttle_run(tmp_path: Path, *, slow_again: bool) -> Path:
    """Sweep: example.com's transfers fast, twitter.com's three all slow (as a slow hop's
    queue filled by other traffic makes them).  Round: the control's transfer, then the
    target's, one after the other."""
    notes: dict[str, Any] = {"start": START + CONFIRMATION_AT, "tests": []}
    cap = Capture(seed=23, hints={NOTES_KEY: notes})
    _transfer(cap, "example.com", 0.0, gap_ms=0.1)
    _transfer(cap, "example.com", 0.2, gap_ms=0.1)
    for index in range(3):
        _transfer(cap, "twitter.com", 1.0 + index / 10, gap_ms=80)
    control = _transfer(cap, "example.com", CONFIRMATION_AT, gap_ms=0.1)
    target = _transfer(cap, "twitter.com", CONFIRMATION_AT + 0.5,
                       gap_ms=80 if slow_again else 0.1)
    notes["tests"].append({
        "platform": "twitter", "technique": "tls.sni_throttle", "family": "tls",
        "target": "twitter.com", "address": SERVER, "port": 443,
        "control": round_note(control, "example.com", CONFIRMATION_AT),
        "test": round_note(target, "twitter.com", CONFIRMATION_AT + 0.5)})
    notes["end"] = START + CONFIRMATION_AT + 6.0
    write_catalog(tmp_path)
    return cap.write(tmp_path / "capture.pcapng")


def test_a_throttle_the_round_measures_again_stands(tmp_path: Path) -> None:
    result = replay(_throttle_run(tmp_path, slow_again=True), catalog=tmp_path / "catalog.yaml")
    finding = result.expect(technique="tls.sni_throttle", target="twitter.com")
    assert any(note.startswith("confirmed by the confirmation round") for note in finding.notes)


def test_a_throttle_the_round_does_not_measure_again_is_inconclusive(tmp_path: Path) -> None:
    """The sweep compared transfers made at different moments; the round's, made one after
    the other, are alike: no tls.sni_throttle (issue 14: QUIC datagrams queued beside TCP)."""
    result = replay(_throttle_run(tmp_path, slow_again=False), catalog=tmp_path / "catalog.yaml")
    assert result.status("twitter") == "inconclusive"
    assert not result.findings
    entry = next(p for p in result.report["platforms"] if p["platform"] == "twitter")
    [check] = [t for t in entry["tested"] if "not reproduced" in t["detail"]]
    assert "kB/s" in check["detail"]


CONTROL_ADDRESS = "203.0.113.99"


def _ip_run(tmp_path: Path, *, control_works: bool) -> Path:
    """Sweep: every connection to twitter's address reset at the SYN, the control address
    connects.  Round: the control address, then twitter's address, both reset when the
    client's whole address is blocked, or the control connecting."""
    notes: dict[str, Any] = {"start": START + CONFIRMATION_AT, "tests": []}
    cap = Capture(seed=24, hints={NOTES_KEY: notes})
    for port in (443, 80):
        cap.tcp(CONTROL_ADDRESS, port, at=0.0).handshake().client_close(at_ms=20)
        for index in range(3):
            cap.tcp(SERVER, port, at=1.0 + index / 10).syn_refused(ttl=61, ip_id=1, df=False)
    control = cap.tcp(CONTROL_ADDRESS, 443, at=CONFIRMATION_AT)
    if control_works:
        control.handshake().client_close(at_ms=20)
    else:
        control.syn_refused(ttl=61, ip_id=1, df=False)
    target = cap.tcp(SERVER, 443, at=CONFIRMATION_AT + 0.5).syn_refused(ttl=61, ip_id=1, df=False)

    def note(flow: TcpFlow, address: str, at: float) -> dict[str, Any]:
        return {"address": address, "dst": address, "dport": 443, "sport": flow.sport,
                "proto": "tcp", "at": START + at}

    notes["tests"].append({
        "platform": "twitter", "technique": "ip.reset", "family": "ip", "target": SERVER,
        "address": SERVER, "port": 443,
        "control": note(control, CONTROL_ADDRESS, CONFIRMATION_AT),
        "test": note(target, SERVER, CONFIRMATION_AT + 0.5)})
    notes["end"] = START + CONFIRMATION_AT + 3.0
    write_catalog(tmp_path)
    return cap.write(tmp_path / "capture.pcapng")


def test_an_ip_finding_whose_round_control_connected_stands(tmp_path: Path) -> None:
    result = replay(_ip_run(tmp_path, control_works=True), catalog=tmp_path / "catalog.yaml")
    finding = result.expect(technique="ip.reset", target=SERVER)
    assert any(note.startswith("confirmed by the confirmation round") for note in finding.notes)


def test_an_ip_finding_whose_round_control_failed_too_is_not_confirmed(tmp_path: Path) -> None:
    """Both reset in the round: an outage or a block of the client's whole address (the
    injector-residual scenario), no proof about this address."""
    result = replay(_ip_run(tmp_path, control_works=False), catalog=tmp_path / "catalog.yaml")
    assert result.status("twitter") == "inconclusive"
    assert not result.findings
    entry = next(p for p in result.report["platforms"] if p["platform"] == "twitter")
    assert any("not reproduced" in t["detail"] for t in entry["tested"])


# QUIC: the round's control Initial, then the target's (`probes.confirm._quic_pair`).

def _quic(cap: Capture, sni: str, at: float, *, answered: bool) -> QuicFlow:
    flow = cap.quic(SERVER, 443, at=at)
    flow.initial(sni)
    if answered:
        flow.answer()
    return flow


def _quic_run(tmp_path: Path, *, target_answered: bool, control_answered: bool = True,
              residual: bool = False, technique: str = "quic.sni_drop") -> Path:
    """Sweep: google.com's Initials unanswered while example.com's on the same address are
    answered (quic.sni_drop), with `residual`, later datagrams to the address unanswered
    too.  Round: the control Initial, then the target's, answered as told."""
    notes: dict[str, Any] = {"start": START + CONFIRMATION_AT * 4, "tests": []}
    cap = Capture(seed=23, hints={NOTES_KEY: notes})
    _quic(cap, "example.com", 0.0, answered=True)
    for index in range(2):
        _quic(cap, "google.com", 1.0 + index, answered=False)
    if residual:
        cap.quic(SERVER, 443, at=8.0).datagram(b"later datagram", at_s=0.0)
    at = CONFIRMATION_AT * 4
    control = _quic(cap, "example.com", at, answered=control_answered)
    target = _quic(cap, "google.com", at + 0.5, answered=target_answered)
    notes["tests"].append({
        "platform": "google", "technique": technique, "family": "quic",
        "target": "google.com", "address": SERVER, "port": 443,
        "control": round_note(control, "example.com", at),
        "test": round_note(target, "google.com", at + 0.5)})
    notes["end"] = START + at + 3.0
    # A last packet 30 s on: the round's silences are due, not pending.
    cap.quic("192.0.2.99", 443, at=at + 33.0).datagram(b"end", at_s=0.0)
    write_catalog(tmp_path, GOOGLE_CATALOG)
    return cap.write(tmp_path / "capture.pcapng")


GOOGLE_CATALOG = "platforms:\n  google:\n    name: Google\n    domains: [google.com]\n"


def test_a_quic_drop_the_round_reproduces_beside_an_answered_control_stands(tmp_path: Path) -> None:
    result = replay(_quic_run(tmp_path, target_answered=False), catalog=tmp_path / "catalog.yaml")
    finding = result.expect(technique="quic.sni_drop", target="google.com")
    assert any(note.startswith("confirmed by the confirmation round") for note in finding.notes)


def test_a_quic_finding_whose_target_the_round_got_answered_is_inconclusive(tmp_path: Path) -> None:
    result = replay(_quic_run(tmp_path, target_answered=True), catalog=tmp_path / "catalog.yaml")
    assert not result.findings and result.status("google") == "inconclusive"
    assert "QUIC answered" in str(result.report)


def test_a_round_silent_for_the_quic_control_too_confirms_nothing(tmp_path: Path) -> None:
    # An outage looks the same as the drop: without the sweep's residual block, no verdict.
    result = replay(_quic_run(tmp_path, target_answered=False, control_answered=False),
                    catalog=tmp_path / "catalog.yaml")
    assert not result.findings and result.status("google") == "inconclusive"


def test_a_quic_round_that_meets_the_sweeps_residual_block_leaves_the_finding(tmp_path: Path) -> None:
    # The GFW blocks the client's UDP to the address and port for about 180 s: the round's
    # control is silent because of the block the sweep already showed.
    result = replay(_quic_run(tmp_path, target_answered=False, control_answered=False,
                              residual=True), catalog=tmp_path / "catalog.yaml")
    finding = result.expect(technique="quic.sni_drop", target="google.com")
    assert any("met the residual block" in note for note in finding.notes)
