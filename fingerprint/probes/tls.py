"""TLS probe: a ClientHello with the target SNI, the control SNI and no SNI, same address.

Techniques it gives the analysis evidence for: tls.sni_reset, tls.sni_drop,
tls.sni_fin, tls.sni_throttle, tls.mitm; and, sent to an address a resolver
returned, the certificate check behind dns.redirect.

Method: OONI's `sni_blocking` / `tlsmiddlebox` idea (ooni/spec
nettests/ts-024-sni-blocking.md, ts-037-tlsmiddlebox.md): the TCP handshake,
then a ClientHello whose server name is the target, compared with the control
name and with no SNI on the same address.  Only TLS 1.2 is offered so the
server's certificate travels in clear and the analysis can check it
(`--ca-file`); after the handshake a GET of `THROUGHPUT_PATH` measures the
transfer for throttling (Xue et al., IMC 2021).  TTL-limited repeats (a fresh
connection at full TTL, then the ClientHello with IP TTL k) let `locate.py`
find the censor's hop (CenTrace, CoNEXT 2022; OONI tlsmiddlebox).

The connection is the kernel's (no crafted TCP, so no firewall rule); needs
no privilege itself; the shared sniffer records the packets.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

from fingerprint.probes.ip import CLOSE_PACKETS, ConnectResult, abort, open_trigger_connection
from fingerprint.probes.runner import Session

THROUGHPUT_PATH = "/bytes/65536"
"""Requested after the handshake: enough bytes to compare transfer rates with the control."""
READ_CHUNK = 65536
HANDSHAKE_PACKETS = 2 + CLOSE_PACKETS
"""The client's packets from the ClientHello on: ClientHello, its second flight, closing."""
TRANSFER_PACKETS = 1 + 65536 // (2 * 1448)
"""The request and the ACKs of the transfer (one per two full segments, delayed ACKs)."""


@dataclass
class TlsAttempt:
    address: str
    sni: str | None
    trigger_ttl: int | None
    connect: ConnectResult
    outcome: str = "not_sent"
    """handshake_ok, reset, timeout, tls_error:..., eof, not_sent (connect failed)."""
    received: int = 0


def _context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # The probe records; the analysis judges the certificate (TrustStore, --ca-file).
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    return context


def tls_attempt(session: Session, address: str, sni: str | None, *, port: int = 443,
                trigger_ttl: int | None = None, window: float | None = None,
                download: bool = True,
                on_trigger: Callable[[bool], None] | None = None) -> TlsAttempt:
    """Connect, send the ClientHello (with IP TTL `trigger_ttl` if given), read what comes back.

    `on_trigger(connected)` is called once the ClientHello is about to leave
    (True) or the connection failed (False), so targets can wait for their controls.
    """
    window = session.timeout if window is None else window
    transfer = download and trigger_ttl is None
    # The transfer's packets are reserved with the handshake's: a wait under --rate between
    # the handshake and the request would count as transfer time and fake a slow transfer.
    sock, connect = open_trigger_connection(
        session, address, port, trigger_ttl=trigger_ttl,
        trigger_packets=HANDSHAKE_PACKETS + (TRANSFER_PACKETS if transfer else 0),
        on_trigger=on_trigger)
    attempt = TlsAttempt(address, sni, trigger_ttl, connect)
    if sock is None:
        return attempt
    try:
        # Time spent waiting in the --rate limiter is not the server's: the window
        # starts once the ClientHello may leave.
        deadline = time.monotonic() + window
        sock.settimeout(window)
        tls = _context().wrap_socket(sock, server_hostname=sni, do_handshake_on_connect=False)
        attempt.outcome = _handshake(tls)
        if attempt.outcome == "handshake_ok" and transfer:
            attempt.outcome, attempt.received = _transfer(tls, sni or address, deadline)
        if attempt.outcome in ("timeout", "transfer_timeout"):
            abort(tls)
        else:
            tls.close()
    finally:
        sock.close()
    return attempt


def _handshake(tls: ssl.SSLSocket) -> str:
    try:
        tls.do_handshake()
    except TimeoutError:
        return "timeout"
    except ConnectionResetError:
        return "reset"
    except ssl.SSLEOFError:
        return "eof"
    except ssl.SSLError as exc:
        return f"tls_error:{exc.reason or exc}"
    except OSError as exc:
        return f"error:{exc.strerror or exc}"
    return "handshake_ok"


def _transfer(tls: ssl.SSLSocket, host: str, deadline: float) -> tuple[str, int]:
    request = (f"GET {THROUGHPUT_PATH} HTTP/1.1\r\nHost: {host}\r\n"
               "User-Agent: fingerprint-probe\r\nConnection: close\r\n\r\n").encode()
    received = 0
    try:
        tls.sendall(request)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "transfer_timeout", received
            tls.settimeout(remaining)
            chunk = tls.recv(READ_CHUNK)
            if not chunk:
                return "handshake_ok", received
            received += len(chunk)
    except TimeoutError:
        return "transfer_timeout", received
    except (ssl.SSLError, OSError):
        return "transfer_error", received

