"""QUIC flow observation from dissected packets: connections, answers, residual traffic, ICMP."""

from __future__ import annotations

import random

from scapy.layers.inet import ICMP, IP, UDP
from scapy.packet import Raw

from fingerprint.analysis.quic import ClientKind, QuicObserver, observe_quic
from fingerprint.capture.dissect import LINKTYPE_RAW, dissect
from fingerprint.capture.packet import Packet
from fingerprint.protocols import quic, quic_initial, tls

CLIENT = "198.51.100.10"
SERVER = "203.0.113.20"
ROUTER = "192.0.2.1"
START = 1_700_000_000.0


class Wire:
    def __init__(self) -> None:
        self.packets: list[Packet] = []
        self.rng = random.Random(14)

    def add(self, t: float, raw: bytes) -> Packet:
        pkt = dissect(len(self.packets) + 1, START + t, LINKTYPE_RAW, raw)
        assert pkt is not None
        self.packets.append(pkt)
        return pkt

    def initial(self, t: float, sni: str, *, sport: int = 40000, ttl: int = 64, ech: bool = False,
                version: int = quic.QUIC_V1, big: bool = False) -> list[bytes]:
        hello = tls.build_client_hello(sni, self.rng, tls12=False, record=False, grease_ech=ech,
                                       quic_transport_parameters=self.rng.randbytes(1500 if big else 40))
        datagrams = quic_initial.build_initial_datagrams(hello, dcid=self.rng.randbytes(8),
                                                         scid=self.rng.randbytes(8), version=version)
        for i, datagram in enumerate(datagrams):
            self.add(t + i * 0.001, bytes(IP(src=CLIENT, dst=SERVER, ttl=ttl) / UDP(sport=sport, dport=443)
                                          / Raw(datagram)))
        return datagrams

    def server_initial(self, t: float, client_datagram: bytes, *, sport: int = 40000) -> None:
        header = quic.parse_long_header(client_datagram)
        assert header is not None
        reply = quic_initial.build_initial(quic.crypto_frame(0, b"\x02\x00\x00\x04abcd"), dcid=header.scid,
                                           scid=self.rng.randbytes(8), key_dcid=header.dcid, client=False,
                                           packet_number=0)
        self.add(t, bytes(IP(src=SERVER, dst=CLIENT, ttl=52) / UDP(sport=443, dport=sport) / Raw(reply)))

    def udp(self, t: float, payload: bytes, *, sport: int = 40000) -> None:
        self.add(t, bytes(IP(src=CLIENT, dst=SERVER, ttl=64) / UDP(sport=sport, dport=443) / Raw(payload)))


def test_answered_and_unanswered_connections_with_sni_and_ech() -> None:
    wire = Wire()
    control = wire.initial(0.0, "control.example", sport=40001)
    wire.server_initial(0.05, control[0], sport=40001)
    wire.initial(1.0, "blocked.example", sport=40002, ech=True, version=quic.QUIC_V2, big=True)
    flows = {f.client_port: f for f in observe_quic(wire.packets)}
    answered, blocked = flows[40001], flows[40002]
    assert answered.answered and not blocked.answered
    (conn,) = answered.connections
    assert conn.sni == "control.example" and conn.complete and not conn.ech_present
    assert conn.first_answer is not None and conn.first_answer.kind is quic.ServerDatagram.INITIAL
    assert conn.version == quic.QUIC_V1 and conn.trigger_ttl == 64
    (conn,) = blocked.connections
    assert conn.sni == "blocked.example" and conn.ech_present and conn.version == quic.QUIC_V2
    assert conn.complete and len(conn.initials) == 2 and conn.first_answer is None
    assert blocked.three_tuple == (CLIENT, SERVER, 443)


def test_later_datagrams_of_the_flow_are_kept_for_residual_blocking() -> None:
    wire = Wire()
    wire.initial(0.0, "blocked.example")
    for second in range(1, 6):
        wire.udp(float(second), b"\x00" + wire.rng.randbytes(40))
    wire.udp(6.0, b"\x45" + wire.rng.randbytes(30))
    (flow,) = observe_quic(wire.packets)
    kinds = [d.kind for d in flow.client_datagrams]
    assert kinds == [ClientKind.INITIAL] + [ClientKind.OTHER] * 5 + [ClientKind.SHORT]
    trigger = flow.connections[0].first_ts
    assert len(flow.client_datagrams_after(trigger)) == 6 and not flow.server_datagrams_after(trigger)


