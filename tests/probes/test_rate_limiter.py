"""`RateLimiter` (`--rate`): every packet counted once, and no burst within a second.

A fake clock stands in for `time` so the waits are exact.
"""

from __future__ import annotations

import threading
import time

import pytest

from fingerprint.probes import runner
from fingerprint.probes.runner import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(runner, "time", fake)
    return fake


def _limiter(rate: float) -> RateLimiter:
    limiter = RateLimiter(rate)
    limiter.observing = True  # a sniffer reports what leaves
    return limiter


def _send(limiter: RateLimiter, flow: int, packets: int) -> None:
    for _ in range(packets):
        limiter.sent(flow)


def test_a_reservation_its_packets_were_seen_for_counts_once(clock: Clock) -> None:
    limiter = _limiter(100)
    limiter.take(50, flow=1000)
    _send(limiter, 1000, 50)
    clock.sleep(0.15)
    start = clock.now
    # 50 seen + 50 more fit in 100: counting the first step's reservation as well (until
    # PENDING_S) would have held this one back.
    limiter.take(50, flow=1001)
    assert clock.now == start


def test_a_step_that_ended_keeps_only_what_can_still_leave(clock: Clock) -> None:
    limiter = _limiter(100)
    limiter.take(60, flow=1000)  # a transfer's ACKs reserved, most never sent
    _send(limiter, 1000, 10)
    limiter.release(1000, 2)
    clock.sleep(0.15)
    start = clock.now
    limiter.take(88, flow=1001)  # 10 seen + 2 still reserved + 88 = 100
    assert clock.now == start
    limiter.take(1, flow=1002)
    assert clock.now > start, "the window is full"


def test_packets_of_other_connections_do_not_draw_a_reservation_down(clock: Clock) -> None:
    limiter = _limiter(100)
    limiter.take(50, flow=1000)
    _send(limiter, 2000, 40)  # an older connection's late ACKs
    clock.sleep(0.15)
    start = clock.now
    limiter.take(10, flow=1001)  # 40 seen + 50 reserved + 10 = 100
    assert clock.now == start
    limiter.take(1, flow=1002)
    assert clock.now > start


def test_no_second_leaves_in_one_burst(clock: Clock) -> None:
    limiter = _limiter(1000)  # at most 200 packets in any 100 ms
    limiter.take(150, flow=1000)
    _send(limiter, 1000, 150)
    start = clock.now
    limiter.take(100, flow=1001)
    assert start + RateLimiter.SHORT_S <= clock.now < start + 2 * RateLimiter.SHORT_S


def test_no_limit_counts_nothing(clock: Clock) -> None:
    limiter = RateLimiter(None)
    for port in range(1000, 1100):
        limiter.take(500, flow=port)
    assert clock.now == 100.0


def test_the_100_ms_window_counts_what_leaves_at_once(clock: Clock) -> None:
    limiter = _limiter(1000)
    limiter.take(150, flow=1000)
    _send(limiter, 1000, 150)
    start = clock.now
    # A TLS attempt reserves its transfer's ACKs too, but only its SYN, ACK and
    # ClientHello leave now: 150 + 4 fit in this 100 ms.
    limiter.take(31, flow=1001, at_once=4)
    assert clock.now == start


def test_steps_are_admitted_in_the_order_they_asked() -> None:
    """A large step that waits for room is not overtaken by small ones asking after it."""
    limiter = _limiter(100)
    limiter.take(90, flow=1000)
    _send(limiter, 1000, 90)
    order: list[str] = []

    def step(name: str, packets: int) -> None:
        limiter.take(packets)
        order.append(name)

    large = threading.Thread(target=step, args=("large", 50))
    large.start()
    time.sleep(0.05)
    small = threading.Thread(target=step, args=("small", 5))  # would fit at once
    small.start()
    large.join(5)
    small.join(5)
    assert order == ["large", "small"]


def test_a_step_no_sniffer_saw_counts_once(clock: Clock) -> None:
    """Control lookups run before the sniffer: reserved while they run, then recorded."""
    limiter = RateLimiter(1000)
    for _ in range(5):
        limiter.take(40)  # reserved for the window from its start
    clock.sleep(0.2)
    for _ in range(5):
        limiter.record(40)  # ...then counted from its end, instead
    limiter.observing = True
    clock.sleep(0.15)
    start = clock.now
    limiter.take(800, flow=1000)  # 200 recorded + 800 = 1000
    assert clock.now == start
