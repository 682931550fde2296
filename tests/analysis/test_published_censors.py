"""Published censor behaviours, crafted from their descriptions, with a control that works:
the technique must be the published one and the control SNI / Host on the same address
must be reported as working.  Behaviours with a signature of their own have a fixture in
pcaps/; these are the injector variants reports describe without one (flags, sequence
and acknowledgement numbers, TTLs and IP IDs that differ from injector to injector)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from fingerprint.testing import replay
from fingerprint.testing.craft import Capture, TcpFlow, app_data, client_hello, http_response
from fingerprint.testing.scenes import write_catalog_serving_quic

CLIENT, RESOLVER = "192.168.1.23", "192.168.1.1"
SERVER = "104.244.42.65"  # twitter.com's address in the catalog
SITE = b"<html>" + b"x" * 3000 + b"</html>"

Behaviour = Callable[[TcpFlow], None]


def _capture(seed: int, port: int, behaviour: Behaviour) -> Capture:
    """The control name twice on the server, then twitter.com twice, each attempt
    answered as `behaviour` says."""
    cap = Capture(seed=seed, client=CLIENT)
    cap.dns(RESOLVER, "twitter.com", at=0.0).respond([SERVER], delay_ms=12, ttl=64)
    for n in range(2):
        control = cap.tcp(SERVER, port, at=0.1 + n * 0.2, server_ttl=50, rtt_ms=30)
        control.handshake()
        if port == 443:
            control.client_hello("example.com")
            control.server_hello()
        else:
            control.http_get("example.com")
            control.http_reply(http_response(200, "OK", [("Content-Type", "text/html")], SITE))
        control.client_close(at_ms=200)
    for n in range(2):
        flow = cap.tcp(SERVER, port, at=1.0 + n, server_ttl=50, rtt_ms=30)
        flow.handshake()
        behaviour(flow)
    cap.dns(RESOLVER, "end.invalid", at=30.0)
    return cap


def _blockpage(body: bytes, status: str = "200 OK") -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Type: text/html\r\nConnection: close\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


# --------------------------------------------------------------------------- TLS (port 443)

def rst_ack_after_client_hello(flow: TcpFlow) -> None:
    """RST+ACK right after the ClientHello (Jio: CIS India 2020; Turkey's SNI filter)."""
    flow.client_hello("twitter.com")
    flow.inject("RA", at_ms=8, ttl=54, ip_id=0, df=False)


def stateless_rst_acking_trigger_start(flow: TcpFlow) -> None:
    """A stateless injector's RST acknowledging the trigger's first byte, not its end."""
    flow.client_hello("twitter.com")
    flow.inject("RA", at_ms=8, ttl=54, ip_id=0, df=False,
                ack=(flow.client_seq - len(flow.trigger_payload)) & 0xFFFFFFFF)


def rst_ttl_copied_from_trigger(flow: TcpFlow) -> None:
    """The injected RST carries the trigger's own TTL (FOCI 2020: one GFW injector copies
    the probe's TTL)."""
    flow.client_hello("twitter.com")
    flow.inject("RA", at_ms=3, ttl=64, ip_id=0, df=False)


def rst_with_the_servers_fields(flow: TcpFlow) -> None:
    """An in-path firewall beside the server: its TTL, DF and next IP ID, one RTT later."""
    flow.client_hello("twitter.com")
    flow.inject("RA", at_ms=31, ttl=50, ip_id=flow.server_ip_id + 1, df=True)


def rst_both_ways_fixed_ip_id(flow: TcpFlow) -> None:
    """RSTs toward both ends with one fixed IP ID (Wang et al. 2017: the GFW resets both)."""
    flow.client_hello("twitter.com")
    flow.inject("RA", at_ms=4, ttl=240, ip_id=0x3412, df=False)
    flow.inject("RA", at_ms=4.1, ttl=240, ip_id=0x3412, df=False, toward_server=True)


def handshake_then_rst(flow: TcpFlow) -> None:
    """The ServerHello gets through, the RST follows (Iran 2018: the DPI reads the
    certificate too)."""
    flow.client_hello("twitter.com")
    flow.server_hello()
    flow.inject("RA", at_ms=40, ttl=60, ip_id=0, df=False)


def split_client_hello_dropped(flow: TcpFlow) -> None:
    """The ClientHello in two segments, dropped after reassembly (Russia's TSPU,
    Xue et al. IMC 2022): the client retransmits, then gives up."""
    hello = client_hello("twitter.com", flow.capture.rng)
    flow.send(hello[:10])
    flow.send(hello[10:], gap_ms=0.2)
    flow.retransmit(at_ms=300)
    flow.retransmit(at_ms=900)
    flow.client_close(at_ms=10_000)


def injected_alert_then_rst(flow: TcpFlow) -> None:
    """A fatal handshake_failure alert forged by a middlebox, then its RST."""
    flow.client_hello("twitter.com")
    flow.inject("PA", at_ms=3, ttl=60, ip_id=0, df=False, payload=b"\x15\x03\x03\x00\x02\x02\x28")
    flow.inject("RA", at_ms=3.1, ttl=60, ip_id=0, df=False, seq_offset=7)


def http_blockpage_on_tls(flow: TcpFlow) -> None:
    """An HTTP 403 page with an iframe to 10.10.34.34 injected in answer to the
    ClientHello, then FIN (Iran: OONI measurements fail with "first record does not look
    like a TLS handshake" on this page)."""
    flow.client_hello("twitter.com")
    page = _blockpage(b'<html><head><title>M1-6</title></head><body><iframe '
                      b'src="http://10.10.34.34?type=Invalid Site&policy=MainPolicy" '
                      b'style="width: 100%; height: 100%"></iframe></body></html>',
                      "403 Forbidden")
    flow.inject("FPA", at_ms=3, ttl=45, ip_id=0, df=False, payload=page)


# --------------------------------------------------------------------------- HTTP (port 80)

def blockpage_with_fin(flow: TcpFlow) -> None:
    """An injected 200 whose body frames the ISP's notice, closed with FIN (Airtel:
    Singh et al., "How India Censors the Web", WebSci 2020)."""
    flow.http_get("twitter.com")
    page = _blockpage(b'<html><body><iframe src="http://192.0.2.80/dot/?url=twitter.com" '
                      b'width="100%" height="100%"></iframe></body></html>')
    flow.inject("FPA", at_ms=3, ttl=60, ip_id=0x1234, df=False, payload=page)


def blockpage_then_rst(flow: TcpFlow) -> None:
    """An injected blockpage closed with an RST after it: the page is the answer."""
    flow.http_get("twitter.com")
    page = _blockpage(b"<html><body>The site you are trying to access contains content "
                      b"that is prohibited.</body></html>")
    flow.inject("PA", at_ms=4, ttl=58, ip_id=0, df=False, payload=page)
    flow.inject("RA", at_ms=4.1, ttl=58, ip_id=0, df=False, seq_offset=len(page))


def blockpage_in_two_segments_then_rst(flow: TcpFlow) -> None:
    flow.http_get("twitter.com")
    page = _blockpage(b"<html><body>" + b"blocked " * 300 + b"</body></html>")
    flow.inject("PA", at_ms=4, ttl=58, ip_id=0, df=False, payload=page[:1400])
    flow.inject("PA", at_ms=4.1, ttl=58, ip_id=0, df=False, payload=page[1400:],
                seq_offset=1400)
    flow.inject("RA", at_ms=4.2, ttl=58, ip_id=0, df=False, seq_offset=len(page))


def blockpage_racing_the_server(flow: TcpFlow) -> None:
    """The injected page and FIN arrive first, the server's own answer after them."""
    flow.http_get("twitter.com")
    page = _blockpage(b'<html><body><iframe src="http://192.0.2.80/blocked.html"></iframe>'
                      b"</body></html>")
    flow.inject("PA", at_ms=3, ttl=60, ip_id=0, df=False, payload=page)
    flow.inject("FA", at_ms=3.1, ttl=60, ip_id=0, df=False, seq_offset=len(page))
    flow.http_reply(http_response(200, "OK", [("Content-Type", "text/html")], SITE))


def redirect_to_deny_page(flow: TcpFlow) -> None:
    """An injected 302 to a filter's deny page on an address (Netsweeper's
    /webadmin/deny/, OONI fingerprints for its deployments)."""
    flow.http_get("twitter.com")
    flow.inject("FPA", at_ms=2, ttl=250, ip_id=0, df=False,
                payload=b"HTTP/1.1 302 Found\r\nLocation: http://192.0.2.80:8080/webadmin/deny/"
                        b"index.php?dpid=1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")


def gfw_http_resets(flow: TcpFlow) -> None:
    """One RST, then three RST+ACKs at seq X, X+1460, X+4380 (Wang et al. IMC 2017)."""
    flow.http_get("twitter.com")
    flow.inject("R", at_ms=5, ttl=47, df=False, window=2048)
    for k, offset in enumerate((0, 1460, 4380)):
        flow.inject("RA", at_ms=6 + k, ttl=100 + k, df=False, seq_offset=offset,
                    window=3000 + k)


def request_dropped(flow: TcpFlow) -> None:
    flow.http_get("twitter.com")
    flow.retransmit(at_ms=300)
    flow.retransmit(at_ms=900)
    flow.client_close(at_ms=20_000)


CASES: list[tuple[int, Behaviour, str]] = [
    (443, rst_ack_after_client_hello, "tls.sni_reset"),
    (443, stateless_rst_acking_trigger_start, "tls.sni_reset"),
    (443, rst_ttl_copied_from_trigger, "tls.sni_reset"),
    (443, rst_with_the_servers_fields, "tls.sni_reset"),
    (443, rst_both_ways_fixed_ip_id, "tls.sni_reset"),
    (443, handshake_then_rst, "tls.sni_reset"),
    (443, split_client_hello_dropped, "tls.sni_drop"),
    (443, injected_alert_then_rst, "tls.sni_reset"),
    (443, http_blockpage_on_tls, "tls.sni_fin"),
    (80, blockpage_with_fin, "http.blockpage"),
    (80, blockpage_then_rst, "http.blockpage"),
    (80, blockpage_in_two_segments_then_rst, "http.blockpage"),
    (80, blockpage_racing_the_server, "http.blockpage"),
    (80, redirect_to_deny_page, "http.blockpage"),
    (80, gfw_http_resets, "http.reset"),
    (80, request_dropped, "http.drop"),
]


@pytest.mark.parametrize(("port", "behaviour", "technique"), CASES,
                         ids=[b.__name__ for _p, b, _t in CASES])
def test_published_behaviour(port: int, behaviour: Behaviour, technique: str,
                             tmp_path: Path) -> None:
    seed = CASES.index((port, behaviour, technique)) + 1
    run = replay(_capture(seed, port, behaviour).write(tmp_path / "capture.pcapng"))
    finding = run.expect(technique=technique, target="twitter.com")
    assert [f.technique.value for f in run.findings] == [technique]
    # The control on the same address worked (a failure's note) or got the site (a page's).
    assert any(("control" in note and "worked" in note) or "control Host got status [200]" in note
               for note in finding.notes), finding.notes
    assert run.status("twitter") == "blocked"


def test_http_server_on_the_tls_port_is_its_own(tmp_path: Path) -> None:
    """A plain HTTP server on port 443 answers every ClientHello with the same 400 page:
    the control got it too, so it is the server's own answer, not a blockpage on TLS."""
    def bad_request(flow: TcpFlow) -> None:
        flow.client_hello("twitter.com")
        flow.http_reply(_blockpage(b"<html>400 The plain HTTP request was sent to HTTPS "
                                   b"port</html>", "400 Bad Request"))

    cap = Capture(seed=50, client=CLIENT)
    cap.dns(RESOLVER, "twitter.com", at=0.0).respond([SERVER], delay_ms=12, ttl=64)
    for n in range(2):
        control = cap.tcp(SERVER, 443, at=0.1 + n * 0.2, server_ttl=50, rtt_ms=30)
        control.handshake()
        control.client_hello("example.com")
        control.http_reply(_blockpage(b"<html>400 The plain HTTP request was sent to HTTPS "
                                      b"port</html>", "400 Bad Request"))
    for n in range(2):
        flow = cap.tcp(SERVER, 443, at=1.0 + n, server_ttl=50, rtt_ms=30)
        flow.handshake()
        bad_request(flow)
    cap.dns(RESOLVER, "end.invalid", at=30.0)
    run = replay(cap.write(tmp_path / "capture.pcapng"))
    assert run.findings == []
    assert run.status("twitter") != "blocked"


def _without_control(seed: int, behaviour: Behaviour) -> Capture:
    cap = Capture(seed=seed, client=CLIENT)
    cap.dns(RESOLVER, "twitter.com", at=0.0).respond([SERVER], delay_ms=12, ttl=64)
    for n in range(2):
        flow = cap.tcp(SERVER, 443, at=1.0 + n, server_ttl=50, rtt_ms=30)
        flow.handshake()
        behaviour(flow)
    cap.dns(RESOLVER, "end.invalid", at=30.0)
    return cap


def test_servers_own_looking_reset_without_a_control_is_not_a_block(tmp_path: Path) -> None:
    """An RST one round trip after the ClientHello with the server's TTL, DF and next IP
    ID, and no control on the address: a server refusing a name it does not serve looks
    the same as a box beside it; inconclusive, not tls.sni_reset."""
    run = replay(_without_control(51, rst_with_the_servers_fields)
                 .write(tmp_path / "capture.pcapng"))
    assert run.findings == []
    assert run.status("twitter") == "inconclusive"


def test_injected_reset_without_a_control_stays_a_block(tmp_path: Path) -> None:
    run = replay(_without_control(52, rst_ack_after_client_hello)
                 .write(tmp_path / "capture.pcapng"))
    run.expect(technique="tls.sni_reset", target="twitter.com")


def _quic_everywhere(seed: int, *, elsewhere_answered: bool) -> Capture:
    """QUIC Initials to twitter.com's address unanswered for the target and the control
    SNI, TCP/443 there working; the control SNI's Initials at a control address
    answered or not."""
    cap = Capture(seed=seed, client=CLIENT)
    cap.dns(RESOLVER, "twitter.com", at=0.0).respond([SERVER], delay_ms=12, ttl=64)
    other = cap.quic("203.0.113.99", 443, at=0.5, server_ttl=50)
    other.initial("example.com")
    if elsewhere_answered:
        other.answer()
    else:
        other.initial("example.com", at_s=1.0)
    for n, sni in enumerate(("example.com", "twitter.com", "twitter.com")):
        flow = cap.quic(SERVER, 443, at=3.0 + n * 3, server_ttl=50)
        flow.initial(sni)
        flow.initial(sni, at_s=1.0)
    tcp = cap.tcp(SERVER, 443, at=12.0, server_ttl=50, rtt_ms=30)
    tcp.handshake()
    tcp.client_hello("twitter.com")
    tcp.server_hello()
    tcp.client_close(at_ms=200)
    cap.dns(RESOLVER, "end.invalid", at=40.0)
    return cap


def test_quic_dropped_on_the_whole_network_is_quic_drop(tmp_path: Path) -> None:
    """Every QUIC Initial unanswered, the control SNI's at a control address too, while
    TCP/443 to the platform's address works: UDP/443 dropped wholesale (Russia's QUIC
    blocking from 2022-03, net4people/bbs#108) is still QUIC blocked for this platform,
    as issue 14 names it (the udp-drop lab scenario): quic.drop, not a verdict withheld."""
    run = replay(_quic_everywhere(53, elsewhere_answered=False).write(tmp_path / "c.pcapng"),
                 catalog=write_catalog_serving_quic(tmp_path, "twitter"))
    run.expect(technique="quic.drop", target="twitter.com")


def test_quic_dropped_everywhere_at_a_server_not_known_to_speak_quic_is_inconclusive(
        tmp_path: Path) -> None:
    """The same capture with the built-in catalog, which does not list Twitter as serving
    QUIC: a server that never listened on UDP/443 gives the same silence, so no verdict."""
    run = replay(_quic_everywhere(53, elsewhere_answered=False).write(tmp_path / "c.pcapng"))
    assert not [f for f in run.findings if f.technique.value.startswith("quic.")]


def test_quic_dropped_at_one_address_stays_quic_drop(tmp_path: Path) -> None:
    run = replay(_quic_everywhere(54, elsewhere_answered=True).write(tmp_path / "c.pcapng"),
                 catalog=write_catalog_serving_quic(tmp_path, "twitter"))
    run.expect(technique="quic.drop", target="twitter.com")


def test_unanswered_syns_with_nothing_connected_are_not_a_block(tmp_path: Path) -> None:
    """SYNs to the platform unanswered, no control address, and no other connection in
    the capture completed: a shutdown (Belarus 2020, where controls alone told it from site
    blocking) looks the same; inconclusive, not ip.blackhole (0.6 before)."""
    cap = Capture(seed=55, client=CLIENT)
    cap.dns(RESOLVER, "twitter.com", at=0.0).respond([SERVER], delay_ms=12, ttl=64)
    for n in range(2):
        cap.tcp(SERVER, 443, at=1.0 + n * 5).syn_unanswered()
    cap.dns(RESOLVER, "end.invalid", at=40.0)
    run = replay(cap.write(tmp_path / "capture.pcapng"))
    assert run.findings == []
    assert run.status("twitter") == "inconclusive"


def test_unanswered_syns_while_another_site_connects_stay_a_blackhole(tmp_path: Path) -> None:
    """The same SYNs while a connection to another (non-control) site completed: the
    network works, ip.blackhole without a control as before."""
    cap = Capture(seed=56, client=CLIENT)
    cap.dns(RESOLVER, "twitter.com", at=0.0).respond([SERVER], delay_ms=12, ttl=64)
    other = cap.tcp("157.240.1.35", 443, at=0.5, server_ttl=56, rtt_ms=30)
    other.handshake()
    other.client_hello("www.facebook.com")
    other.server_hello()
    other.client_close(at_ms=200)
    for n in range(2):
        cap.tcp(SERVER, 443, at=1.0 + n * 5).syn_unanswered()
    cap.dns(RESOLVER, "end.invalid", at=40.0)
    run = replay(cap.write(tmp_path / "capture.pcapng"))
    run.expect(technique="ip.blackhole", target=SERVER)


def test_forged_reset_the_client_did_not_take_is_not_a_block(tmp_path: Path) -> None:
    """A forged RST out of the client's window (RFC 5961: dropped), after which the
    client sends its request and the server answers it: the connection went on, the
    injector blocked nothing (tls.sni_reset before)."""
    def ignored(flow: TcpFlow) -> None:
        flow.client_hello("twitter.com")
        flow.inject("RA", at_ms=3, ttl=60, ip_id=0, df=False, seq_offset=0x40000000)
        flow.server_hello()
        flow.send(app_data(400), gap_ms=70)
        flow.server_send(app_data(3000), at_ms=140)
        flow.client_ack(at_ms=141)
        flow.client_close(at_ms=300, rst=True)

    run = replay(_capture(57, 443, ignored).write(tmp_path / "capture.pcapng"))
    assert run.findings == []
    assert run.status("twitter") == "accessible"


def test_client_sending_on_into_a_server_reset_stays_a_reset(tmp_path: Path) -> None:
    """The injector lost the race (the ServerHello came first) and its RST fell out of
    the client's window; the client sent its next flight, and the server, reset on its
    side by the injector, answered it with an RST: still tls.sni_reset."""
    def reset_both_sides(flow: TcpFlow) -> None:
        flow.client_hello("twitter.com")
        flow.server_hello()
        flow.inject("RA", at_ms=35, ttl=60, ip_id=1, df=False, seq_offset=-1)
        assert flow.trigger_ts is not None
        flow.t = flow.trigger_ts + 0.040  # the next flight, after the RST came in
        flow.send(app_data(93))
        flow.inject("R", at_ms=60, ttl=50, ip_id=0, df=True)

    run = replay(_capture(58, 443, reset_both_sides).write(tmp_path / "capture.pcapng"))
    run.expect(technique="tls.sni_reset", target="twitter.com")


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 302 Found\r\nLocation: http://portal.example.net/login?orig=%s\r\n"
    b"Content-Length: 0\r\nConnection: close\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 52\r\nConnection: close\r\n\r\n"
    b"<html><body>Log in to use this network</body></html>",
], ids=["redirect", "page"])
def test_same_forged_answer_for_the_control_host_is_not_a_block(answer: bytes,
                                                                  tmp_path: Path) -> None:
    """A captive portal (hotel or café Wi-Fi) answers every HTTP request itself, the
    control Host's too, with a redirect to its login page or a page of its own: no Host is
    singled out, inconclusive (http.blockpage before)."""
    cap = Capture(seed=59, client=CLIENT)
    cap.dns(RESOLVER, "twitter.com", at=0.0).respond([SERVER], delay_ms=12, ttl=64)
    for n in range(2):
        for k, host in enumerate(("example.com", "twitter.com")):
            flow = cap.tcp(SERVER, 80, at=0.1 + n + k * 0.4, server_ttl=50, rtt_ms=30)
            flow.handshake()
            flow.http_get(host)
            payload = answer.replace(b"%s", b"http://" + host.encode() + b"/")
            flow.inject("FPA", at_ms=1, ttl=64, ip_id=0, df=False, payload=payload)
    cap.dns(RESOLVER, "end.invalid", at=30.0)
    run = replay(cap.write(tmp_path / "capture.pcapng"))
    assert run.findings == []
    assert run.status("twitter") == "inconclusive"


