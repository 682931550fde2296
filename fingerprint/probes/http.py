"""HTTP probe: a plain GET with the target Host and with the control Host, same address, port 80.

Techniques it gives the analysis evidence for: http.blockpage (a blockpage or
a redirect to one, matched by the HTTP signatures), http.reset, http.fin,
http.drop.

Method: OONI's HTTP step (ooni/spec nettests/ts-017-web-connectivity.md;
Host-header filtering as in ts-019-http-host.md) and Censored Planet's
Hyperquack echo/HTTP probes (control request to the same server first).
TTL-limited repeats (fresh connection, request with IP TTL k) feed
`locate.py` as for TLS (CenTrace, CoNEXT 2022).

Needs no privilege itself (kernel sockets); the shared sniffer records the packets.
"""

from __future__ import annotations

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

MAX_RESPONSE = 65536
REQUEST_PACKETS = 2 + CLOSE_PACKETS
"""The client's packets from the request on: the request, an ACK of the answer, closing."""


@dataclass
class HttpAttempt:
    address: str
    host: str
    trigger_ttl: int | None
    connect: ConnectResult
    outcome: str = "not_sent"
    """response, reset, timeout, eof_empty, not_sent (connect failed)."""
    received: int = 0


USER_AGENT = "fingerprint-probe"
"""Also how `analyze` recognises a capture the probe wrote (`notes.py`)."""


def http_request(host: str) -> bytes:
    return (f"GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {USER_AGENT}\r\n"
            "Accept: */*\r\nConnection: close\r\n\r\n").encode("ascii")


def http_attempt(session: Session, address: str, host: str, *, port: int = 80,
                 trigger_ttl: int | None = None, window: float | None = None,
                 on_trigger: Callable[[bool], None] | None = None) -> HttpAttempt:
    window = session.timeout if window is None else window
    sock, connect = open_trigger_connection(session, address, port, trigger_ttl=trigger_ttl,
                                            trigger_packets=REQUEST_PACKETS, on_trigger=on_trigger)
    attempt = HttpAttempt(address, host, trigger_ttl, connect)
    if sock is None:
        return attempt
    try:
        # The window starts once the request may leave (not while --rate holds it back).
        deadline = time.monotonic() + window
        sock.sendall(http_request(host))
        while attempt.received < MAX_RESPONSE:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                attempt.outcome = "timeout" if not attempt.received else "response"
                break
            sock.settimeout(remaining)
            chunk = sock.recv(MAX_RESPONSE)
            if not chunk:
                attempt.outcome = "response" if attempt.received else "eof_empty"
                break
            attempt.received += len(chunk)
        else:
            attempt.outcome = "response"
    except TimeoutError:
        attempt.outcome = "timeout" if not attempt.received else "response"
    except ConnectionResetError:
        attempt.outcome = "reset"
    except OSError as exc:
        attempt.outcome = f"error:{exc.strerror or exc}"
    finally:
        if attempt.outcome == "timeout":
            abort(sock)
        else:
            sock.close()
        release(session, connect.local_port)
    return attempt
