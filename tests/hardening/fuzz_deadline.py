"""A per-input liveness deadline for fuzz loops (SIGALRM, main thread only).

It is not a speed assertion: the bound is far above what any input needs, and
only catches work that does not end (a pointer loop, a length that never
advances a parser).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class Hang(Exception):
    """An input was still being processed when its deadline passed."""


def _expired(signum: int, frame: FrameType | None) -> None:
    raise Hang()


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    previous = signal.signal(signal.SIGALRM, _expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
