"""The control logic, technique by technique, on packet scripts crafted with scapy.

Each test builds the exchange a probe (or a browser under tcpdump) would see,
runs it through the same pipeline `analyze` and `probe` use, and checks the
technique, the evidence and that clean traffic stays accessible.
"""

from __future__ import annotations

from typing import Any

import pytest
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.packet import Packet as ScapyPacket
from scapy.packet import Raw

from fingerprint.analysis.observe import CaptureHints
from fingerprint.analysis.pipeline import Pipeline
from fingerprint.capture.dissect import LINKTYPE_RAW, dissect
from fingerprint.catalog import load_catalog
from fingerprint.model import Technique
from fingerprint.report import build_report
from fingerprint.signature import SignatureLibrary
from fingerprint.trust import TrustStore

CLIENT = "192.0.2.10"
RESOLVER = "198.51.100.53"
SERVER = "203.0.113.10"


def client_hello(sni: str) -> bytes:
    name = sni.encode()
    sni_ext = b"\x00\x00" + (len(name) + 5).to_bytes(2, "big") + (len(name) + 3).to_bytes(2, "big") \
        + b"\x00" + len(name).to_bytes(2, "big") + name
    body = b"\x03\x03" + bytes(32) + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00" \
        + len(sni_ext).to_bytes(2, "big") + sni_ext
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + len(hs).to_bytes(2, "big") + hs


SERVER_HELLO = (b"\x16\x03\x03\x00\x2a\x02\x00\x00\x26\x03\x03" + bytes(32) + b"\x00\x13\x01\x00")


class Script:
    """Timestamped packets, in order, as a capture would hold them."""

    def __init__(self) -> None:
        self.items: list[tuple[float, ScapyPacket]] = []
        self.t = 1_700_000_000.0

    def at(self, dt: float, pkt: ScapyPacket) -> Script:
        self.t += dt
        self.items.append((self.t, pkt))
        return self

    def dns(self, qname: str, answers: list[tuple[str, int, int]], sport: int, txid: int,
            resolver: str = RESOLVER, rcode: int = 0, query_ttl: int = 64) -> Script:
        """answers: (address, ip_ttl, ip_id) per response packet, in arrival order."""
        self.at(0.01, IP(src=CLIENT, dst=resolver, ttl=query_ttl) / UDP(sport=sport, dport=53)
                / DNS(id=txid, rd=1, qd=DNSQR(qname=qname)))
        for address, ttl, ip_id in answers:
            self.at(0.02, IP(src=resolver, dst=CLIENT, ttl=ttl, id=ip_id) / UDP(sport=53, dport=sport)
                    / DNS(id=txid, qr=1, rd=1, ra=1, rcode=rcode, qd=DNSQR(qname=qname),
                          an=DNSRR(rrname=qname, rdata=address, ttl=300)))
        if not answers and rcode:
            self.at(0.02, IP(src=resolver, dst=CLIENT, ttl=60) / UDP(sport=53, dport=sport)
                    / DNS(id=txid, qr=1, rd=1, ra=1, rcode=rcode, qd=DNSQR(qname=qname)))
        return self

    def tls(self, sni: str, sport: int, reply: str, server: str = SERVER, ch_ttl: int = 64,
            icmp_router: str | None = None) -> Script:
        """reply: hello | rst | silence | fin"""
        syn = TCP(sport=sport, dport=443, flags="S", seq=1000)
        self.at(0.1, IP(src=CLIENT, dst=server, ttl=64) / syn)
        self.at(0.03, IP(src=server, dst=CLIENT, ttl=47, flags="DF", id=0)
                / TCP(sport=443, dport=sport, flags="SA", seq=5000, ack=1001, window=29200))
        self.at(0.01, IP(src=CLIENT, dst=server, ttl=64)
                / TCP(sport=sport, dport=443, flags="A", seq=1001, ack=5001))
        ch = client_hello(sni)
        self.at(0.01, IP(src=CLIENT, dst=server, ttl=ch_ttl, flags="DF")
                / TCP(sport=sport, dport=443, flags="PA", seq=1001, ack=5001) / Raw(ch))
        if icmp_router:
            quoted = (IP(src=CLIENT, dst=server, ttl=1, flags="DF")
                      / TCP(sport=sport, dport=443, flags="PA", seq=1001, ack=5001))
            self.at(0.005, IP(src=icmp_router, dst=CLIENT, ttl=250) / ICMP(type=11, code=0) / bytes(quoted)[:28])
        if reply == "hello":
            self.at(0.03, IP(src=server, dst=CLIENT, ttl=47, flags="DF", id=77)
                    / TCP(sport=443, dport=sport, flags="PA", seq=5001, ack=1001 + len(ch)) / Raw(SERVER_HELLO))
        elif reply == "rst":
            self.at(0.004, IP(src=server, dst=CLIENT, ttl=109, id=0)
                    / TCP(sport=443, dport=sport, flags="R", seq=5001, window=0))
        elif reply == "fin":
            self.at(0.004, IP(src=server, dst=CLIENT, ttl=60, id=4242)
                    / TCP(sport=443, dport=sport, flags="FA", seq=5001, ack=1001 + len(ch))
                    / Raw(b"Middlebox v 1.0"))
        self.at(3.0, IP(src=CLIENT, dst=server, ttl=64)
                / TCP(sport=sport, dport=443, flags="FA", seq=1001 + len(ch), ack=5001))
        return self

    def packets(self) -> list[Any]:
        out = []
        for i, (ts, pkt) in enumerate(self.items, start=1):
            p = dissect(i, ts, LINKTYPE_RAW, bytes(pkt))
            assert p is not None
            out.append(p)
        return out


