"""IP probe: TCP connection attempts (SYN) to platform and control addresses.

Techniques it gives the analysis evidence for: ip.blackhole (SYNs
unanswered), ip.reject (ICMP destination unreachable, with its code),
ip.reset (RST to the SYN), compared with control addresses on the same port.

Method: OONI's TCP connect step (ooni/spec nettests/ts-017-web-connectivity.md,
df-005 tcp_connect; failures as df-007 generic_timeout_error /
connection_refused / host_unreachable).  The SYN comes from the kernel
(`connect()`), which also retransmits it against loss; with a TTL below the
path length the SYN expires on the way, which `locate.py` reads to place a
blackhole (CenTrace, CoNEXT 2022).  This module also holds the connection
helper the TLS and HTTP probes share.

Needs no privilege itself (kernel sockets); the shared sniffer does.
"""

from __future__ import annotations

import errno
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

from fingerprint.probes.runner import Session

CONNECT_PACKETS = 2
"""Sent at once by a connection attempt: the SYN and the handshake's ACK (`RateLimiter`)."""
CLOSE_PACKETS = 2
"""Sent by closing a connection: FIN (or RST) and the ACK of the server's FIN."""


@dataclass
class ConnectResult:
    address: str
    port: int
    connected: bool
    error: str | None = None
    seconds: float = 0.0
    local_port: int = 0
    """The client's source port (0 if none was bound): names the flow in the capture."""


def _family(address: str) -> int:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def set_ttl(sock: socket.socket, ttl: int) -> None:
    if sock.family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ttl)
    else:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)


def abort(sock: socket.socket) -> None:
    """Close with an RST now: a FIN would wait behind the unacknowledged trigger, so the
    capture would not show that the client gave up."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def open_connection(session: Session, address: str, port: int, *, syn_ttl: int | None = None,
                    timeout: float | None = None, packets: int = CONNECT_PACKETS
                    ) -> tuple[socket.socket | None, ConnectResult]:
    """A connected TCP socket (blocking, with `timeout`) or None and why not.

    `packets` is what the send-rate limit charges for it (more when the caller
    closes the connection right away).
    """
    timeout = session.timeout if timeout is None else timeout
    sock = socket.socket(_family(address), socket.SOCK_STREAM)
    # No lingering: a closed probe socket must not keep retransmitting into the next probe.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    set_ttl(sock, syn_ttl if syn_ttl is not None else session.full_ttl)
    sock.settimeout(timeout)
    # The local port is chosen now, so the rate limit can tell this connection's packets
    # from others' and count each once (`RateLimiter.take(flow=)`).
    sock.bind(("", 0))  # any local address (connect picks it), only the port fixed
    flow = _local_port(sock)
    # At once: the SYN, the handshake's ACK and the trigger's first segments; the rest
    # (ACKs of the answer or a transfer, the close) follows the server, round trips later.
    session.limiter.take(packets, flow=flow or None, at_once=CONNECT_PACKETS + 2)
    start = time.monotonic()
    try:
        sock.connect((address, port))
    except OSError as exc:
        local_port = _local_port(sock)
        sock.close()
        release(session, local_port, 0)  # nothing more leaves a connection that never opened
        reason = "timeout" if isinstance(exc, TimeoutError) else errno.errorcode.get(
            exc.errno or 0, str(exc))
        return None, ConnectResult(address, port, False, reason, time.monotonic() - start,
                                   local_port)
    return sock, ConnectResult(address, port, True, None, time.monotonic() - start,
                               _local_port(sock))


def _local_port(sock: socket.socket) -> int:
    try:
        return int(sock.getsockname()[1])
    except OSError:
        return 0


def open_trigger_connection(session: Session, address: str, port: int, *,
                            trigger_ttl: int | None, trigger_packets: int,
                            on_trigger: Callable[[bool], None] | None
                            ) -> tuple[socket.socket | None, ConnectResult]:
    """A connection ready for its trigger (ClientHello, HTTP request).

    Its packets are reserved under --rate with the connection's; connected at full
    TTL, then the trigger's IP TTL is set (TTL-limited repeats).  `on_trigger(connected)` is told once the
    trigger may leave (True) or that the connection failed (False), so targets can
    wait for their controls.
    """
    # The trigger's packets are reserved with the connection's, before the SYN: a wait
    # under --rate between the handshake and the trigger would leave the connection idle,
    # and a server that gives up on an idle client (a TLS handshake timeout) closes it
    # with a FIN the analysis would rightly read as an answer to the trigger.
    sock, connect = open_connection(session, address, port,
                                    packets=CONNECT_PACKETS + trigger_packets)
    if sock is None:
        if on_trigger is not None:
            on_trigger(False)
        return None, connect
    if trigger_ttl is not None:
        set_ttl(sock, trigger_ttl)
    if on_trigger is not None:
        on_trigger(True)
    return sock, connect


def connect_attempt(session: Session, address: str, port: int,
                    syn_ttl: int | None = None, timeout: float | None = None) -> ConnectResult:
    """Handshake only, then close (the IP-blocking check)."""
    sock, result = open_connection(session, address, port, syn_ttl=syn_ttl, timeout=timeout,
                                   packets=CONNECT_PACKETS + CLOSE_PACKETS)
    if sock is not None:
        sock.close()
        release(session, result.local_port)
    return result


def release(session: Session, local_port: int, leftover: int = CLOSE_PACKETS) -> None:
    """A connection's step is over: of its reserved packets at most `leftover` may still
    leave (the close's: a FIN and the ACK of the server's FIN, or one RST)."""
    if local_port:
        session.limiter.release(local_port, leftover)
