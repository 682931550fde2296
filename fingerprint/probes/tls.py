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

ECH (`ech_attempt`): Python's ssl cannot add an encrypted_client_hello
extension, so this ClientHello is built by `protocols.tls.build_client_hello`
and written to the kernel's TCP connection as bytes: TLS 1.3 and 1.2, ALPN h2
and http/1.1, a random X25519 key share, and with `grease_ech` a GREASE ECH
extension (RFC 9849 section 6.2: random config id, HKDF-SHA256/AES-128-GCM,
random 32-byte enc and payload).  The same ClientHello with and without the
extension, with the target and with the control name as outer SNI, tells "blocks
ECH" (the extension draws the drop or reset whatever the outer SNI) from
"blocks the outer SNI" (the name does, with or without the extension).  The
attempt ends at the server's ServerHello or alert (the handshake is never
completed: the key share is random).

The connection is the kernel's (no crafted TCP, so no firewall rule); needs
no privilege itself; the shared sniffer records the packets.
"""

from __future__ import annotations

import os
import random
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

from fingerprint.probes.ip import (
    CLOSE_PACKETS,
    ConnectResult,
    abort,
    open_trigger_connection,
    release,
)
from fingerprint.probes.runner import Session
from fingerprint.protocols.tls import ALERT_NAMES, build_client_hello, parse_server_flight

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
        release(session, connect.local_port)
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



ECH_PACKETS = 1 + CLOSE_PACKETS
"""The client's packets from the ClientHello on: the ClientHello (one segment) and the close."""
_ECH_READ_LIMIT = 16384


@dataclass
class EchAttempt:
    address: str
    sni: str | None
    """The (outer) server name."""
    grease_ech: bool
    trigger_ttl: int | None
    connect: ConnectResult
    outcome: str = "not_sent"
    """server_hello, alert:<name>, reset, eof, timeout, not_tls, error:..., not_sent."""


def ech_attempt(session: Session, address: str, sni: str | None, *, grease_ech: bool,
                port: int = 443, trigger_ttl: int | None = None, window: float | None = None,
                on_trigger: Callable[[bool], None] | None = None) -> EchAttempt:
    """Connect, send a built ClientHello (with a GREASE ECH extension if `grease_ech`),
    read until the server's ServerHello or alert."""
    window = session.timeout if window is None else window
    sock, connect = open_trigger_connection(session, address, port, trigger_ttl=trigger_ttl,
                                            trigger_packets=ECH_PACKETS, on_trigger=on_trigger)
    attempt = EchAttempt(address, sni, grease_ech, trigger_ttl, connect)
    if sock is None:
        return attempt
    hello = build_client_hello(sni, random.Random(os.urandom(8)), grease_ech=grease_ech)
    try:
        deadline = time.monotonic() + window
        sock.sendall(hello)
        attempt.outcome = _read_server_hello(sock, deadline)
    except OSError as exc:
        attempt.outcome = f"error:{exc.strerror or exc}"
    finally:
        if attempt.outcome == "timeout":
            abort(sock)
        else:
            sock.close()
        release(session, connect.local_port)
    return attempt


def _read_server_hello(sock: socket.socket, deadline: float) -> str:
    data = b""
    while len(data) < _ECH_READ_LIMIT:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return "timeout"
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(READ_CHUNK)
        except TimeoutError:
            return "timeout"
        except ConnectionResetError:
            return "reset"
        if not chunk:
            return "eof"
        data += chunk
        flight = parse_server_flight(data)
        if not flight.is_tls:
            return "not_tls"
        if flight.server_hello:
            return "server_hello"
        if flight.alert is not None:
            return f"alert:{ALERT_NAMES.get(flight.alert[1], flight.alert[1])}"
    return "not_tls"
