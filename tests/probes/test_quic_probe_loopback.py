"""The QUIC and ECH probes against real servers on loopback (no root, no namespaces):
the lab's aioquic server must answer the probe's Initials, and a TLS server the
ClientHello with and without GREASE ECH."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from fingerprint.lab import pki
from fingerprint.lab.services import quic as quic_service
from fingerprint.probes import quic as quic_probe
from fingerprint.probes import tls as tls_probe
from fingerprint.probes.runner import RateLimiter, Session
from fingerprint.protocols import quic, quic_initial

LOOPBACK = "127.0.0.1"


def _session(timeout: float = 2.0) -> Session:
    return Session(timeout=timeout, limiter=RateLimiter(None), sniffer=cast(Any, None),
                   pool=cast(Any, None))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    directory = tmp_path_factory.mktemp("pki")
    authority = pki.new_authority("fingerprint test CA", "fingerprint")
    chain, key = pki.issue(authority, ["platform.example"], [LOOPBACK])
    cert_path, key_path = Path(directory, "cert.pem"), Path(directory, "key.pem")
    cert_path.write_bytes(chain)
    key_path.write_bytes(key)
    return {"address": LOOPBACK, "platform": "p", "cert": str(cert_path), "key": str(key_path)}


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def quic_server(site: dict[str, str]) -> Iterator[int]:
    port = _free_udp_port()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    servers: list[Any] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        servers.extend(loop.run_until_complete(quic_service.start([site], port)))
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(10)
    try:
        yield port
    finally:
        for server in servers:
            loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


@pytest.mark.parametrize("version", [quic.QUIC_V1, quic.QUIC_V2])
@pytest.mark.parametrize("grease_ech", [False, True])
def test_aioquic_answers_the_probe_initial(quic_server: int, version: int, grease_ech: bool) -> None:
    attempt = quic_probe.quic_attempt(_session(), LOOPBACK, "platform.example", port=quic_server,
                                      version=version, grease_ech=grease_ech)
    assert attempt.outcome == "answered", attempt
    assert attempt.replies[0] in ("initial", "handshake")
    assert attempt.sent == 1  # answered before any resend


def test_unanswered_initial_is_resent_then_times_out() -> None:
    port = _free_udp_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind((LOOPBACK, port))
        attempt = quic_probe.quic_attempt(_session(0.6), LOOPBACK, "blocked.example", port=port)
        received = []
        silent.settimeout(0.2)
        try:
            while True:
                received.append(silent.recv(65535))
        except TimeoutError:
            pass
    assert attempt.outcome == "timeout" and attempt.sent == quic_probe.QUIC_SENDS
    connections = quic_initial.read_client_initials(received)
    (conn,) = connections.values()
    assert conn.packets == quic_probe.QUIC_SENDS and conn.dcid == attempt.dcid
    assert conn.client_hello is not None and conn.client_hello.sni == "blocked.example"
    assert conn.client_hello.alpn == ("h3",)


def test_residual_attempt_reuses_the_source_port(quic_server: int) -> None:
    first = quic_probe.quic_attempt(_session(), LOOPBACK, "platform.example", port=quic_server)
    again = quic_probe.residual_attempt(_session(), first, "control.example", delay=0.0)
    assert again.source_port == first.source_port and again.outcome == "answered"


@pytest.fixture(scope="module")
def tls_server(site: dict[str, str]) -> Iterator[int]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(site["cert"], site["key"])
    listener = socket.create_server((LOOPBACK, 0))
    listener.settimeout(0.2)
    stopping = threading.Event()

    def serve() -> None:
        while not stopping.is_set():
            try:
                conn, _peer = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    with context.wrap_socket(conn, server_side=True) as tls:
                        tls.recv(1)
                except (ssl.SSLError, OSError):
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stopping.set()
        thread.join(5)
        listener.close()


@pytest.mark.parametrize("grease_ech", [False, True])
def test_ech_attempt_gets_a_server_hello(tls_server: int, grease_ech: bool) -> None:
    attempt = tls_probe.ech_attempt(_session(), LOOPBACK, "platform.example", grease_ech=grease_ech,
                                    port=tls_server)
    assert attempt.connect.connected
    assert attempt.outcome == "server_hello", attempt


def test_ttl_attempt_follows_up_from_the_same_port(quic_server: int) -> None:
    trigger, follow = quic_probe.ttl_attempt(_session(), LOOPBACK, "blocked.example", "control.example", 3,
                                             delay=0.5, port=quic_server)
    assert trigger.ttl == 3 and trigger.outcome == "answered"  # loopback has no hop to expire at
    assert follow.source_port == trigger.source_port and follow.sni == "control.example"
    assert follow.outcome == "answered"


def _schedule(port: int) -> tuple[list[quic_probe.QuicAttempt], list[tls_probe.EchAttempt]]:
    """Everything `schedule_address` sent to `port` on loopback, QUIC and ECH apart."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        session = Session(timeout=0.5, limiter=RateLimiter(None), sniffer=cast(Any, None), pool=pool)
        futures: list[Any] = []
        helper = quic_probe.schedule_address(session, LOOPBACK, ["a.example", "b.example"], "control.example",
                                             futures, port=port)
        helper.result(timeout=30)
        results = [f.result(timeout=30) for f in futures if f is not helper]
    return ([r for r in results if isinstance(r, quic_probe.QuicAttempt)],
            [r for r in results if isinstance(r, tls_probe.EchAttempt)])


def _ech_pairs(*names: str) -> list[tuple[str | None, bool]]:
    return sorted((name, grease) for name in names for grease in (False, True))


def test_schedule_address_leaves_targets_out_when_nothing_answers() -> None:
    # Nothing listens on either protocol: the targets could only repeat the IP check.
    port = _free_udp_port()
    quic_results, ech_results = _schedule(port)
    assert [r.sni for r in quic_results] == ["control.example"]
    assert sorted((r.sni, r.grease_ech) for r in ech_results) == _ech_pairs("control.example")
    assert all(not r.connect.connected for r in ech_results)


def test_schedule_address_sends_quic_targets_after_the_answered_control(quic_server: int) -> None:
    # UDP answered, TCP refused on that port: QUIC targets go, ECH targets do not.
    quic_results, ech_results = _schedule(quic_server)
    assert [r.sni for r in quic_results] == ["control.example", "a.example", "b.example"]
    assert all(r.outcome == "answered" for r in quic_results)
    assert sorted((r.sni, r.grease_ech) for r in ech_results) == _ech_pairs("control.example")


def test_schedule_address_sends_quic_targets_when_only_tcp_works() -> None:
    # UDP/443 unanswered while TCP connects: the quic.drop pair (targets unanswered too).
    with socket.create_server((LOOPBACK, 0)) as listener:
        port = int(listener.getsockname()[1])
        quic_results, ech_results = _schedule(port)
    assert [r.sni for r in quic_results] == ["control.example", "a.example", "b.example"]
    assert all(r.outcome != "answered" for r in quic_results)
    assert sorted((r.sni, r.grease_ech) for r in ech_results) == _ech_pairs(
        "control.example", "a.example", "b.example")
    assert all(r.connect.connected for r in ech_results)
