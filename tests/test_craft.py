"""fingerprint.testing.craft: crafted captures read back with the fields asked for."""

from __future__ import annotations

from pathlib import Path

from fingerprint.analysis.observe import CaptureHints
from fingerprint.analysis.pipeline import analyze_files
from fingerprint.capture.packet import Packet
from fingerprint.capture.reader import open_capture
from fingerprint.catalog import load_catalog
from fingerprint.protocols.dns import parse_dns
from fingerprint.protocols.tls import parse_client_hello, parse_server_flight
from fingerprint.signature import SignatureLibrary
from fingerprint.testing.craft import Capture, client_hello, server_flight
from fingerprint.trust import TrustStore

SERVER = "203.0.113.10"


def read(path: Path) -> list[Packet]:
    with open_capture(path) as reader:
        return list(reader)


def test_dns_response_carries_the_ip_and_dns_fields_asked_for(tmp_path: Path) -> None:
    cap = Capture(seed=1, start=1_600_000_000.0)
    q = cap.dns("203.0.113.53", "twitter.com", at=0.5, ttl=12)
    q.respond(["127.0.0.1"], delay_ms=130, ttl=102, ip_id=30000, df=False, flags=0x8580,
              answer_ttl=300)
    query, response = read(cap.write(tmp_path / "dns.pcapng"))
    assert query.ttl == 12 and query.dport == 53
    assert (response.ttl, response.ip_id, response.df) == (102, 30000, False)
    assert round(response.ts - query.ts, 6) == 0.13
    message = parse_dns(response.payload)
    assert message is not None
    assert message.flags == 0x8580 and message.addresses == ("127.0.0.1",)
    assert [a.ttl for a in message.answers] == [300]
    assert message.txid == parse_dns(query.payload).txid  # type: ignore[union-attr]


def test_ipv6_answers_and_resolvers(tmp_path: Path) -> None:
    cap = Capture(seed=2)
    cap.dns("2001:db8::53", "www.google.com", at=0.0, qtype="AAAA").respond(
        ["2001::1f0d:5a24"], delay_ms=10, ttl=50)
    query, response = read(cap.write(tmp_path / "v6.pcapng"))
    assert query.version == 6 and response.src == "2001:db8::53"
    assert parse_dns(response.payload).addresses == ("2001::1f0d:5a24",)  # type: ignore[union-attr]


def test_same_seed_gives_the_same_bytes(tmp_path: Path) -> None:
    def build(path: Path) -> bytes:
        cap = Capture(seed=7, hints={"probe_cc": "CN"})
        flow = cap.tcp(SERVER, 443, at=0.0)
        flow.handshake()
        flow.client_hello("twitter.com")
        flow.inject("RA", at_ms=3, ttl=58, ip_id=1)
        return cap.write(path).read_bytes()
    assert build(tmp_path / "a.pcapng.gz") == build(tmp_path / "b.pcapng.gz")


def test_tcp_flow_sequence_numbers_and_injection_offsets(tmp_path: Path) -> None:
    cap = Capture(seed=3)
    flow = cap.tcp(SERVER, 443, at=0.0, server_ttl=52)
    flow.handshake()
    flow.client_hello("vk.com")
    flow.inject("RA", at_ms=12, ttl=104, seq_offset=1460, window=2617)
    syn, synack, ack, hello, rst = read(cap.write(tmp_path / "tcp.pcapng"))
    assert (syn.flags, synack.flags, ack.flags, hello.flags) == ("S", "SA", "A", "PA")
    assert synack.ack == syn.seq + 1 and synack.ttl == 52 and synack.df
    assert hello.seq == syn.seq + 1 and hello.ack == synack.seq + 1
    assert parse_client_hello(hello.payload).sni == "vk.com"  # type: ignore[union-attr]
    assert rst.seq == hello.ack + 1460 and rst.ack == hello.seq + len(hello.payload)
    assert (rst.ttl, rst.window, rst.df) == (104, 2617, False)
    assert round((rst.ts - hello.ts) * 1000, 3) == 12.0


def test_time_exceeded_quotes_the_trigger_and_is_tied_to_its_flow(tmp_path: Path) -> None:
    cap = Capture(seed=4)
    flow = cap.tcp(SERVER, 443, at=0.0)
    flow.handshake()
    flow.client_hello("twitter.com", ttl=5)
    flow.expire("192.0.2.5", at_ms=6)
    packets = read(cap.write(tmp_path / "icmp.pcapng"))
    icmp = packets[-1]
    assert icmp.icmp_type == 11 and icmp.src == "192.0.2.5"
    assert icmp.quoted is not None and icmp.quoted.seq == packets[-2].seq


