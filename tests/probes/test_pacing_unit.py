"""The probe's default pacing and the confirmation round's plan, without root.

Connection slots bound what is in flight per destination and overall (issue 13,
case 5); the confirmation round plans one test per finding, each with its
control, and the notes that name its flows go into the capture hints, which
replay reads back unchanged.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from click.testing import CliRunner

from fingerprint.analysis.confirm import NOTES_KEY
from fingerprint.analysis.evidence import EvidencePacket
from fingerprint.analysis.findings import Finding
from fingerprint.analysis.observe import CaptureHints
from fingerprint.capture.packet import PROTO_UDP, Packet
from fingerprint.model import Technique
from fingerprint.probes.cli import probe
from fingerprint.probes.confirm import plan_confirmations
from fingerprint.probes.runner import (
    DEFAULT_IN_FLIGHT,
    DEFAULT_PER_DESTINATION,
    DEFAULT_RATE,
    ConnectionSlots,
)
from fingerprint.probes.sweep import ProbeConfig


def test_slots_bound_what_is_in_flight_per_destination_and_overall() -> None:
    slots = ConnectionSlots(per_destination=2, overall=3)
    lock = threading.Lock()
    in_flight: dict[str, int] = {}
    peaks: dict[str, int] = {}
    total_peak = [0]

    def task(address: str) -> None:
        with lock:
            in_flight[address] = in_flight.get(address, 0) + 1
            peaks[address] = max(peaks.get(address, 0), in_flight[address])
            total_peak[0] = max(total_peak[0], sum(in_flight.values()))
        time.sleep(0.02)
        with lock:
            in_flight[address] -= 1

    addresses = ["203.0.113.1"] * 6 + ["203.0.113.2"] * 6 + ["203.0.113.3"] * 6
    with ThreadPoolExecutor(max_workers=18) as pool:
        list(pool.map(lambda a: slots.run(a, lambda: task(a)), addresses))
    assert max(peaks.values()) == 2
    assert total_peak[0] == slots.peak == 3


def test_the_defaults_are_paced_and_documented() -> None:
    config_defaults = ProbeConfig.__dataclass_fields__
    assert config_defaults["rate"].default == DEFAULT_RATE
    assert config_defaults["per_destination"].default == DEFAULT_PER_DESTINATION
    assert config_defaults["in_flight"].default == DEFAULT_IN_FLIGHT
    assert config_defaults["confirm"].default is True
    text = " ".join(CliRunner().invoke(probe, ["--help"], terminal_width=100).output.split())
    assert f"[default: {DEFAULT_RATE};" in text and f"[default: {DEFAULT_PER_DESTINATION};" in text
    # The pacing paragraph states the same numbers.
    assert f"(default {DEFAULT_RATE:g};" in text
    assert f"(default {DEFAULT_PER_DESTINATION})" in text
    assert f"(default {DEFAULT_IN_FLIGHT})" in text
    assert "--per-destination" in text and "--in-flight" in text and "--no-confirm" in text
    assert "confirmation round" in text


def finding(technique: Technique, target: str, address: str | None,
            platform: str = "twitter") -> Finding:
    return Finding(platform, target, technique, 0.9, address)


def test_every_finding_is_planned_once_with_its_control() -> None:
    findings = [
        finding(Technique.TLS_SNI_RESET, "twitter.com", "203.0.113.20"),
        finding(Technique.TLS_SNI_RESET, "twitter.com", "203.0.113.20"),  # same test
        finding(Technique.DNS_INJECTION, "twitter.com", None),
        finding(Technique.HTTP_BLOCKPAGE, "twitter.com", "203.0.113.20"),
        finding(Technique.IP_BLACKHOLE, "203.0.113.30", "203.0.113.30", "telegram"),
    ]
    tests = plan_confirmations(findings, "203.0.113.53", "example.com", "203.0.113.99")
    assert [(t.family, t.address, t.target, t.control, t.port) for t in tests] == [
        ("tls", "203.0.113.20", "twitter.com", "example.com", 443),
        ("dns", "203.0.113.53", "twitter.com", "example.com", 53),
        ("http", "203.0.113.20", "twitter.com", "example.com", 80),
        ("ip", "203.0.113.30", "203.0.113.30", "203.0.113.99", 443),
    ]
    without_control_address = plan_confirmations(findings[-1:], "203.0.113.53", "example.com",
                                                 None)
    assert without_control_address == []


def test_quic_and_ech_findings_are_planned_on_their_own_transport() -> None:
    """QUIC findings go again as QUIC Initials (control SNI first); ECH findings as the
    target's ClientHello without, then with, GREASE ECH, over the transport the finding's
    trigger used (a QUIC Initial or a TCP connection)."""
    quic_trigger = EvidencePacket(_udp_packet(), "trigger", [], {})
    findings = [
        finding(Technique.QUIC_SNI_DROP, "google.com", "203.0.113.11", "google"),
        finding(Technique.TLS_ECH_DROP, "cloudflare-ech.com", "203.0.113.40", "other"),
        finding(Technique.TLS_ECH_DROP, "cloudflare-ech.com", "203.0.113.41", "other"),
    ]
    findings[0].evidence.append(quic_trigger)
    findings[2].evidence.append(quic_trigger)
    tests = plan_confirmations(findings, "203.0.113.53", "example.com", "203.0.113.99")
    assert [(t.family, t.address, t.transport, t.ech) for t in tests] == [
        ("quic", "203.0.113.11", "udp", False),
        ("tls", "203.0.113.40", "tcp", True),
        ("tls", "203.0.113.41", "udp", True),
    ]


def _udp_packet() -> Packet:
    return Packet(frame=1, ts=0.0, version=4, src="192.0.2.10", dst="203.0.113.11", ttl=64,
                  ip_id=1, df=True, proto=PROTO_UDP, sport=40000, dport=443)


def test_confirmation_notes_round_trip_through_the_capture_comment() -> None:
    hints = CaptureHints()
    flow: dict[str, Any] = {"name": "example.com", "dst": "203.0.113.20", "dport": 443,
                            "sport": 40000, "proto": "tcp", "at": 1.5}
    hints.raw[NOTES_KEY] = {"start": 1.0, "end": 9.0, "tests": [{
        "platform": "twitter", "technique": "tls.sni_reset", "family": "tls",
        "target": "twitter.com", "address": "203.0.113.20", "port": 443,
        "control": flow, "test": {**flow, "name": "twitter.com", "sport": 40001, "at": 2.5}}]}
    replayed = CaptureHints.from_comments([hints.to_comment()])
    assert replayed.raw[NOTES_KEY] == hints.raw[NOTES_KEY]


def test_overall_slots_go_in_the_order_they_were_asked_for() -> None:
    slots = ConnectionSlots(per_destination=4, overall=1)
    order: list[int] = []
    release = threading.Event()

    def hold() -> None:
        release.wait(5)

    first = threading.Thread(target=slots.run, args=("203.0.113.1", hold))
    first.start()
    time.sleep(0.05)
    waiters = []
    for i in range(4):
        waiter = threading.Thread(target=slots.run,
                                  args=(f"203.0.113.{10 + i}", lambda i=i: order.append(i)))
        waiter.start()
        waiters.append(waiter)
        time.sleep(0.3)  # longer than a poll: each waiter has queued before the next asks
    release.set()
    for thread in [first, *waiters]:
        thread.join(5)
    assert order == [0, 1, 2, 3]
