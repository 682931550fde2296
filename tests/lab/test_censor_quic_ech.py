"""The QUIC and ECH lab behaviours and the engine's QUIC / ClientHello paths, without root:
the GFW's QUIC SNI drop with its 3-tuple residual block (UDP only), TSPU's ECH drop over
TCP (ClientHello reassembled from segments) and QUIC, and UDP/443 dropped for everyone."""

from __future__ import annotations

import random
from typing import Any

from scapy.layers.inet import IP, TCP, UDP

from fingerprint.lab.censors import build_behaviour
from fingerprint.lab.censors._wire import Packet, parse
from fingerprint.lab.censors.base import CensorSetup
from fingerprint.lab.censors.engine import Engine
from fingerprint.protocols import quic, quic_initial, tls

CLIENT = "192.0.2.10"
SERVER = "203.0.113.20"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def engine_for(name: str, options: dict[str, Any] | None = None,
               domains: tuple[str, ...] = ("twitter.com",)) -> tuple[Engine, Clock]:
    clock = Clock()
    rule = build_behaviour(name, options or {}, domains, (SERVER,))
    return Engine([rule], None, send=lambda _d, _p: None, clock=clock), clock


def initial(sni: str, *, sport: int = 40000, ech: bool = False, version: int = quic.QUIC_V1) -> Packet:
    rng = random.Random(sport)
    scid = rng.randbytes(8)
    hello = tls.build_client_hello(sni, rng, alpn=("h3",), tls12=False, grease_ech=ech, record=False,
                                   quic_transport_parameters=quic.client_transport_parameters(scid))
    datagram = quic_initial.build_initial_datagrams(hello, dcid=rng.randbytes(8), scid=scid,
                                                    version=version)[0]
    packet = parse(bytes(IP(src=CLIENT, dst=SERVER, ttl=62) / UDP(sport=sport, dport=443) / datagram))
    assert packet is not None
    return packet


def udp(payload: bytes, *, sport: int, dport: int = 443) -> Packet:
    packet = parse(bytes(IP(src=CLIENT, dst=SERVER, ttl=62) / UDP(sport=sport, dport=dport) / payload))
    assert packet is not None
    return packet


def segment(payload: bytes, seq: int, *, sport: int = 41000) -> Packet:
    packet = parse(bytes(IP(src=CLIENT, dst=SERVER, ttl=62)
                         / TCP(sport=sport, dport=443, seq=seq, ack=1, flags="PA") / payload))
    assert packet is not None
    return packet


def test_quic_sni_drop_drops_the_initial_then_the_three_tuple_for_180_s() -> None:
    engine, clock = engine_for("quic_sni_drop")
    assert engine.decide(initial("example.com", sport=40001)) is None
    for version in (quic.QUIC_V1, quic.QUIC_V2):
        verdict = engine.decide(initial("twitter.com", sport=40002, version=version))
        assert verdict is not None and verdict.drop
    # Any datagram from another source port to the same server and port: dropped ...
    clock.now += 179
    later = engine.decide(udp(b"hello", sport=40999))
    assert later is not None and later.drop
    # ... but not TCP to the same port, nor UDP to another port; and not after 180 s.
    assert engine.decide(segment(b"GET / HTTP/1.1\r\n\r\n", 1)) is None
    assert engine.decide(udp(b"hello", sport=40999, dport=8443)) is None
    clock.now += 2
    assert engine.decide(udp(b"hello", sport=40999)) is None


def test_ech_drop_needs_ech_and_the_outer_sni_and_reassembles_segments() -> None:
    engine, _clock = engine_for("ech_drop", domains=("cloudflare-ech.com",))
    rng = random.Random(1)
    plain = tls.build_client_hello("cloudflare-ech.com", rng)
    assert engine.decide(segment(plain, 1, sport=41001)) is None
    other = tls.build_client_hello("example.com", rng, grease_ech=True)
    assert engine.decide(segment(other, 1, sport=41002)) is None
    hello = tls.build_client_hello("cloudflare-ech.com", rng, grease_ech=True)
    # Split into two TCP segments, the SNI in the first: the second completes the hello.
    cut = 60
    assert engine.decide(segment(hello[:cut], 1, sport=41003)) is None
    verdict = engine.decide(segment(hello[cut:], 1 + cut, sport=41003))
    assert verdict is not None and verdict.drop
    follow = engine.decide(segment(b"\x17\x03\x03\x00\x01\x00", 1 + len(hello), sport=41003))
    assert follow is not None and follow.drop
    # Over QUIC the same: ECH with the outer SNI dropped, without ECH answered.
    assert engine.decide(initial("cloudflare-ech.com", sport=40010)) is None
    dropped = engine.decide(initial("cloudflare-ech.com", sport=40011, ech=True))
    assert dropped is not None and dropped.drop


def test_ech_drop_sees_a_hello_split_into_two_tls_records() -> None:
    engine, _clock = engine_for("ech_drop", domains=("cloudflare-ech.com",))
    record = tls.build_client_hello("cloudflare-ech.com", random.Random(2), grease_ech=True)
    message = record[5:]
    first, second = message[:100], message[100:]
    records = (b"\x16\x03\x01" + len(first).to_bytes(2, "big") + first
               + b"\x16\x03\x01" + len(second).to_bytes(2, "big") + second)
    verdict = engine.decide(segment(records, 1, sport=41010))
    assert verdict is not None and verdict.drop


def test_udp_drop_is_one_firewall_rule_for_udp_443(tmp_path: Any) -> None:
    rule = build_behaviour("udp_drop", {}, ("twitter.com",), (SERVER,))
    setup = CensorSetup(tmp_path)
    rule.prepare(setup)
    assert setup.commands == [["iptables", "-A", "FORWARD", "-p", "udp", "--dport", "443",
                               "-j", "DROP"]]
    assert rule.techniques == ("quic.drop",)
