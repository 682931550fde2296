"""QUIC probe: client Initials with the target SNI and the control SNI to the same address.

Techniques it gives the analysis evidence for: quic.sni_drop (Initials with the
target SNI unanswered while the control SNI to the same address is answered),
quic.drop (no Initial answered whatever the SNI, while TCP/443 to the address
works: the TLS probe's evidence), residual blocking of the flow, and the hop of
the censor (TTL-limited Initials).

Method, after the GFW QUIC study (Zohaib et al., "Exposing and Circumventing
SNI-based QUIC Censorship of the Great Firewall of China", USENIX Security
2025) and OONI's `urlgetter` QUIC step (ooni/spec nettests/ts-017 and
df-008-netevents: a QUIC handshake is recorded like a TLS one):

* what is sent, per attempt: one UDP socket (the kernel's; a fresh source port
  unless `source_port` is given), connected to (address, 443); a client's
  first flight built by `protocols.quic_initial`: a TLS 1.3 ClientHello (SNI, ALPN h3,
  transport parameters; a GREASE ECH extension with `grease_ech`) in CRYPTO
  frames of one or more Initial packets of QUIC v1 (or v2), each datagram
  padded to 1200 bytes, DCID and SCID random 8 bytes.  While nothing comes
  back the same flight is sent again with new packet numbers, `QUIC_SENDS`
  times over the window (loss must not look like a drop);
* success is the server's first long-header packet (Initial, Handshake, Retry
  or Version Negotiation, read from the header without keys): the probe stops
  there and never completes the handshake (its key share is random), so the
  server only keeps state until its own idle timeout;
* a TTL-limited attempt (`ttl`) sends the flight once with that IP TTL, so the
  capture shows where a time-exceeded comes from and whether the censor's
  residual block starts before that hop (the gfw.report ttl-location method:
  an Initial with a blocked SNI at TTL k, then a control datagram at full TTL
  on the same 4-tuple);
* `residual_attempt` re-sends a control Initial from the source port a
  blocked attempt used, after `delay` seconds: unanswered there while a fresh
  port is answered means the flow is blocked beyond the trigger packet.

`--rate`: every datagram is charged to the session's limiter before it leaves.
Scope: the caller adds the address to the sniffer's scope, as for TCP probes;
the verdict comes from the sniffed packets (`fingerprint.analysis.quic`), the returned
`QuicAttempt` is for scheduling only.  Needs no privilege (a UDP socket).
"""

from __future__ import annotations

import os
import random
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from fingerprint.interrupt import POLL_S
from fingerprint.probes import tls as tls_probe
from fingerprint.probes.ip import set_ttl
from fingerprint.probes.runner import Session
from fingerprint.protocols import quic, quic_initial, tls

QUIC_PORT = 443
QUIC_SENDS = 3
"""Sends of the first flight while nothing came back."""
ALPN = ("h3",)
ECH_GREASE = (False, True)
"""The ECH attempts per name and address: without and with a GREASE ECH extension."""
ECH_CONTROLS = len(ECH_GREASE)
"""ECH control ClientHellos per address: connections to 443 the IP check counts too."""
_ANSWERS = frozenset({quic.ServerDatagram.INITIAL, quic.ServerDatagram.HANDSHAKE,
                      quic.ServerDatagram.RETRY, quic.ServerDatagram.VERSION_NEGOTIATION})


@dataclass
class QuicAttempt:
    address: str
    sni: str | None
    port: int
    version: int
    ttl: int | None
    grease_ech: bool = False
    source_port: int = 0
    dcid: bytes = b""
    outcome: str = "not_sent"
    """answered, timeout, error:<reason>, not_sent."""
    sent: int = 0
    """Datagrams sent."""
    replies: list[str] = field(default_factory=list)
    """Kinds of the datagrams received (`quic.ServerDatagram` values)."""
    seconds: float = 0.0
    """From the first send to the first answer (or to the end of the window)."""