def test_syn_unreachable_reads_as_ip_reject(tmp_path: Path) -> None:
    cap = Capture(seed=5, hints={"address_platform": {SERVER: "twitter"}})
    cap.tcp(SERVER, 443, at=0.0).syn_unreachable("192.0.2.1", code=13)
    path = cap.write(tmp_path / "reject.pcapng")
    result = analyze_files([str(path)], load_catalog(None), SignatureLibrary([]),
                           TrustStore(None), on_problem=lambda _l: None)
    assert [f.technique.value for f in result.verdicts.findings] == ["ip.reject"]
    assert result.verdicts.findings[0].context["icmp.code"] == 13


def test_hints_are_written_as_the_probe_writes_them(tmp_path: Path) -> None:
    cap = Capture(seed=6, hints={"no_resolver": ["203.0.113.77"], "probe_cc": "UZ"})
    cap.dns("203.0.113.77", "example.com", at=0.0)
    path = cap.write(tmp_path / "hints.pcapng")
    with open_capture(path) as reader:
        hints = CaptureHints.from_comments(reader.section_comments)
    assert hints.no_resolver == {"203.0.113.77"}
    assert hints.raw["probe_cc"] == "UZ"


def test_server_flight_parses_with_its_chain() -> None:
    import random
    flight = parse_server_flight(server_flight(random.Random(1), [b"leaf-der", b"ca-der"]))
    assert flight.server_hello and flight.version == 0x0303
    assert flight.certificates == [b"leaf-der", b"ca-der"]
    hello = parse_client_hello(client_hello(None, random.Random(1)))
    assert hello is not None and hello.sni is None and hello.offers_tls13


def test_dns_answer_names_spelt_out_or_compressed_parse_alike(tmp_path: Path) -> None:
    """`compress=False` writes the owner name in full (as scapy's DNSRR does): the imported
    signatures' fixtures use it, and both forms must read back the same."""
    from scapy.layers.dns import DNS, DNSQR, DNSRR

    cap = Capture(seed=2, client="192.0.2.10")
    q = cap.dns("198.51.100.53", "example.org", at=0.0, txid=0x1000, sport=40000, ip_id=7,
                df=False)
    q.respond(["203.0.113.7"], delay_ms=20, ttl=58, compress=False)
    q.respond(["203.0.113.7"], delay_ms=30, ttl=58)
    query, spelt, compressed = read(cap.write(tmp_path / "dns.pcapng"))
    assert (query.sport, query.ip_id, query.df) == (40000, 7, False)
    reference = DNS(id=0x1000, qr=1, rd=1, ra=1, qd=DNSQR(qname="example.org"),
                    an=DNSRR(rrname="example.org", ttl=300, rdata="203.0.113.7"))
    assert spelt.payload == bytes(reference)
    assert len(compressed.payload) < len(spelt.payload)
    for packet in (spelt, compressed):
        message = parse_dns(packet.payload)
        assert message is not None and message.addresses == ("203.0.113.7",)


def test_frames_are_in_time_order_and_can_be_replaced() -> None:
    cap = Capture(seed=3)
    cap.dns("203.0.113.53", "b.example", at=1.0)
    cap.dns("203.0.113.53", "a.example", at=0.5)
    times = [ts for ts, _data in cap.frames]
    assert times == sorted(times) and len(times) == 2
    cap.frames = cap.frames[:1]
    assert [ts for ts, _ in cap.frames] == [times[0]]


def test_cname_chain_is_written_and_read_in_order(tmp_path: Path) -> None:
    cap = Capture(seed=4)
    q = cap.dns("203.0.113.53", "blocked.example", at=0.0)
    q.respond(["203.0.113.98"], delay_ms=10, ttl=58, cnames=["Edge.ISP.example", "blockpage.isp.example"])
    _query, response = read(cap.write(tmp_path / "cname.pcapng"))
    message = parse_dns(response.payload)
    assert message is not None
    assert message.cnames == ("edge.isp.example", "blockpage.isp.example")
    assert message.addresses == ("203.0.113.98",)
    # Each record is owned by the previous target: a chain, not three answers to the question.
    assert [a.name.lower() for a in message.answers] == ["blocked.example", "edge.isp.example",
                                                          "blockpage.isp.example"]
