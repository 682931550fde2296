"""A probe's answer window opens when its packet leaves, not while `--rate` holds
it back: a query or request that waited in the limiter longer than the timeout
must still read the answer (else `--rate` fakes dns.drop / http.drop)."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any, cast

import pytest

from fingerprint.probes import dns as dns_probe
from fingerprint.probes.runner import Session

pytestmark = [
    pytest.mark.needs_root,
    pytest.mark.skipif(os.geteuid() != 0, reason="binds UDP port 53 on a loopback address"),
]

RESOLVER = "127.0.0.77"
WINDOW = 0.4


class SlowLimiter:
    """Holds every packet back for longer than the probe's window."""

    rate = None  # the session then needs no sniffer feedback

    def __init__(self, hold: float) -> None:
        self.hold = hold
        self.calls = 0

    def take(self, packets: int = 1) -> None:
        self.calls += 1
        time.sleep(self.hold)


@pytest.fixture
def echo_resolver() -> Iterator[None]:
    """Answers every query on 127.0.0.77:53 with the query itself, flagged as a response."""
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind((RESOLVER, 53))
    server.settimeout(0.1)
    stopping = threading.Event()

    def serve() -> None:
        while not stopping.is_set():
            try:
                data, peer = server.recvfrom(512)
            except TimeoutError:
                continue
            server.sendto(data[:2] + bytes([data[2] | 0x80]) + data[3:], peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stopping.set()
        thread.join()
        server.close()


def test_query_held_back_by_the_rate_limit_still_gets_its_answer(echo_resolver: None) -> None:
    limiter = SlowLimiter(hold=WINDOW * 2)
    session = Session(timeout=WINDOW, limiter=cast(Any, limiter), sniffer=cast(Any, None),
                      pool=cast(Any, None))
    attempt = dns_probe.query_attempt(session, RESOLVER, "twitter.com")
    assert limiter.calls == 1, "answered at the first send: no resend"
    assert len(attempt.responses) == 1 and attempt.error is None
