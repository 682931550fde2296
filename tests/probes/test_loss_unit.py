"""Loss must not fake a technique: crafted captures of what loss does to a probe run.

* The server's response segment is lost and its FIN overtakes the retransmission:
  the FIN arrives first, with a sequence number above data still to come.  That
  is no http.fin; an injected FIN (the next expected sequence number, nothing
  below it later) still is.
* Of two target ClientHellos one goes unanswered (every retransmission lost)
  and one gets its ServerHello: a tie is no tls.sni_drop; two silent ones are.
"""

from __future__ import annotations

from pathlib import Path

from fingerprint.testing import replay
from fingerprint.testing.craft import Capture, TcpFlow, http_response
from fingerprint.testing.scenes import tls_attempt, write_catalog

SERVER = "203.0.113.10"
"""twitter's address in the catalog below."""
PAGE = http_response(200, "OK", [("Content-Type", "text/html")], b"<html>hello</html>")


def _write(tmp_path: Path, cap: Capture) -> Path:
    write_catalog(tmp_path)
    return cap.write(tmp_path / "capture.pcapng")


def _http_control(cap: Capture, at: float) -> None:
    flow = cap.tcp(SERVER, 80, at=at)
    flow.handshake()
    flow.http_get("example.com")
    flow.http_reply(PAGE)


def _server_fin(flow: TcpFlow, *, at_ms: float, seq: int) -> None:
    """A FIN from the server's own stack (its TTL, DF) with this sequence number."""
    flow.inject("FA", at_ms=at_ms, ttl=flow.server_ttl, df=True, seq=seq)


def test_fin_overtaking_lost_response_data_is_no_http_fin(tmp_path: Path) -> None:
    cap = Capture(seed=3)
    _http_control(cap, 0.0)
    flow = cap.tcp(SERVER, 80, at=1.0)
    flow.handshake()
    flow.http_get("twitter.com")
    first_byte = flow.server_seq
    _server_fin(flow, at_ms=45, seq=(first_byte + len(PAGE)) & 0xFFFFFFFF)  # data lost
    flow.http_reply(PAGE, at_ms=250, close=False)  # the retransmission
    result = replay(_write(tmp_path, cap), catalog=tmp_path / "catalog.yaml")
    assert [f.technique.value for f in result.findings] == []
    result.expect_accessible("twitter")


def test_injected_fin_before_the_response_is_http_fin(tmp_path: Path) -> None:
    cap = Capture(seed=4)
    _http_control(cap, 0.0)
    flow = cap.tcp(SERVER, 80, at=1.0)
    flow.handshake()
    flow.http_get("twitter.com")
    flow.inject("FA", at_ms=2, ttl=90, df=False)  # next expected sequence number
    result = replay(_write(tmp_path, cap), catalog=tmp_path / "catalog.yaml")
    result.expect(technique="http.fin", target="twitter.com")


def _tls_run(silent_targets: int) -> Capture:
    cap = Capture(seed=5 + silent_targets)
    tls_attempt(cap, SERVER, "example.com", 0.0, answered=True)
    tls_attempt(cap, SERVER, "example.com", 0.1, answered=True)
    for index in range(2):
        tls_attempt(cap, SERVER, "twitter.com", 1.0 + index / 10, answered=index >= silent_targets)
    return cap


def test_one_silent_clienthello_of_two_is_no_sni_drop(tmp_path: Path) -> None:
    result = replay(_write(tmp_path, _tls_run(1)), catalog=tmp_path / "catalog.yaml")
    assert [f.technique.value for f in result.findings] == []


def test_two_silent_clienthellos_are_sni_drop(tmp_path: Path) -> None:
    result = replay(_write(tmp_path, _tls_run(2)), catalog=tmp_path / "catalog.yaml")
    result.expect(technique="tls.sni_drop", target="twitter.com")


TRANSFER = bytes(65536)


def _transfer_attempt(cap: Capture, sni: str, at: float, *, stall_ms: float,
                      gap_ms: float = 0.1) -> None:
    """A handshake, then 64 kB: half at once, the rest after `stall_ms` (a lost segment's
    retransmission timeout), segments `gap_ms` apart."""
    flow = cap.tcp(SERVER, 443, at=at)
    flow.handshake()
    flow.client_hello(sni)
    end = flow.server_hello()
    end = flow.server_send(TRANSFER[:32768], at_ms=end + 1, gap_ms=gap_ms)
    flow.server_send(TRANSFER[32768:], at_ms=end + stall_ms, gap_ms=gap_ms, fin=True)


def test_transfers_stalled_by_loss_are_no_throttle_while_one_is_fast(tmp_path: Path) -> None:
    cap = Capture(seed=11)
    _transfer_attempt(cap, "example.com", 0.0, stall_ms=0)
    _transfer_attempt(cap, "example.com", 0.2, stall_ms=0)
    for index, stall in enumerate((600, 1400, 0)):  # two stalled by lost segments, one not
        _transfer_attempt(cap, "twitter.com", 1.0 + index / 10, stall_ms=stall)
    result = replay(_write(tmp_path, cap), catalog=tmp_path / "catalog.yaml")
    assert [f.technique.value for f in result.findings] == []


def test_every_transfer_slow_is_throttle(tmp_path: Path) -> None:
    cap = Capture(seed=12)
    _transfer_attempt(cap, "example.com", 0.0, stall_ms=0)
    _transfer_attempt(cap, "example.com", 0.2, stall_ms=0)
    for index in range(3):  # 1400-byte segments 80 ms apart: about 17 kB/s
        _transfer_attempt(cap, "twitter.com", 1.0 + index / 10, stall_ms=80, gap_ms=80)
    result = replay(_write(tmp_path, cap), catalog=tmp_path / "catalog.yaml")
    result.expect(technique="tls.sni_throttle", target="twitter.com")