def first_flight(sni: str | None, *, dcid: bytes, scid: bytes, version: int = quic.QUIC_V1,
                 grease_ech: bool = False, rng: random.Random | None = None,
                 first_packet_number: int = 0) -> list[bytes]:
    """The datagrams of a client's first flight for `sni` (see the module docstring)."""
    rng = rng or random.Random(os.urandom(8))
    hello = tls.build_client_hello(sni, rng, alpn=ALPN, tls12=False, grease_ech=grease_ech,
                                   quic_transport_parameters=quic.client_transport_parameters(scid),
                                   record=False)
    return quic_initial.build_initial_datagrams(hello, dcid=dcid, scid=scid, version=version,
                                                first_packet_number=first_packet_number)


def quic_attempt(session: Session, address: str, sni: str | None, *, port: int = QUIC_PORT,
                 version: int = quic.QUIC_V1, ttl: int | None = None, grease_ech: bool = False,
                 source_port: int | None = None, window: float | None = None,
                 on_sent: Callable[[bool], None] | None = None) -> QuicAttempt:
    """Send a first flight (again while unanswered, unless TTL-limited) and read the replies.

    `on_sent(sent)` is told once the first datagram left (True) or could not (False),
    so targets can wait for their controls.
    """
    attempt = QuicAttempt(address, sni, port, version, ttl, grease_ech)
    window = session.timeout if window is None else window
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    rng = random.Random(os.urandom(8))
    attempt.dcid = rng.randbytes(8)
    scid = rng.randbytes(8)
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        try:
            if source_port is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", source_port))  # noqa: S104
            set_ttl(sock, ttl if ttl is not None else session.full_ttl)
            sock.connect((address, port))
            attempt.source_port = sock.getsockname()[1]
        except OSError as exc:
            attempt.outcome = f"error:{exc.strerror or exc}"
            if on_sent is not None:
                on_sent(False)
            return attempt
        sends = 1 if ttl is not None else QUIC_SENDS
        number = 0
        flight = first_flight(sni, dcid=attempt.dcid, scid=scid, version=version,
                              grease_ech=grease_ech, rng=rng)
        if not _send(session, sock, flight, attempt):
            if on_sent is not None:
                on_sent(False)
            return attempt
        if on_sent is not None:
            on_sent(True)
        # The window opens once the flight left: time waiting in the --rate limiter is not
        # the server's.
        start = time.monotonic()
        deadline = start + window
        resends = [start + window * i / sends for i in range(1, sends)]
        attempt.outcome = "timeout"
        while True:
            now = time.monotonic()
            if now >= deadline:
                attempt.seconds = now - start
                break
            if resends and now >= resends[0]:
                resends.pop(0)
                number += len(flight)
                # A retransmission carries the same CRYPTO data in new packets (RFC 9002 6.2.4).
                flight = first_flight(sni, dcid=attempt.dcid, scid=scid, version=version,
                                      grease_ech=grease_ech, rng=rng, first_packet_number=number)
                _send(session, sock, flight, attempt)
            wake = min(deadline, resends[0]) if resends else deadline
            sock.settimeout(max(0.001, wake - now))
            try:
                data = sock.recv(65535)
            except TimeoutError:
                continue
            except OSError:
                continue  # ICMP errors surface here; the sniffer has them
            kind = quic.classify_datagram(data)
            attempt.replies.append(kind.value)
            if kind in _ANSWERS:
                attempt.outcome = "answered"
                attempt.seconds = time.monotonic() - start
                break
    return attempt


def _send(session: Session, sock: socket.socket, flight: list[bytes], attempt: QuicAttempt) -> bool:
    session.limiter.take(len(flight))
    try:
        for datagram in flight:
            sock.send(datagram)
            attempt.sent += 1
    except OSError as exc:
        attempt.outcome = f"error:{exc.strerror or exc}"
        return False
    return True


def residual_attempt(session: Session, blocked: QuicAttempt, control_sni: str, *,
                     delay: float, window: float | None = None) -> QuicAttempt:
    """A control-SNI Initial from the 4-tuple of an earlier (unanswered) attempt, `delay`
    seconds later: the residual-blocking check."""
    if session.stop.wait(delay):
        # Interrupted while waiting: nothing sent.
        return QuicAttempt(blocked.address, control_sni, blocked.port, blocked.version, None)
    return quic_attempt(session, blocked.address, control_sni, port=blocked.port,
                        version=blocked.version, source_port=blocked.source_port or None,
                        window=window)