def analyze(script: Script, hints: CaptureHints | None = None) -> dict[str, Any]:
    catalog = load_catalog()
    pipeline = Pipeline(catalog, SignatureLibrary([]), TrustStore(), hints)
    for packet in script.packets():
        pipeline.feed(packet)
    return build_report(pipeline.finish(), catalog, "analyze")


def platform(report: dict[str, Any], pid: str) -> dict[str, Any]:
    return next(p for p in report["platforms"] if p["platform"] == pid)


def test_dns_injection_keeps_every_response_and_flags_the_forged_one() -> None:
    s = Script().dns("example.com", [("203.0.113.99", 58, 100)], 40000, 1)
    s.dns("twitter.com", [("8.7.198.45", 102, 30000), ("104.244.42.1", 58, 101)], 40001, 2)
    twitter = platform(analyze(s), "twitter")
    assert twitter["status"] == "blocked"
    assert twitter["techniques"] == ["dns.injection"]
    finding = twitter["findings"][0]
    roles = {p["role"] for p in finding["packets"]}
    assert {"trigger", "injected", "genuine"} <= roles
    injected = next(p for p in finding["packets"] if p["role"] == "injected")
    assert injected["ip_ttl"] == 102 and injected["ip_id"] == 30000
    assert any("TTL 102 vs server 58" in r for r in injected["reasons"])


def test_clean_dns_is_accessible() -> None:
    s = Script().dns("example.com", [("203.0.113.99", 58, 100)], 40000, 1)
    s.dns("twitter.com", [("104.244.42.1", 58, 101)], 40001, 2)
    report = analyze(s)
    assert platform(report, "twitter")["status"] == "accessible"
    assert platform(report, "twitter")["findings"] == []


def test_nxdomain_for_existing_name() -> None:
    s = Script().dns("example.com", [("203.0.113.99", 58, 100)], 40000, 1)
    s.dns("vk.com", [], 40001, 2, rcode=3)
    vk = platform(analyze(s), "vkontakte")
    assert vk["techniques"] == ["dns.nxdomain"]


def test_dns_drop_needs_the_control_to_answer() -> None:
    s = Script().dns("example.com", [("203.0.113.99", 58, 100)], 40000, 1)
    s.dns("telegram.org", [], 40001, 2)
    s.at(5.0, IP(src=CLIENT, dst=RESOLVER) / UDP(sport=1, dport=9))  # capture goes on
    tg = platform(analyze(s), "telegram")
    assert tg["techniques"] == ["dns.drop"]
    assert tg["findings"][0]["confidence"] >= 0.85


def test_dns_silence_without_any_answered_name_is_not_a_drop() -> None:
    """Only unanswered queries to one address (a dead resolver, or a capture at a UDP sink
    that runs none): no control, no other answer, so no drop is claimed."""
    s = Script().dns("telegram.org", [], 40001, 2)
    s.at(5.0, IP(src=CLIENT, dst=RESOLVER) / UDP(sport=1, dport=9))  # capture goes on
    tg = platform(analyze(s), "telegram")
    assert tg["status"] == "inconclusive"
    assert tg["techniques"] == []


def test_dns_queries_arriving_routed_were_captured_at_the_far_end() -> None:
    """A capture at a UDP sink: queries arrive with routed TTLs and nothing answers them.
    The report says where it was taken, and nothing is claimed dropped."""
    s = Script().dns("telegram.org", [], 40001, 2, query_ttl=45)
    s.at(5.0, IP(src=CLIENT, dst=RESOLVER, ttl=45) / UDP(sport=1, dport=9))  # capture goes on
    report = analyze(s)
    assert report["capture_point"]["by_client"] == {CLIENT: "server"}
    assert platform(report, "telegram")["status"] == "inconclusive"


def test_dns_drop_without_control_needs_other_names_answered() -> None:
    """A browser's capture asks no control name; other names the same resolver answered
    show it was alive."""
    s = Script().dns("news.example.net", [("203.0.113.40", 58, 100)], 40000, 1)
    s.dns("telegram.org", [], 40001, 2)
    s.at(5.0, IP(src=CLIENT, dst=RESOLVER) / UDP(sport=1, dport=9))  # capture goes on
    tg = platform(analyze(s), "telegram")
    assert tg["techniques"] == ["dns.drop"]
    assert any("news.example.net" in e for e in tg["findings"][0]["evidence"])


