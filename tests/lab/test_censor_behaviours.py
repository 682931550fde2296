"""Every lab censor behaviour on crafted packets, without root.

A behaviour acts only through its `CensorContext` (send, drop a flow, do
later); `FakeContext` records what it asked for, so each test checks the
packets a behaviour would put on the wire, field by field, for a trigger it is
handed.  The engine's own decisions (dropped flows, residual blocks) run with
a fake `send` and a hand-moved clock.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.message
import dns.rcode
import pytest
from scapy.layers.dns import DNS
from scapy.layers.inet import IP, TCP, UDP

from fingerprint.lab import topology
from fingerprint.lab.censors import build_behaviour
from fingerprint.lab.censors._wire import ACK, RST, SYN, Flow, Packet, parse
from fingerprint.lab.censors.base import Behaviour, CensorSetup, Verdict
from fingerprint.lab.censors.dns_injection import GFW_FORGED_ADDRESSES
from fingerprint.lab.censors.engine import Engine
from fingerprint.lab.censors.slow_path import Pacer
from fingerprint.lab.censors.tls_mitm import intercepts

CLIENT = "192.0.2.10"
SERVER = "203.0.113.20"
OTHER_SERVER = "203.0.113.21"


@dataclass
class FakeContext:
    """Records what a behaviour asks of the engine; `run_later` fires the timers."""

    sent: list[tuple[str, Any]] = field(default_factory=list)
    dropped: list[tuple[Flow, float]] = field(default_factory=list)
    timers: list[tuple[float, Callable[[], None]]] = field(default_factory=list)

    def send(self, direction: str, ip_packet: Any) -> None:
        self.sent.append((direction, IP(bytes(ip_packet))))  # as it would be on the wire

    def drop_flow(self, flow: Flow, seconds: float = 300.0) -> None:
        self.dropped.append((flow, seconds))

    def later(self, delay: float, action: Callable[[], None]) -> None:
        self.timers.append((delay, action))

    def run_later(self) -> list[float]:
        delays = [delay for delay, _ in self.timers]
        timers, self.timers = self.timers, []
        for _, action in timers:
            action()
        return delays


def behaviour(name: str, options: dict[str, Any] | None = None,
              domains: tuple[str, ...] = ("twitter.com",),
              addresses: tuple[str, ...] = (SERVER,)) -> Behaviour:
    return build_behaviour(name, options or {}, domains, addresses)


def client_hello(server_name: str) -> bytes:
    context = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def tcp_packet(payload: bytes = b"", flags: str = "PA", dst: str = SERVER, dport: int = 443,
               sport: int = 40000, seq: int = 1000, ack: int = 5000, ttl: int = 62) -> Packet:
    raw = bytes(IP(src=CLIENT, dst=dst, ttl=ttl, id=1) /
                TCP(sport=sport, dport=dport, seq=seq, ack=ack if "A" in flags else 0,
                    flags=flags) / payload)
    packet = parse(raw)
    assert packet is not None
    return packet


def dns_query(name: str, dst: str = topology.RESOLVER_ADDRESS,
              ) -> tuple[Packet, dns.message.Message]:
    query = dns.message.make_query(name, "A")
    raw = bytes(IP(src=CLIENT, dst=dst, ttl=62) / UDP(sport=5353, dport=53) / query.to_wire())
    packet = parse(raw)
    assert packet is not None
    return packet, query


def finish(verdict: Verdict | None) -> Verdict:
    """Run what the engine runs once the packet is decided."""
    assert verdict is not None
    for action in verdict.then:
        action()
    return verdict


# -- TLS ---------------------------------------------------------------------------------------
def test_sni_reset_gfw_sends_one_type1_and_three_type2_resets_to_each_end() -> None:
    ctx = FakeContext()
    hello = client_hello("twitter.com")
    trigger = tcp_packet(hello)
    verdict = finish(behaviour("sni_reset", {"profile": "gfw"}).on_tls(ctx, trigger,
                                                                       "twitter.com"))
    assert not verdict.drop, "on-path: the ClientHello goes on"
    to_client = [p for d, p in ctx.sent if d == "client"]
    to_server = [p for d, p in ctx.sent if d == "server"]
    assert len(to_client) == len(to_server) == 4
    assert [str(p[TCP].flags) for p in to_client] == ["R", "RA", "RA", "RA"]
    assert to_client[0][IP].id == 0
    assert [p[TCP].seq for p in to_client[1:]] == [5000, 5000 + 1460, 5000 + 4380]
    assert [p[IP].ttl for p in to_client[1:]] == [47, 48, 49]
    assert [p[TCP].window for p in to_client[1:]] == [2048, 2049, 2050]
    assert all((p[IP].src, p[IP].dst, p[TCP].dport) == (SERVER, CLIENT, 40000) for p in to_client)
    assert to_server[1][TCP].seq == 1000 + len(hello)


def test_sni_reset_ignores_other_names_and_turkmenistan_drops_the_flow() -> None:
    ctx = FakeContext()
    trigger = tcp_packet(client_hello("example.com"))
    assert behaviour("sni_reset").on_tls(ctx, trigger, "example.com") is None
    assert ctx.sent == []
    verdict = finish(behaviour("sni_reset", {"profile": "turkmenistan"}).on_tls(
        ctx, trigger, "api.twitter.com"))
    assert verdict.drop and ctx.dropped == [(trigger.flow, 300.0)]
    [(direction, rst)] = ctx.sent
    assert direction == "client"
    assert (rst[TCP].seq, rst[TCP].window, rst[IP].id, rst[IP].ttl, int(rst[IP].flags)) == (
        0, 0, 30000, 128, 0)


def test_sni_reset_with_a_delay_injects_only_later() -> None:
    ctx = FakeContext()
    finish(behaviour("sni_reset", {"delay_ms": 50}).on_tls(ctx, tcp_packet(b"\x16"),
                                                           "twitter.com"))
    assert ctx.sent == []
    assert ctx.run_later() == [0.05]
    assert len(ctx.sent) == 8


def test_sni_drop_drops_the_hello_and_the_flow() -> None:
    ctx = FakeContext()
    trigger = tcp_packet(b"\x16")
    verdict = behaviour("sni_drop", {"flow_seconds": 60}).on_tls(ctx, trigger, "twitter.com")
    assert verdict is not None and verdict.drop
    assert ctx.dropped == [(trigger.flow, 60.0)] and ctx.sent == []


def test_sni_fin_sends_the_middlebox_fin_now_and_the_rst_a_second_later() -> None:
    ctx = FakeContext()
    trigger = tcp_packet(b"\x16")
    verdict = behaviour("sni_fin").on_tls(ctx, trigger, "twitter.com")
    assert verdict is not None and verdict.drop
    [(_, fin)] = ctx.sent
    assert str(fin[TCP].flags) == "FPA" and bytes(fin[TCP].payload).startswith(b"Middlebox v 1.0")
    assert fin[TCP].seq == 5000
    assert ctx.run_later() == [1.0]
    rst = ctx.sent[-1][1]
    assert str(rst[TCP].flags) == "RA"
    assert rst[TCP].seq == 5000 + len(b"Middlebox v 1.0\r\n") + 1


def test_sni_throttle_marks_the_hello_only_for_the_name() -> None:
    ctx = FakeContext()
    throttle = behaviour("sni_throttle")
    verdict = throttle.on_tls(ctx, tcp_packet(b"\x16"), "abs.twimg.com")
    assert throttle.on_tls(ctx, tcp_packet(b"\x16"), "twimg.com.example") is None
    assert verdict is None or verdict.mark  # twimg.com is not in the rule's domains
    verdict = throttle.on_tls(ctx, tcp_packet(b"\x16"), "twitter.com")
    assert verdict is not None and verdict.mark == 0x7 and not verdict.drop and ctx.sent == []


def test_tls_mitm_intercepts_by_name_or_for_every_name_on_the_address(tmp_path: Path) -> None:
    assert intercepts("www.twitter.com", ("twitter.com",), "sni")
    assert not intercepts("example.com", ("twitter.com",), "sni")
    assert intercepts("example.com", ("twitter.com",), "address")
    assert not intercepts(None, ("twitter.com",), "address")
    setup = CensorSetup(tmp_path)
    behaviour("tls_mitm", {"intercept": "address"}).prepare(setup)
    assert [c for c in setup.commands if SERVER in c and "REDIRECT" in c]
    with pytest.raises(Exception, match="intercept must be sni or address"):
        behaviour("tls_mitm", {"intercept": "everything"})


# -- HTTP ------------------------------------------------------------------------------------
def test_http_blockpage_answers_the_request_with_the_redirect_and_drops_it() -> None:
    ctx = FakeContext()
    request = b"GET / HTTP/1.1\r\nHost: twitter.com\r\n\r\n"
    trigger = tcp_packet(request, dport=80)
    verdict = behaviour("http_blockpage", {"profile": "uzbekistan"}).on_http(
        ctx, trigger, "twitter.com")
    assert verdict is not None and verdict.drop and ctx.dropped[0][0] == trigger.flow
    [(direction, page)] = ctx.sent
    assert direction == "client" and str(page[TCP].flags) == "FPA"
    assert (page[TCP].seq, page[TCP].ack) == (5000, 1000 + len(request))
    assert b"Location: http://reestr.mitc.uz/" in bytes(page[TCP].payload)


def test_http_reset_resets_both_ends_after_letting_the_request_on() -> None:
    ctx = FakeContext()
    verdict = finish(behaviour("http_reset").on_http(ctx, tcp_packet(b"GET", dport=80),
                                                      "twitter.com"))
    assert not verdict.drop
    assert sorted(d for d, _ in ctx.sent) == ["client", "server"]
    assert all(str(p[TCP].flags) == "RA" and p[IP].id == 0 for _, p in ctx.sent)


# -- IP ----------------------------------------------------------------------------------------
def test_ip_reset_answers_a_syn_with_the_gfw_2025_resets() -> None:
    ctx = FakeContext()
    syn = tcp_packet(flags="S", seq=777)
    verdict = finish(behaviour("ip_reset").on_syn(ctx, syn))
    assert verdict.drop
    assert [(p[TCP].seq, p[TCP].ack, p[TCP].window) for _, p in ctx.sent] == [
        (0, 778, 1980), (0, 778, 1981), (0, 778, 1982)]
    assert behaviour("ip_reset").on_syn(ctx, tcp_packet(flags="S", dst=OTHER_SERVER)) is None


def test_address_rules_are_iptables_commands_on_the_censor(tmp_path: Path) -> None:
    expected = {"ip_blackhole": ["-j", "DROP"],
                "ip_reject": ["-j", "REJECT", "--reject-with", "icmp-admin-prohibited"],
                "firewall_reset": ["-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset"]}
    for name, tail in expected.items():
        setup = CensorSetup(tmp_path)
        behaviour(name).prepare(setup)
        [command] = setup.commands
        assert command[:3] == ["iptables", "-A", "FORWARD"] and SERVER in command, name
        assert command[-len(tail):] == tail, name


# -- DNS ---------------------------------------------------------------------------------------
def test_dns_injection_gfw_races_a_forged_answer_and_lets_the_query_on() -> None:
    ctx = FakeContext()
    packet, query = dns_query("twitter.com", dst="203.0.113.99")  # no resolver there
    verdict = behaviour("dns_injection", {"profile": "gfw"}).on_dns(ctx, packet, query)
    assert verdict is not None and not verdict.drop
    [(direction, forged)] = ctx.sent
    assert direction == "client" and forged[IP].src == "203.0.113.99"
    assert forged[DNS].id == query.id and int(bytes(forged[UDP].payload)[2:4].hex(), 16) == 0x8580
    assert forged[DNS].an[0].rdata in GFW_FORGED_ADDRESSES
    aaaa = dns.message.make_query("twitter.com", "AAAA")
    assert behaviour("dns_injection").on_dns(ctx, packet, aaaa) is None


def test_dns_injection_ttl_copy_mirrors_the_query_ttl() -> None:
    ctx = FakeContext()
    packet, query = dns_query("youtube.com")
    behaviour("dns_injection", {"profile": "ttl-copy"}, ("youtube.com",)).on_dns(
        ctx, packet, query)
    assert ctx.sent[0][1][IP].ttl == packet.ttl == 62


@pytest.mark.parametrize(("name", "rcode", "answers"), [
    ("dns_redirect", dns.rcode.NOERROR, ["10.10.34.34"]),
    ("dns_nxdomain", dns.rcode.NXDOMAIN, []),
    ("dns_servfail", dns.rcode.SERVFAIL, []),
])
def test_in_path_dns_answers_in_the_resolvers_place_25_ms_late(
        name: str, rcode: int, answers: list[str]) -> None:
    ctx = FakeContext()
    packet, query = dns_query("twitter.com")
    verdict = behaviour(name).on_dns(ctx, packet, query)
    assert verdict is not None and verdict.drop and ctx.sent == []
    assert ctx.run_later() == [0.025]
    [(_, reply)] = ctx.sent
    message = dns.message.from_wire(bytes(reply[UDP].payload))
    assert message.rcode() == rcode and message.id == query.id
    assert [r.to_text() for rrset in message.answer for r in rrset] == answers
    assert (reply[IP].ttl, int(reply[IP].flags)) == (61, 2)  # the resolver's, DF
    other, other_query = dns_query("twitter.com", dst="203.0.113.99")
    assert behaviour(name).on_dns(ctx, other, other_query) is None, "only the lab resolver"


def test_dns_drop_answers_nothing() -> None:
    ctx = FakeContext()
    packet, query = dns_query("twitter.com")
    verdict = behaviour("dns_drop").on_dns(ctx, packet, query)
    assert verdict is not None and verdict.drop
    assert ctx.run_later() == [] and ctx.sent == []


# -- the engine: flows and residual blocks ---------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def engine_with(rule: Behaviour) -> tuple[Engine, list[tuple[str, Any]], Clock]:
    sent: list[tuple[str, Any]] = []
    clock = Clock()
    engine = Engine([rule], None, send=lambda d, p: sent.append((d, IP(bytes(p)))), clock=clock)
    return engine, sent, clock


def test_engine_offers_the_hello_and_then_drops_the_rest_of_a_dropped_flow() -> None:
    engine, _sent, clock = engine_with(behaviour("sni_drop", {"flow_seconds": 10}))
    hello = tcp_packet(client_hello("twitter.com"))
    verdict = engine.decide(hello)
    assert verdict is not None and verdict.drop
    later_segment = tcp_packet(b"x", seq=hello.seq + len(hello.payload))
    assert engine.decide(later_segment) == Verdict(drop=True)
    assert engine.decide(tcp_packet(client_hello("example.com"), sport=40001)) is None
    clock.now += 11
    assert engine.decide(later_segment) is None


def test_residual_on_the_3_tuple_resets_later_connections_to_that_port_only() -> None:
    engine, sent, clock = engine_with(behaviour(
        "sni_reset", {"residual_seconds": 90, "residual_action": "reset"}))
    finish(engine.decide(tcp_packet(client_hello("twitter.com"))))
    sent.clear()
    syn = tcp_packet(flags="S", sport=40002, seq=41)
    assert engine.decide(syn) == Verdict(drop=True)
    [(direction, rst)] = sent
    assert direction == "client" and rst[TCP].flags & (RST | ACK) == RST | ACK
    assert rst[TCP].ack == 42 and not rst[TCP].flags & SYN
    assert engine.decide(tcp_packet(flags="S", sport=40003, dport=80)) is None
    assert engine.decide(tcp_packet(flags="S", sport=40004, dst=OTHER_SERVER)) is None
    clock.now += 91
    assert engine.decide(tcp_packet(flags="S", sport=40005)) is None


def test_residual_on_the_client_blocks_its_connections_to_every_server() -> None:
    rule = behaviour("sni_reset", {"residual_seconds": 20, "residual_action": "drop",
                                   "residual_scope": "client"})
    assert rule.queued() == frozenset({"tls", "http"}), "every web connection must be queued"
    engine, sent, clock = engine_with(rule)
    finish(engine.decide(tcp_packet(client_hello("twitter.com"))))
    sent.clear()
    for dst, dport in ((OTHER_SERVER, 443), (OTHER_SERVER, 80), (SERVER, 443)):
        assert engine.decide(tcp_packet(flags="S", dst=dst, dport=dport, sport=41000)) == \
            Verdict(drop=True)
    assert sent == [], "drop, not reset"
    clock.now += 21
    assert engine.decide(tcp_packet(flags="S", dst=OTHER_SERVER, sport=41001)) is None


def test_a_slow_injector_blocks_from_when_it_acts() -> None:
    timers: list[tuple[float, Callable[[], None]]] = []
    rule = behaviour("sni_reset", {"delay_ms": 50, "residual_seconds": 20,
                                   "residual_scope": "client", "residual_action": "reset"})
    engine, sent, _clock = engine_with(rule)
    engine.later = lambda delay, action: timers.append((delay, action))  # type: ignore[method-assign]
    finish(engine.decide(tcp_packet(client_hello("twitter.com"))))
    ack_of_server_hello = tcp_packet(b"", flags="A", seq=1500)
    assert engine.decide(ack_of_server_hello) is None, "the server's answer may arrive first"
    assert sorted(delay for delay, _ in timers) == [0.05, 0.05]
    for _, action in timers:
        action()
    assert len(sent) == 8  # the injected resets
    assert engine.decide(tcp_packet(flags="S", dst=OTHER_SERVER, sport=41002)) == \
        Verdict(drop=True)


def test_residual_options_are_checked() -> None:
    with pytest.raises(Exception, match="residual_scope"):
        behaviour("sni_reset", {"residual_scope": "world"})
    with pytest.raises(Exception, match="residual_action"):
        behaviour("sni_reset", {"residual_action": "tarpit"})


# -- the slow path -----------------------------------------------------------------------------
def test_slow_path_paces_packets_and_queues_both_directions_of_80_and_443(
        tmp_path: Path) -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(round(seconds, 6))
        now[0] += seconds

    pacer = Pacer(500, clock=lambda: now[0], sleep=sleep)
    for _ in range(4):
        pacer.wait()
    assert slept == [0.002, 0.002, 0.002]
    now[0] += 1.0  # idle: the next packet goes at once
    pacer.wait()
    assert len(slept) == 3
    setup = CensorSetup(tmp_path)
    behaviour("slow_path", {"rate": 500, "queue": 128}).prepare(setup)
    assert len(setup.commands) == 8 and all("NFQUEUE" in c for c in setup.commands)
    assert {(c[c.index("-i") + 1], c[c.index("tcp") + 1], c[c.index("tcp") + 2])
            for c in setup.commands} == {
        (i, d, p) for i in (topology.CENSOR_CLIENT_LINK.right_interface,
                            topology.CENSOR_SERVER_LINK.left_interface)
        for d in ("--dport", "--sport") for p in ("80", "443")}
    assert [name for name, _ in setup.processes] == ["slow-path"]