def ttl_attempt(session: Session, address: str, sni: str, control_sni: str, ttl: int, *,
                delay: float = 1.0, window: float | None = None,
                port: int = QUIC_PORT) -> tuple[QuicAttempt, QuicAttempt]:
    """The gfw.report localisation step: the target Initial with IP TTL `ttl`, then after
    `delay` a control Initial at full TTL from the same source port.  When the target
    Initial reached the censor, the control is unanswered (residual block of the flow);
    when it expired before the censor, the control is answered."""
    trigger = quic_attempt(session, address, sni, ttl=ttl, port=port, window=min(delay, session.timeout))
    follow = residual_attempt(session, trigger, control_sni, delay=0.0, window=window)
    return trigger, follow


# --------------------------------------------------------------------------- sweep hook

def schedule_address(session: Session, address: str, targets: list[str], control_sni: str,
                     futures: list[Future[Any]], *, repeats: int = 1, ech: bool = True,
                     port: int = QUIC_PORT) -> Future[None]:
    """Submit the QUIC (and ECH) attempts for one address: controls first, each family's
    targets once its controls are done.  The returned future finishes once every target
    attempt was submitted (or left out).

    QUIC: the control SNI; then each target `repeats` times, once the control was
    answered (so a residual block a target triggers cannot hit the control's
    retransmissions).  When the control went unanswered, the targets still go if
    TCP/443 to the address works (an ECH control connected): that pair is the
    `quic.drop` evidence.  If neither UDP nor TCP/443 answered, the targets are left
    out: they could only repeat the IP check, one timeout later.

    ECH (TCP 443): the control name as outer SNI with and without GREASE ECH, then
    each target with and without it, `repeats` times, unless no control connected
    (as the sweep does for its TCP triggers: `sweep._address_probes`).

    As in the sweep's `_address_probes`, the attempts are appended to `futures` (the
    targets later, from a helper task) for the caller to wait on; the caller has put
    `address` in the sniffer's scope.
    """
    ech_left = [ECH_CONTROLS if ech else 0]
    ech_connected = [False]
    lock = threading.Lock()
    ech_gate = threading.Event()

    def ech_control_done(connected: bool) -> None:
        with lock:
            ech_left[0] -= 1
            ech_connected[0] = ech_connected[0] or connected
            if ech_left[0] <= 0:
                ech_gate.set()

    quic_control = session.submit(partial(quic_attempt, session, address, control_sni, port=port),
                                  address)
    futures.append(quic_control)
    ech_controls = [session.submit(partial(tls_probe.ech_attempt, session, address, control_sni,
                                           grease_ech=grease, port=port,
                                           on_trigger=ech_control_done), address)
                    for grease in (ECH_GREASE if ech else ())]
    futures.extend(ech_controls)

    def ech_known() -> bool:
        # The gate opens at each control's connect; a control that ended without
        # reaching it (a tool fault) must not hold the targets forever.
        return ech_gate.is_set() or all(future.done() for future in ech_controls)

    def quic_decision() -> bool | None:
        """Whether the QUIC targets go: None while that is not known yet."""
        if not quic_control.done():
            return None
        control = None if quic_control.cancelled() or quic_control.exception() \
            else quic_control.result()
        if control is not None and control.outcome == "answered":
            return True
        if not ech_known():
            return None
        return not ech or ech_connected[0]

    def submit_quic_targets() -> None:
        for name in targets:
            for _ in range(repeats):
                futures.append(session.submit(partial(quic_attempt, session, address, name,
                                                      port=port), address))

    def submit_ech_targets() -> None:
        for name in targets:
            # `repeats` times too: one failed connection is too few to blame ECH.
            for _ in range(repeats):
                for grease in ECH_GREASE:
                    futures.append(session.submit(partial(
                        tls_probe.ech_attempt, session, address, name, grease_ech=grease,
                        port=port), address))

    def targets_after_controls() -> None:
        quic_pending, ech_pending = True, ech
        while quic_pending or ech_pending:
            go = quic_decision() if quic_pending else None
            if go is not None:
                quic_pending = False
                if go:
                    submit_quic_targets()
            if ech_pending and ech_known():
                ech_pending = False
                if ech_connected[0]:
                    submit_ech_targets()
            if (quic_pending or ech_pending) and session.stop.wait(POLL_S):
                return  # interrupted: the controls were cancelled

    helper = session.pool.submit(targets_after_controls)
    futures.append(helper)
    return helper
