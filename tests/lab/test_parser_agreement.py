"""The censors' own packet parser against the analysis' parser, packet by packet,
over every fixture capture under `pcaps/`.

The lab censors parse with separate code on purpose (`fingerprint.lab.censors`
docstring): an oracle must not share the parser of what it checks.  The two
must still read the same packets the same way, or a lab run would test the
analysis against a censor that saw something else.  For every IPv4 TCP/UDP
packet: addresses, TTL, IP ID, ports, sequence numbers, TCP flags, window and
payload; the SNI of every ClientHello, the Host of every HTTP request and the
qname of every DNS query agree.
"""

from __future__ import annotations

from pathlib import Path

import dns.exception
import dns.message
import pytest

from fingerprint.capture.reader import open_capture, open_ip_frames
from fingerprint.lab.censors import _wire
from fingerprint.protocols.dns import parse_dns
from fingerprint.protocols.http import parse_request
from fingerprint.protocols.tls import parse_client_hello

PCAPS = Path(__file__).resolve().parents[2] / "pcaps"
CAPTURES = sorted(p for p in PCAPS.rglob("*") if p.name.endswith((".pcap", ".pcapng", ".pcap.gz",
                                                                   ".pcapng.gz")))


def _censor_qname(payload: bytes) -> str | None:
    """The qname as the censor engine reads it (dnspython, one question)."""
    try:
        query = dns.message.from_wire(payload)
    except (dns.exception.DNSException, ValueError):
        return None
    if len(query.question) != 1:
        return None
    return str(query.question[0].name.to_text().rstrip(".").lower())


def test_there_are_fixture_captures() -> None:
    assert len(CAPTURES) >= 30


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: str(p.relative_to(PCAPS)))
def test_censor_and_analysis_parse_every_packet_alike(capture: Path) -> None:
    frames = open_ip_frames(capture)
    try:
        raw = {f.frame: f.data for f in frames.ip_frames()}
    finally:
        frames.close()
    compared = {"packets": 0, "sni": 0, "host": 0, "qname": 0}
    disagreements: list[str] = []
    with open_capture(capture) as packets:
        for packet in packets:
            if packet.version != 4 or packet.proto not in (6, 17) or packet.truncated:
                continue
            censor = _wire.parse(raw[packet.frame])
            where = f"{capture.relative_to(PCAPS)} frame {packet.frame}"
            if censor is None:
                disagreements.append(f"{where}: the censor parser skips it")
                continue
            compared["packets"] += 1
            theirs: tuple[object, ...] = (censor.src, censor.dst, censor.ttl, censor.ip_id, censor.proto,
                      censor.sport, censor.dport, censor.payload)
            ours: tuple[object, ...] = (packet.src, packet.dst, packet.ttl, packet.ip_id, packet.proto,
                    packet.sport, packet.dport, packet.payload)
            if packet.proto == 6:
                theirs += (censor.seq, censor.ack, censor.tcp_flags, censor.window)
                ours += (packet.seq, packet.ack, packet.tcp_flags & 0x3F, packet.window)
            if theirs != ours:
                disagreements.append(f"{where}: censor {theirs[:7]} analysis {ours[:7]}")
                continue
            payload = packet.payload
            if packet.proto == 6 and payload:
                hello = parse_client_hello(payload)
                sni = hello.sni.lower() if hello is not None and hello.sni else None
                if _wire.tls_sni(payload) != sni:
                    disagreements.append(f"{where}: SNI {_wire.tls_sni(payload)!r} vs {sni!r}")
                compared["sni"] += sni is not None
                request = parse_request(payload)
                host = request.host.lower().split(":")[0] if request and request.host else None
                if _wire.http_host(payload) != host:
                    disagreements.append(f"{where}: Host {_wire.http_host(payload)!r} vs {host!r}")
                compared["host"] += host is not None
            if packet.proto == 17 and 53 in (packet.sport, packet.dport) and payload:
                message = parse_dns(payload)
                if message is not None and not message.is_response:
                    qname = message.qname.rstrip(".").lower()
                    if _censor_qname(payload) != qname:
                        disagreements.append(f"{where}: qname {_censor_qname(payload)!r} "
                                             f"vs {qname!r}")
                    compared["qname"] += 1
    assert not disagreements, "\n".join(disagreements[:20])
    if capture.parts[-3:-1] == ("lab", "gfw"):  # the comparison is not vacuous
        assert min(compared.values()) > 0, compared
    assert compared["packets"] > 0 or capture.stat().st_size < 2000, compared
