"""The confirmation round: every finding of the sweep tested again, alone and paced.

A sweep opens many connections close together.  A path that loses packets in
bursts (a middlebox with a short queue or few connection slots) can make an
open platform's test fail while its controls, sent a moment earlier, passed
(issue 13, case 5).  So after the sweep each finding is re-tested: its
control first, then the finding's own test, one connection at a time for
that finding, inside the run's pacing (`--rate`, connections in flight).  A
censor reproduces; a burst loss does not.  (A DNS or QUIC test is sent once its
control has an answer, not after the control's whole window: see `_led_pair`.)

What ran is recorded in the capture notes (`CaptureHints.raw["confirmation"]`,
the pcapng section comment), so `analyze` reads the same facts as the live run:

    {"start": T0, "end": T1, "tests": [
        {"platform", "technique", "family", "target", "address", "port",
         "control": {"name"|"address", "dst", "dport", "sport", "proto", "at"},
         "test": {... same keys ...}}]}

`sport`/`dst`/`dport`/`proto` name each flow of the round exactly (a DNS
query: UDP from `sport` to `dst`:53); `at` is when the probe began it (the
capture's clock; its first packet follows, after any wait for pacing).
Every flow that starts between `start` and `end` belongs to the round, and
only those.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from typing import Any

from fingerprint.analysis.findings import Finding
from fingerprint.capture.packet import PROTO_UDP
from fingerprint.interrupt import POLL_S
from fingerprint.probes import dns as dns_probe
from fingerprint.probes import http as http_probe
from fingerprint.probes import ip as ip_probe
from fingerprint.probes import quic as quic_probe
from fingerprint.probes import tls as tls_probe
from fingerprint.probes.runner import Session

CONTROL_LEAD_S = 0.5
"""How long a DNS or QUIC test waits for its control's answer before it goes anyway."""


@dataclass(frozen=True)
class ConfirmationTest:
    platform: str
    technique: str
    family: str
    target: str
    """The name tested (dns, tls, http) or the address (ip)."""
    address: str
    """Where the test goes: the resolver queried, or the platform's address."""
    port: int
    control: str
    """The control name (dns, tls, http, quic) or the control address (ip)."""
    transport: str = "tcp"
    """How the test's ClientHello travels: "tcp" (TLS) or "udp" (a QUIC Initial)."""
    ech: bool = False
    """An ECH finding: the control is the target's ClientHello without a GREASE ECH
    extension, the test the same with it (the sweep's pair, `probes.quic`)."""


def _port(finding: Finding, family: str) -> int:
    for item in finding.evidence:
        if item.role == "trigger" and item.packet.dport:
            return int(item.packet.dport)
    return {"dns": 53, "http": 80}.get(family, 443)


def _transport(finding: Finding, family: str) -> str:
    """"udp" for a QUIC finding (quic.*, or ECH found on QUIC Initials), else "tcp"."""
    if family == "quic":
        return "udp"
    trigger = next((item.packet for item in finding.evidence if item.role == "trigger"), None)
    return "udp" if trigger is not None and trigger.proto == PROTO_UDP else "tcp"


def plan_confirmations(findings: list[Finding], resolver: str, control_name: str,
                       control_address: str | None) -> list[ConfirmationTest]:
    """One test per (family, address, target) among the findings, in finding order."""
    tests: list[ConfirmationTest] = []
    seen: set[tuple[str, str, str]] = set()
    for finding in findings:
        family = finding.technique.value.split(".")[0]
        if family not in ("dns", "tls", "http", "ip", "quic"):
            continue
        ech = finding.technique.value.startswith("tls.ech_")
        address = finding.address or (resolver if family == "dns" else finding.target)
        transport = _transport(finding, family)
        key = (family, address, finding.target)
        if key in seen:
            continue
        if family == "ip" and control_address is None:
            continue  # no control address to go first
        seen.add(key)
        control = control_address if family == "ip" and control_address else control_name
        tests.append(ConfirmationTest(finding.platform, finding.technique.value, family,
                                      finding.target, address, _port(finding, family), control,
                                      transport, ech))
    return tests


def _flow(kind: str, value: str, dst: str, dport: int, sport: int, proto: str,
          at: float) -> dict[str, Any]:
    return {kind: value, "dst": dst, "dport": dport, "sport": sport, "proto": proto,
            "at": round(at, 6)}


def _dns_step(session: Session, resolver: str, name: str) -> int:
    return dns_probe.query_attempt(session, resolver, name).local_port


def _led_pair(session: Session, name: str,
              control: Callable[[Callable[[], None], Callable[[], None]], int],
              test: Callable[[], int]) -> tuple[float, int, float, int]:
    """`control` in a thread of its own, then `test` once the control has its first answer,
    or CONTROL_LEAD_S after the control left when none comes (an address that runs no
    resolver, a dropped control, a residual block).

    An attempt's window stays open the whole timeout (late genuine answers count), so
    waiting for the control's window to close would double the round's cost; the
    control's answer, or that lead of its silence, is what must come first.
    `control(left, answered)` calls `left()` once its packet left and `answered()` at its
    first answer, and returns its source port.  Returns (control start, control port,
    test start, test port).
    """
    left, answered = threading.Event(), threading.Event()
    ports: list[int] = []

    def run_control() -> None:
        try:
            ports.append(control(left.set, answered.set))
        finally:
            # An ended control (answered or not) holds the test no longer.
            left.set()
            answered.set()

    at = time.time()
    worker = threading.Thread(target=run_control, name=f"probe-confirm-{name}", daemon=True)
    worker.start()
    while not left.wait(POLL_S):
        session.stop.check()
    lead_until = time.monotonic() + CONTROL_LEAD_S
    while not answered.wait(POLL_S) and time.monotonic() < lead_until:
        session.stop.check()
    test_at = time.time()
    test_port = test()
    while worker.is_alive():
        worker.join(POLL_S)
        session.stop.check()
    return at, ports[0] if ports else 0, test_at, test_port