def test_bogon_answer_is_a_redirect() -> None:
    s = Script().dns("example.com", [("203.0.113.99", 58, 100)], 40000, 1)
    s.dns("www.facebook.com", [("10.10.34.34", 58, 101)], 40001, 2)
    fb = platform(analyze(s), "facebook")
    assert fb["techniques"] == ["dns.redirect"]


def test_answer_from_a_non_resolver_is_injection() -> None:
    s = Script().dns("twitter.com", [("8.7.198.45", 102, 30000)], 40001, 2, resolver="203.0.113.77")
    hints = CaptureHints(no_resolver={"203.0.113.77"})
    twitter = platform(analyze(s, hints), "twitter")
    assert twitter["techniques"] == ["dns.injection"]


@pytest.mark.parametrize(("reply", "technique"), [
    ("rst", Technique.TLS_SNI_RESET), ("silence", Technique.TLS_SNI_DROP), ("fin", Technique.TLS_SNI_FIN)])
def test_sni_interference_against_control_on_same_address(reply: str, technique: Technique) -> None:
    s = Script().tls("example.com", 50000, "hello").tls("twitter.com", 50001, reply)
    twitter = platform(analyze(s), "twitter")
    assert twitter["status"] == "blocked"
    assert twitter["techniques"] == [technique.value]
    finding = twitter["findings"][0]
    assert finding["address"] == SERVER
    assert finding["confidence"] >= 0.85
    if reply != "silence":
        injected = [p for p in finding["packets"] if p["role"] == "injected"]
        assert injected and any("TTL" in r for r in injected[0]["reasons"])


def test_sni_reset_without_control_has_lower_confidence() -> None:
    s = Script().tls("twitter.com", 50001, "rst")
    finding = platform(analyze(s), "twitter")["findings"][0]
    assert finding["technique"] == "tls.sni_reset"
    assert finding["confidence"] < 0.8
    assert any("no control" in e for e in finding["evidence"])


def test_target_and_control_failing_alike_is_inconclusive() -> None:
    s = Script().tls("example.com", 50000, "silence").tls("twitter.com", 50001, "silence")
    twitter = platform(analyze(s), "twitter")
    assert twitter["status"] == "inconclusive"
    assert twitter["findings"] == []


def test_clean_tls_is_accessible() -> None:
    s = Script().tls("example.com", 50000, "hello").tls("twitter.com", 50001, "hello")
    assert platform(analyze(s), "twitter")["status"] == "accessible"


def test_ttl_limited_repeats_locate_the_censor() -> None:
    s = Script().tls("example.com", 50000, "hello").tls("twitter.com", 50001, "rst")
    routers = {1: "192.0.2.1", 2: "198.51.100.1", 3: "198.51.100.2"}
    port = 50100
    for ttl in range(1, 7):
        port += 1
        if ttl in routers:
            s.tls("twitter.com", port, "silence", ch_ttl=ttl, icmp_router=routers[ttl])
        else:
            s.tls("twitter.com", port, "rst", ch_ttl=ttl)
    finding = platform(analyze(s), "twitter")["findings"][0]
    assert finding["location"]["hop"] == 4
    assert finding["location"]["router"] == "198.51.100.2"


def test_ip_blackhole_against_control_address() -> None:
    s = Script()
    control = "203.0.113.99"
    s.at(0.1, IP(src=CLIENT, dst=control) / TCP(sport=51000, dport=443, flags="S"))
    s.at(0.03, IP(src=control, dst=CLIENT, ttl=50) / TCP(sport=443, dport=51000, flags="SA"))
    for _retry in range(3):
        s.at(1.0, IP(src=CLIENT, dst="149.154.167.51") / TCP(sport=51001, dport=443, flags="S", seq=7))
    s.at(5.0, IP(src=CLIENT, dst=control) / TCP(sport=51000, dport=443, flags="RA"))
    hints = CaptureHints()
    report = analyze(s, hints)
    telegram = platform(report, "telegram")
    assert telegram["techniques"] == ["ip.blackhole"]
    assert telegram["findings"][0]["confidence"] < 0.8  # no catalog control address given


def test_report_validates_against_contract() -> None:
    import json

    import jsonschema

    from fingerprint.report import SCHEMA_ID

    s = Script().tls("example.com", 50000, "hello").tls("twitter.com", 50001, "rst")
    s.dns("example.com", [("203.0.113.99", 58, 100)], 40000, 1)
    s.dns("twitter.com", [("8.7.198.45", 102, 30000), ("104.244.42.1", 58, 101)], 40001, 2)
    report = analyze(s)
    from importlib import resources
    schema = json.loads(resources.files("fingerprint").joinpath("schemas/report.schema.json").read_text())
    jsonschema.validate(report, schema)
    assert report["schema"] == SCHEMA_ID
