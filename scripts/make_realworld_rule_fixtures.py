#!/usr/bin/env python3
"""Crafted fixtures for the rules that real captures by other researchers needed (issue 12).

    python scripts/make_realworld_rule_fixtures.py            # rebuild, write expected.json
    python scripts/make_realworld_rule_fixtures.py --check    # rebuild in a temp folder, compare

Each case reproduces, with documentation addresses, the mechanism of a real
capture the analysis got wrong (see each README), and states by hand what the
analysis must conclude.  expected.json is written ONLY when the analysis
gives exactly that; otherwise both are printed and the script exits 1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ed25519  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

from fingerprint.signature import SignatureLibrary, load_library  # noqa: E402
from fingerprint.testing.craft import Capture, TcpFlow, http_response  # noqa: E402
from fingerprint.testing.fixtures import Fixture, install_fixture, verdict_summary  # noqa: E402

CAPTURE_NAME = "capture.pcapng.gz"
SERVER = "203.0.113.80"
REMOTE_CLIENT = "198.51.100.23"

Expectation = dict[str, tuple[str, list[tuple[str, str]]]]
"""platform -> (status, [(target, technique)])"""


@dataclass
class Case:
    path: str
    title: str
    source: str
    shows: str
    build: Callable[[], Capture]
    expect: Expectation
    capture_point: str | None = None
    extra_files: Callable[[], dict[str, bytes]] | None = None


# --------------------------------------------------------------------------- cases

def server_side_resets() -> Capture:
    """Taken at the server (TTL 64 on its own packets, 50 on the client's): an on-path
    injector resets the remote client's HTTP and TLS connections and sends RSTs to the
    server in the client's name, with TTLs unlike the client's; the uncensored Host gets
    no answer in time, the client closes first and the server closes after it."""
    cap = Capture(seed=1201, client=REMOTE_CLIENT, client_ttl=50)
    t = 0.0
    for ttl in (100, 131):
        flow = cap.tcp(SERVER, 80, at=t, server_ttl=64, rtt_ms=5)
        flow.handshake()
        flow.http_get("youporn.com")
        flow.inject("RA", at_ms=0.5, ttl=ttl, ip_id=40000 + ttl, toward_server=True)
        flow._from_server(flow._after(0.6), "R")  # the server's own RST follows the forged one
        t += 3.0
    ctl = cap.tcp(SERVER, 80, at=t, server_ttl=64, rtt_ms=5)
    ctl.handshake()
    ctl.http_get("you.com")
    ctl.client_close(at_ms=3500)
    ctl._from_server(ctl._after(3502), "FA")
    t += 6.0
    for ttl in (96, 176):
        flow = cap.tcp(SERVER, 443, at=t, server_ttl=64, rtt_ms=5)
        flow.handshake()
        flow.client_hello("www.wikipedia.org")
        flow.inject("RA", at_ms=0.4, ttl=ttl, ip_id=30000 + ttl, toward_server=True)
        t += 3.0
    for _ in range(2):
        flow = cap.tcp(SERVER, 443, at=t, server_ttl=64, rtt_ms=5)
        flow.handshake()
        flow.client_hello(None)
        flow.server_hello(at_ms=1)
        t += 3.0
    return cap


def _key(seed: int) -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)


def _cert(cn: str, issuer: str, key: ed25519.Ed25519PrivateKey,
          signer: ed25519.Ed25519PrivateKey, serial: int, *, ca: bool,
          valid: tuple[dt.datetime, dt.datetime]) -> x509.Certificate:
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
               .public_key(key.public_key()).serial_number(serial)
               .not_valid_before(valid[0]).not_valid_after(valid[1])
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]),
                                        critical=False)
    return builder.sign(signer, None)  # Ed25519: deterministic


LONG = (dt.datetime(2020, 1, 1, tzinfo=dt.UTC), dt.datetime(2049, 12, 31, tzinfo=dt.UTC))
SHORT = (dt.datetime(2021, 6, 1, tzinfo=dt.UTC), dt.datetime(2021, 8, 30, tzinfo=dt.UTC))
"""A 90-day certificate around the crafted capture's start (2021-07-01): valid then,
expired since (as the 2025 Cloudflare certificates in the UPB ECH captures)."""


def expiry_pki() -> dict[str, Any]:
    root_key, other_key, leaf_key = _key(21), _key(22), _key(23)
    root = _cert("Fixture Public Root CA", "Fixture Public Root CA", root_key, root_key, 1,
                 ca=True, valid=LONG)
    unknown = _cert("Unknown Interception CA", "Unknown Interception CA", other_key, other_key,
                    2, ca=True, valid=LONG)
    der = serialization.Encoding.DER

    def chain(leaf: x509.Certificate, ca: x509.Certificate) -> tuple[bytes, bytes]:
        return (leaf.public_bytes(der), ca.public_bytes(der))

    return {
        "ca_pem": root.public_bytes(serialization.Encoding.PEM),
        "control": chain(_cert("example.com", "Fixture Public Root CA", leaf_key, root_key, 3,
                               ca=False, valid=LONG), root),
        "expired_since": chain(_cert("news.example", "Fixture Public Root CA", leaf_key,
                                     root_key, 4, ca=False, valid=SHORT), root),
        "forged": chain(_cert("forged.example", "Unknown Interception CA", leaf_key, other_key,
                              5, ca=False, valid=LONG), unknown),
    }


def certificate_expired_since() -> Capture:
    pki = expiry_pki()
    cap = Capture(seed=1203)
    for at, sni, chain in ((0.0, "example.com", pki["control"]),
                           (1.0, "news.example", pki["expired_since"]),
                           (2.0, "forged.example", pki["forged"])):
        flow = cap.tcp("203.0.113.30", 443, at=at)
        flow.handshake()
        flow.client_hello(sni)
        flow.server_hello(chain, at_ms=45)
        flow.client_close(at_ms=120)
    return cap


def _server_fin(flow: TcpFlow, at_ms: float) -> None:
    """The server's own FIN: its TTL, DF, window and the next of its IP IDs."""
    flow._from_server(flow._after(at_ms), "FA")


def server_own_behaviour() -> Capture:
    cap = Capture(seed=1202)
    # 1. A TLS server: the control gets its ServerHello; the target's ClientHello is
    #    silently dropped and the server closes the idle connection 10 s later.
    tls = "203.0.113.40"
    for at in (0.0, 0.5):
        flow = cap.tcp(tls, 443, at=at)
        flow.handshake()
        flow.client_hello("example.com")
        flow.server_hello(at_ms=45)
        flow.client_close(at_ms=100)
    for at in (1.0, 16.0):
        flow = cap.tcp(tls, 443, at=at)
        flow.handshake()
        flow.client_hello("dropped.example")
        flow.retransmit(at_ms=300)
        flow.retransmit(at_ms=900)
        _server_fin(flow, 10_000)
        flow.client_close(at_ms=10_001)
    # 2. A custom test server answering every ClientHello with 5 plain bytes; the client
    #    closes, the server's FIN follows the client's.
    custom = "203.0.113.41"
    for at, sni in ((40.0, "example.com"), (41.0, "plain.example"), (42.0, "plain.example")):
        flow = cap.tcp(custom, 443, at=at)
        flow.handshake()
        flow.client_hello(sni)
        flow.server_send(b"hello", at_ms=40)
        flow.client_close(at_ms=60)
        _server_fin(flow, 61)
    # 3. A hosting provider's server sending every Host it does not host to its own site.
    parking = "203.0.113.42"
    moved = http_response(301, "Moved Permanently",
                          [("Location", "https://www.hosting-provider.example/")])
    for at, host in ((50.0, "example.com"), (51.0, "site.example"), (52.0, "site.example")):
        flow = cap.tcp(parking, 80, at=at)
        flow.handshake()
        flow.http_get(host)
        flow.http_reply(moved, at_ms=45)
        flow.client_close(at_ms=50)
    return cap


def icmp_rate_limited() -> Capture:
    cap = Capture(seed=1206)
    blocked, control, resolver = "203.0.113.60", "203.0.113.99", "203.0.113.53"
    cap.dns(resolver, "twitter.com", at=0.0).respond([blocked], delay_ms=20, ttl=60)
    cap.dns(resolver, "example.com", at=0.1).respond([control], delay_ms=20, ttl=60)
    ok = cap.tcp(control, 443, at=0.5)
    ok.handshake()
    ok.client_hello("example.com")
    ok.server_hello(at_ms=45)
    # Port 443: two SYNs drew ICMP administratively prohibited, one nothing (the router's
    # ICMP budget was spent); port 80: nothing at all.
    t = 1.0
    for answered in (True, False, True):
        flow = cap.tcp(blocked, 443, at=t)
        if answered:
            flow.syn_unreachable("198.51.100.1", code=13)
        else:
            flow.syn_unanswered()
        t += 5.0
    for _ in range(2):
        cap.tcp(blocked, 80, at=t).syn_unanswered()
        t += 5.0
    return cap


def _router(hop: int) -> str:
    return f"198.51.100.{100 + hop}"


def traceroute_runs() -> Capture:
    """CenTrace-shaped runs: one connection per TTL, the ClientHello's TTL rising from 1
    until something other than ICMP time exceeded comes back, then the run stops."""
    cap = Capture(seed=1207)
    t = 0.0
    blockpage = http_response(403, "Forbidden", [("Content-Type", "text/html")],
                              b"<html><body>" + b"Access to this site is restricted. " * 13
                              + b"</body></html>")
    for server, censor_hop, reaction in (("203.0.113.70", 12, "reset"),
                                         ("203.0.113.71", 9, "blockpage")):
        server_hop = 17
        for sni in ("example.com", "censored.example"):
            for ttl in range(1, server_hop + 1):
                flow = cap.tcp(server, 443, at=t, server_ttl=47, rtt_ms=60)
                t += 2.0
                flow.handshake()
                flow.client_hello(sni, ttl=ttl)
                if ttl < server_hop:
                    flow.expire(_router(ttl), at_ms=ttl * 3)
                blocked = sni != "example.com" and ttl >= censor_hop
                if blocked and reaction == "reset":
                    flow.inject("R", at_ms=ttl * 3 + 1, ttl=25, df=False, window=8192)
                    flow.client_close(at_ms=400, rst=True)
                    break
                if blocked:
                    flow.inject("FPA", at_ms=ttl * 3 + 1, ttl=83, df=False, payload=blockpage)
                    flow.client_close(at_ms=400)
                    break
                if ttl == server_hop:
                    flow.server_hello(at_ms=62)
                    flow.client_close(at_ms=200)
                    break
                flow.client_close(at_ms=1500)
    return cap


def endpoint_refusal() -> Capture:
    cap = Capture(seed=1204)
    server = "203.0.113.75"
    site = http_response(200, "OK", [("Content-Type", "text/html")],
                         b"<html><body>" + b"<p>An ordinary page of the site.</p>" * 90
                         + b"</body></html>")
    refusal = http_response(403, "Forbidden", [("Content-Type", "text/html")],
                            b"<html><body>Forbidden</body></html>")
    for at, host, answer in ((0.0, "example.com", site), (1.0, "refused.example", refusal),
                             (2.0, "example.com", site), (3.0, "refused.example", refusal)):
        flow = cap.tcp(server, 80, at=at)
        flow.handshake()
        flow.http_get(host)
        flow.http_reply(answer, at_ms=45)
        flow.client_close(at_ms=60)
    return cap


def control_blocked_otherwise() -> Capture:
    cap = Capture(seed=1208)
    server = "203.0.113.77"
    t = 0.0
    for _ in range(2):  # the control (no SNI, as ECH sends it) is dropped on its own
        flow = cap.tcp(server, 443, at=t)
        flow.handshake()
        flow.client_hello(None)
        flow.retransmit(at_ms=300)
        flow.client_close(at_ms=5000)
        t += 6.0
    for _ in range(2):  # another name on the same address works
        flow = cap.tcp(server, 443, at=t)
        flow.handshake()
        flow.client_hello("open.example")
        flow.server_hello(at_ms=45)
        flow.client_close(at_ms=100)
        t += 1.0
    for _ in range(2):  # the target draws an injected RST/ACK carrying 6 bytes
        flow = cap.tcp(server, 443, at=t)
        flow.handshake()
        flow.client_hello("censored.example")
        flow.inject("RA", at_ms=4, ttl=54, df=False, window=0, payload=b"\x00" * 6)
        t += 1.0
    return cap


def _answer_lost_from_capture(flow: TcpFlow, size: int, segments: int) -> None:
    """The server acknowledges the ClientHello and sends its flight (`size` bytes in
    `segments` packets), which the capture loses; its FIN is recorded, 1 ms later the
    client's ACK of the flight and of the FIN."""
    flow._from_server(flow._after(20), "A")
    flow.server_lost_from_capture(size, segments=segments)
    flow.server_close(at_ms=49)
    flow.client_ack(at_ms=50)


def answer_lost_from_capture() -> Capture:
    """One address hosting several names, ClientHellos with and without ECH (GREASE ECH
    stands for the real extension), as the UPB tool sends them."""
    cap = Capture(seed=1209)
    server = "203.0.113.85"
    t = 0.0

    def attempt(sni: str | None, ech: bool) -> TcpFlow:
        nonlocal t
        flow = cap.tcp(server, 443, at=t, server_ttl=58)
        t += 0.5
        flow.handshake()
        flow.client_hello(sni, ech=ech)
        return flow

    for sni, ech in ((None, True), (None, True), ("example.com", False),
                     ("example.com", False)):
        flow = attempt(sni, ech)  # the controls: ECH without an outer SNI, and plain
        flow.server_hello(at_ms=25)
        flow.client_close(at_ms=30)
    # open.example with ECH, the same without: the flight with ECH is lost by the capture.
    attempt("open.example", False).server_hello(at_ms=25)
    _answer_lost_from_capture(attempt("open.example", True), 3093, 3)
    # news.example with ECH answered, without ECH lost by the capture.
    attempt("news.example", True).server_hello(at_ms=25)
    _answer_lost_from_capture(attempt("news.example", False), 2771, 2)
    # censored.example: dropped twice.  The second time the server's flight and FIN
    # come after the drop ended; the client never acknowledges the flight (it was lost
    # on the way, not by the capture): still silence.
    for lost_on_the_way in (False, True):
        flow = attempt("censored.example", False)
        flow.retransmit(at_ms=300)
        if lost_on_the_way:
            flow._from_server(flow._after(900), "A")
            server_seq = flow.server_seq
            flow.server_lost_from_capture(3093, segments=3)
            flow.server_close(at_ms=950)
            flow.server_seq = server_seq  # the client got none of it: it acknowledges none
            flow.client_ack(at_ms=951)
        flow.client_close(at_ms=5000)
        t += 5.0
    return cap


CASES = [
    Case("realworld-rules/server-side-reset", "Seen at the server: resets forged in the client's name",
         "Tripwire (lhmerino/censorship-detection, testdata/tripwire-1597963966.pcap and "
         "airtel_example.pcap): the Great Firewall's and Airtel's RST/ACKs reach the server "
         "with TTLs unlike the client's (58-229 against 50-52); Sundara Raman et al., "
         "'Measuring the Deployment of Network Censorship Filters at Global Scale' / Merino "
         "et al. (Tripwire). pcaps/realworld/tripwire-* hold the real captures.",
         "The capture point is the server (SYNs arrive with TTL 50, SYN-ACKs leave with 64). "
         "youporn.com (HTTP) and www.wikipedia.org (TLS) draw RST/ACKs arriving from the "
         "client's address with TTLs 96-176 and no DF: an injector reset the remote client, "
         "http.reset and tls.sni_reset. you.com gets no answer within 3.5 s, the client "
         "closes and the server's FIN follows the client's: the server's own close, "
         "accessible (before this rule: http.fin).",
         server_side_resets,
         {"other": ("blocked", [("www.wikipedia.org", "tls.sni_reset"),
                                ("youporn.com", "http.reset")])},
         capture_point="server"),
    Case("realworld-rules/certificate-expired-since", "Certificates judged when the capture was made",
         "UPB-SysSec/EchCensorshipResults comprehensive/china__cf_cdn.pcapng and "
         "russia__cf_single_ip_fragmentation.pcapng (FOCI 2025): uncensored 2025 connections "
         "to Cloudflare came out tls.mitm because their 90-day certificates have expired since; "
         "their default certificate for names a single-site address does not host chains to a "
         "public root too. ca.pem stands for the public trust store.",
         "Capture of 2021-07-01. news.example gets a chain to the trusted root whose leaf was "
         "valid from 2021-06-01 to 2021-08-30: valid at capture time, expired today; "
         "accessible (before this rule: tls.mitm, 'certificate has expired'). forged.example "
         "gets a chain to a root nobody trusts: tls.mitm. example.com is the control.",
         certificate_expired_since,
         {"other": ("blocked", [("forged.example", "tls.mitm")])},
         extra_files=lambda: {"ca.pem": expiry_pki()["ca_pem"]}),
    Case("realworld-rules/server-own-behaviour", "The server's own behaviour is not censorship",
         "UPB-SysSec/EchCensorshipResults comprehensive/russia__vps.pcapng (FOCI 2025): the "
         "ClientHello's second segment is dropped (Russia drops) and the server closes the "
         "idle connection about a minute later, with its own TTL and next IP ID; the UPB test "
         "servers answer a ClientHello with 5 non-TLS bytes and close after the client; an "
         "off-site redirect a hosting provider gives every unknown Host (issue 12).",
         "dropped.example: ClientHello unanswered, the server's FIN (its TTL, DF and next IP "
         "ID) 10 s later: tls.sni_drop (before: tls.sni_fin). plain.example: the custom "
         "server answers 5 plain bytes, as it does for the control, and closes after the "
         "client: accessible (before: tls.sni_fin). site.example: 301 to another site, as "
         "the control Host gets from the same server: accessible (before: http.blockpage).",
         server_own_behaviour,
         {"other": ("blocked", [("dropped.example", "tls.sni_drop")])}),
    Case("realworld-rules/icmp-rate-limited", "ICMP rate limiting: some SYNs rejected, others silent",
         "RFC 1812 section 4.3.2.8 (routers rate-limit the ICMP errors they generate); issue 12: "
         "real captures where some SYNs drew ICMP administratively prohibited and the others "
         "nothing came out ip.reject plus ip.blackhole.",
         "twitter.com resolves to 203.0.113.60. On port 443 two SYNs draw ICMP destination "
         "unreachable code 13 from a router and one gets nothing; on port 80 no SYN gets "
         "anything. The router rejects; its ICMP is rate-limited: ip.reject alone (before: "
         "ip.reject and ip.blackhole). example.com's address answers.",
         icmp_rate_limited,
         {"twitter": ("blocked", [("203.0.113.60", "ip.reject"), ("203.0.113.60", "ip.reject")])}),
    Case("realworld-rules/traceroute-only", "Censorship traceroutes with no full-TTL attempt",
         "CenTrace (Sundara Raman et al., 'Network Measurement Methods for Locating and "
         "Examining Censorship Devices', CoNEXT 2022; censoredplanet/CenTrace): its published "
         "runs raise the ClientHello's TTL until something other than ICMP time exceeded "
         "comes back, then stop; pcaps/realworld/centrace-psiphon-pair is a real pair. Issue "
         "12: such runs came out accessible, and a run answered by a FIN with a 553-byte "
         "blockpage (TTL 83 against the server's 47) gave no platform traffic at all.",
         "Two servers, each with a control run (example.com, reaching the server at TTL 17) "
         "and a target run (censored.example). At 203.0.113.70 the target's ClientHello "
         "draws, from TTL 12 on, an RST without DF, window 8192, TTL 25 (server: 47, DF) "
         "beside the ICMP from hop 12: tls.sni_reset at hop 12, router 198.51.100.111 (the "
         "ICMP for TTL 11). At 203.0.113.71 it draws from TTL 9 a FIN carrying a 553-byte "
         "HTTP 403 page with TTL 83: tls.sni_fin at hop 9. Neither run has a full-TTL "
         "attempt.",
         traceroute_runs,
         {"other": ("blocked", [("censored.example", "tls.sni_reset"),
                                ("censored.example", "tls.sni_fin")])}),
    Case("realworld-rules/endpoint-refusal", "Blocked at the endpoint: the server refuses the Host",
         "CenTrace (Sundara Raman et al., CoNEXT 2022): ENDPOINT_FIREWALL, blocking by the "
         "server or a firewall beside it, seen as a short block response and FIN for the test "
         "Host while the control Host gets the site from the same server (issue 12, item 4).",
         "203.0.113.75 answers Host example.com with its 3 kB page and Host refused.example "
         "with a 36-byte 403 and a FIN, from its own stack (its TTL, DF and IP IDs): "
         "http.blockpage located at the endpoint (before: accessible).",
         endpoint_refusal,
         {"other": ("blocked", [("refused.example", "http.blockpage")])}),
    Case("realworld-rules/control-blocked-otherwise", "The control blocked on its own, another name works",
         "UPB-SysSec/EchCensorshipResults comprehensive/iran__cf_cdn.pcapng (FOCI 2025): Iran "
         "drops ECH ClientHellos without an outer SNI (the capture's control) and resets "
         "usersporn.com with an RST/ACK carrying 6 bytes, no DF, TTL 54 against the server's "
         "51, while other names on the same Cloudflare address work.",
         "203.0.113.77: the no-SNI control ClientHellos go unanswered; open.example gets a "
         "ServerHello; censored.example draws an injected RST/ACK with 6 bytes of payload. "
         "The control failed differently (silence) from the target (injected reset) and "
         "another name works: tls.sni_reset (before: inconclusive, 'failed, and so did its "
         "control').",
         control_blocked_otherwise,
         {"other": ("blocked", [("censored.example", "tls.sni_reset")])}),
    Case("realworld-rules/answer-lost-from-capture", "The server's answer lost by the capture",
         "UPB-SysSec/EchCensorshipResults comprehensive/russia__cf_single_ip.pcapng, "
         "iran__cf_cdn.pcapng and iran__vps.pcapng (FOCI 2025): in single attempts to names "
         "the authors' summaries do not list as blocked there (pornhub.com with ECH in "
         "Russia; cloudflare-ech.com, google.com and world79.spcs.bio without ECH in Iran) "
         "the capture holds the server's "
         "ACK of the ClientHello, then its FIN at a sequence number 909-3094 bytes on, its "
         "IP IDs skipping the data packets, and the client's ACK of all of it (Wireshark: "
         "'previous segment not captured'): the capture lost the server's flight, the client "
         "received it.",
         "203.0.113.85, controls (ECH without an outer SNI, example.com) answered. "
         "open.example: answered without ECH; with ECH the server's 3093-byte flight is "
         "missing from the capture, its FIN past it and the client's ACK of both are there: "
         "accessible (before: inconclusive, 'silence with ECH, too few attempts'). "
         "news.example: the same without ECH, answered with it: accessible (before: "
         "tls.sni_drop, '1 of 1 attempt: silence'). censored.example: "
         "ClientHello unanswered twice; the second time the server's FIN, past a flight the "
         "client never acknowledges, comes late: the answer was lost on the way, not by the "
         "capture: tls.sni_drop.",
         answer_lost_from_capture,
         {"other": ("blocked", [("censored.example", "tls.sni_drop")])}),
]


# --------------------------------------------------------------------------- driver

def expected_summary(expect: Expectation) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for platform, (status, findings) in expect.items():
        out[platform] = {"status": status,
                         "techniques": sorted({t for _n, t in findings}),
                         "findings": sorted([n, t, []] for n, t in findings)}
    return out


def readme(case: Case) -> str:
    return (f"# {case.title}\n\n{case.shows}\n\nSource: {case.source}\n\n"
            "Crafted by `scripts/make_realworld_rule_fixtures.py` (documentation addresses "
            "only; regenerate with `python scripts/make_realworld_rule_fixtures.py`).\n")


def build_case(case: Case, folder: Path, library: SignatureLibrary) -> tuple[dict[str, Any], bool]:
    folder.mkdir(parents=True)
    case.build().write(folder / CAPTURE_NAME)
    if case.extra_files is not None:
        for name, data in case.extra_files().items():
            (folder / name).write_bytes(data)
    (folder / "README.md").write_text(readme(case))
    result, report = Fixture(folder).analyze(library)
    report.pop("generated", None)
    report.update({"inputs": [CAPTURE_NAME], "packets": result.packets,
                   "problems": result.problems})
    ok = verdict_summary(report) == expected_summary(case.expect)
    if case.capture_point is not None:
        ok = ok and report.get("capture_point", {}).get("end") == case.capture_point
    return report, ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare only; write nothing")
    args = parser.parse_args(argv)
    library = load_library(REPO / "signatures")
    failures = 0
    with tempfile.TemporaryDirectory() as scratch:
        for case in CASES:
            staging = Path(scratch) / case.path
            report, ok = build_case(case, staging, library)
            if not ok:
                failures += 1
                print(f"WRONG {case.path}\n  expected {json.dumps(expected_summary(case.expect))}"
                      f" capture_point={case.capture_point}\n"
                      f"  analysis {json.dumps(verdict_summary(report))}"
                      f" capture_point={report.get('capture_point')}")
                continue
            if args.check:
                print(f"ok    {case.path}")
                continue
            size = install_fixture(staging, report, REPO / "pcaps" / case.path)
            print(f"wrote {case.path} ({size} bytes)")
    print(f"{len(CASES)} cases, {failures} wrong")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