def _dns_pair(session: Session, test: ConfirmationTest, note: dict[str, Any]) -> None:
    """The control query, then the test query (`_led_pair`)."""

    def control(left: Callable[[], None], answered: Callable[[], None]) -> int:
        left()
        return dns_probe.query_attempt(session, test.address, test.control,
                                       on_answer=lambda _name, _addresses: answered()
                                       ).local_port

    at, control_port, target_at, target_port = _led_pair(
        session, "dns", control, partial(_dns_step, session, test.address, test.target))
    note["control"] = _flow("name", test.control, test.address, test.port, control_port, "udp",
                            at)
    note["test"] = _flow("name", test.target, test.address, test.port, target_port, "udp",
                         target_at)


def _tls_step(session: Session, address: str, port: int, name: str) -> int:
    return tls_probe.tls_attempt(session, address, name, port=port).connect.local_port


def _http_step(session: Session, address: str, port: int, name: str) -> int:
    return http_probe.http_attempt(session, address, name, port=port).connect.local_port


def _ip_step(session: Session, address: str, port: int) -> int:
    return ip_probe.connect_attempt(session, address, port).local_port


def _ech_step(session: Session, address: str, port: int, name: str, grease_ech: bool) -> int:
    return tls_probe.ech_attempt(session, address, name, grease_ech=grease_ech,
                                 port=port).connect.local_port


def _quic_pair(session: Session, test: ConfirmationTest, note: dict[str, Any]) -> None:
    """A QUIC control Initial, then the test's (`_led_pair`): the control must go first (a
    block the test triggers cannot then hit it).  The control is the control SNI
    (quic.*) or, for an ECH finding, the target's Initial without GREASE ECH; the test is
    the target's (with GREASE ECH for ECH)."""
    control_sni = test.target if test.ech else test.control

    def control(left: Callable[[], None], answered: Callable[[], None]) -> int:
        attempt = quic_probe.quic_attempt(session, test.address, control_sni, port=test.port,
                                          on_sent=lambda _sent: left())
        if attempt.outcome == "answered":
            answered()
        return attempt.source_port

    def target() -> int:
        return session.slots.run(test.address, partial(
            quic_probe.quic_attempt, session, test.address, test.target, port=test.port,
            grease_ech=test.ech), session.stop).source_port

    at, control_port, target_at, target_port = _led_pair(session, "quic", control, target)
    note["control"] = _flow("name", control_sni, test.address, test.port, control_port, "udp",
                            at)
    note["test"] = _flow("name", test.target, test.address, test.port, target_port, "udp",
                         target_at)


def _run_one(session: Session, test: ConfirmationTest) -> dict[str, Any]:
    """Control, then the test, one after the other; the note describing both flows."""
    note: dict[str, Any] = {"platform": test.platform, "technique": test.technique,
                            "family": test.family, "target": test.target,
                            "address": test.address, "port": test.port}
    if test.family == "dns":
        _dns_pair(session, test, note)
        return note
    if test.transport == "udp":
        _quic_pair(session, test, note)
        return note
    steps: list[tuple[str, str, str, str, Callable[[], int]]] = []
    """(role, "name" or "address", its value, destination, step)"""
    for role, value in (("control", test.control), ("test", test.target)):
        if test.ech:
            # The target's ClientHello without, then with, a GREASE ECH extension.
            steps.append((role, "name", test.target, test.address,
                          partial(_ech_step, session, test.address, test.port, test.target,
                                  role == "test")))
        elif test.family == "tls":
            steps.append((role, "name", value, test.address,
                          partial(_tls_step, session, test.address, test.port, value)))
        elif test.family == "http":
            steps.append((role, "name", value, test.address,
                          partial(_http_step, session, test.address, test.port, value)))
        else:
            address = test.control if role == "control" else test.address
            steps.append((role, "address", address, address,
                          partial(_ip_step, session, address, test.port)))
    for role, kind, value, destination, step in steps:
        session.stop.check()
        at = time.time()
        # A connection holds a slot to its address like any other.
        sport = session.slots.run(destination, step, session.stop)
        note[role] = _flow(kind, value, destination, test.port, sport, "tcp", at)
    return note


def run_confirmations(session: Session, tests: list[ConfirmationTest],
                      futures: list[Future[dict[str, Any]]]) -> None:
    """Queue every test (each a task of its own: control then test, in that order).

    Tests of different addresses run side by side within the run's pacing: a
    test takes one connection slot to its address at a time, and the round
    as a whole at most the overall in-flight limit.
    """
    for test in tests:
        futures.append(session.submit(partial(_run_one, session, test)))