def test_idle_flow_closes_and_a_new_one_opens_on_the_same_tuple() -> None:
    wire = Wire()
    wire.initial(0.0, "blocked.example")
    wire.initial(200.0, "blocked.example")
    flows = observe_quic(wire.packets)
    assert len(flows) == 2
    assert flows[0].last_ts + 60 < flows[1].first_ts <= flows[0].closed_ts


def test_icmp_time_exceeded_quoting_an_initial_is_attached() -> None:
    wire = Wire()
    datagrams = wire.initial(0.0, "blocked.example", ttl=5)
    quoted = bytes(IP(src=CLIENT, dst=SERVER, ttl=1) / UDP(sport=40000, dport=443) / Raw(datagrams[0]))
    wire.add(0.01, bytes(IP(src=ROUTER, dst=CLIENT, ttl=250) / ICMP(type=11, code=0) / Raw(quoted[:28])))
    (flow,) = observe_quic(wire.packets)
    assert flow.connections[0].trigger_ttl == 5
    assert len(flow.icmp) == 1 and flow.icmp[0].src == ROUTER


def test_initial_on_another_port_is_found_and_garbage_on_443_is_counted() -> None:
    wire = Wire()
    hello = tls.build_client_hello("x.example", wire.rng, tls12=False, record=False,
                                   quic_transport_parameters=b"")
    (datagram,) = quic_initial.build_initial_datagrams(hello, dcid=bytes(8), scid=bytes(8))
    wire.add(0.0, bytes(IP(src=CLIENT, dst=SERVER) / UDP(sport=40000, dport=8443) / Raw(datagram)))
    damaged = bytearray(datagram)
    damaged[700] ^= 0xFF
    wire.add(0.1, bytes(IP(src=CLIENT, dst=SERVER) / UDP(sport=40001, dport=443) / Raw(bytes(damaged))))
    wire.add(0.2, bytes(IP(src=CLIENT, dst=SERVER) / UDP(sport=40002, dport=443) / Raw(b"\xc0garbage")))
    wire.add(0.3, bytes(IP(src=CLIENT, dst=SERVER) / UDP(sport=40003, dport=9999) / Raw(b"\xc0garbage")))
    # A damaged Initial to another port does not authenticate: no flow.
    wire.add(0.4, bytes(IP(src=CLIENT, dst=SERVER) / UDP(sport=40004, dport=53) / Raw(bytes(damaged))))
    # An intact one to UDP 53 (as the gfw.report TTL experiments send) opens a flow; the
    # DNS-looking reply is kept as a non-QUIC server datagram.
    wire.add(0.5, bytes(IP(src=CLIENT, dst=SERVER) / UDP(sport=40005, dport=53) / Raw(datagram)))
    wire.add(0.6, bytes(IP(src=SERVER, dst=CLIENT) / UDP(sport=53, dport=40005) / Raw(b"\x12\x34\x81\x80")))
    flows: list = []
    observer = QuicObserver(flows.append)
    for pkt in wire.packets:
        observer.feed(pkt)
    observer.close()
    by_port = {f.client_port: f for f in flows}
    assert set(by_port) == {40000, 40001, 40002, 40005}
    assert by_port[40005].replied and not by_port[40005].answered
    assert by_port[40000].server_port == 8443 and by_port[40000].connections[0].sni == "x.example"
    assert by_port[40001].connections == [] and by_port[40001].client_datagrams[0].kind is ClientKind.QUIC_OTHER
    assert observer.malformed == 2


def test_residual_block_spans_source_ports_and_ends_when_answered() -> None:
    from fingerprint.analysis.quic import residual_blocks

    wire = Wire()
    wire.initial(0.0, "blocked.example", sport=40001)  # the trigger: never answered
    wire.initial(10.0, "control.example", sport=40002)  # another source port, same 3-tuple
    wire.initial(70.0, "control.example", sport=40003)
    late = wire.initial(200.0, "control.example", sport=40004)
    wire.server_initial(200.05, late[0], sport=40004)
    flows = observe_quic(wire.packets)
    (block,) = [b for b in residual_blocks(flows) if b.trigger.sni == "blocked.example"]
    assert block.three_tuple == (CLIENT, SERVER, 443)
    assert [p.sport for p in block.unanswered] == [40002, 40003]
    assert block.blocked_for == 70.0
    assert block.first_answered is not None and block.first_answered.sport == 40004
    assert block.lifted_within == 200.0


def test_answered_connections_have_no_residual_block() -> None:
    from fingerprint.analysis.quic import residual_blocks

    wire = Wire()
    sent = wire.initial(0.0, "control.example")
    wire.server_initial(0.05, sent[0])
    assert residual_blocks(observe_quic(wire.packets)) == []