def test_same_redirect_for_the_control_name_is_not_a_block(tmp_path: Path) -> None:
    """A captive portal's resolver answers every name, the control name too, with its
    own private address: no name is singled out, inconclusive (dns.redirect before)."""
    cap = Capture(seed=60, client=CLIENT)
    for n in range(2):
        cap.dns(RESOLVER, "example.com", at=0.0 + n).respond(["172.16.0.1"], delay_ms=5, ttl=64)
        cap.dns(RESOLVER, "twitter.com", at=0.5 + n).respond(["172.16.0.1"], delay_ms=5, ttl=64)
    cap.dns(RESOLVER, "end.invalid", at=30.0)
    run = replay(cap.write(tmp_path / "capture.pcapng"))
    assert run.findings == []
    assert run.status("twitter") == "inconclusive"


def test_private_answer_for_the_target_only_stays_a_redirect(tmp_path: Path) -> None:
    cap = Capture(seed=61, client=CLIENT)
    for n in range(2):
        cap.dns(RESOLVER, "example.com", at=0.0 + n).respond(["93.184.215.14"], delay_ms=5,
                                                             ttl=64)
        cap.dns(RESOLVER, "twitter.com", at=0.5 + n).respond(["172.16.0.1"], delay_ms=5, ttl=64)
    cap.dns(RESOLVER, "end.invalid", at=30.0)
    replay(cap.write(tmp_path / "capture.pcapng")).expect(technique="dns.redirect")


def test_nxdomain_for_the_control_name_too_is_not_a_block(tmp_path: Path) -> None:
    """A resolver that answers NXDOMAIN to every name, the control name too (a captive
    portal before login, a resolver denying this client): no name is singled out,
    inconclusive (dns.nxdomain before)."""
    cap = Capture(seed=62, client=CLIENT)
    for n in range(2):
        cap.dns(RESOLVER, "example.com", at=0.0 + n).respond([], delay_ms=5, ttl=64, flags=0x8183)
        cap.dns(RESOLVER, "twitter.com", at=0.5 + n).respond([], delay_ms=5, ttl=64, flags=0x8183)
    cap.dns(RESOLVER, "end.invalid", at=30.0)
    run = replay(cap.write(tmp_path / "capture.pcapng"))
    assert run.findings == []
    assert run.status("twitter") == "inconclusive"
