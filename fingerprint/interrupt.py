"""Ctrl-C and SIGTERM for long runs (`probe`, `lab run`): stop at a safe point.

A Python signal handler runs between two bytecodes of the main thread, so
raising from it could cut a JSONL line or a capture record in half.  Here the
handler only records the signal; the run checks `StopSignal` where it waits
(every wait is a short poll) and unwinds from there, so every measurement it
finished is written whole, the capture is flushed and closed, and the caller
prints one line and exits with 128 + the signal number (130 for SIGINT, 143
for SIGTERM), as shells do.

    stop = StopSignal()
    with stop.installed():
        ...
        stop.check()          # raises Interrupted once a signal arrived
        if stop.wait(2.0):    # a pause that ends early on a signal
            ...

Only the first signal counts: Ctrl-C in a terminal reaches `lab run` and the
probe it started (one process group), and `lab run` forwards it too, so a
second copy must not cut the clean-up short.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any

from fingerprint.errors import FingerprintError

__all__ = ["HANDLED_SIGNALS", "ChildResult", "Interrupted", "StopSignal", "interrupted_prefix",
           "relay_interruption", "run_child"]

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)
POLL_S = 0.1
"""How long a wait blocks before it looks at the stop signal again."""
CHILD_GRACE_S = 15.0
"""How long a child gets to finish its own clean-up after the signal was passed on."""


class Interrupted(FingerprintError):
    """interrupted by a signal"""

    def __init__(self, signum: int, message: str | None = None) -> None:
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(message or f"interrupted by {signal.Signals(signum).name}")


class StopSignal:
    """Records the first SIGINT/SIGTERM while `installed()`; the run polls it."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signum: int | None = None

    def set(self, signum: int) -> None:
        if self.signum is None:
            self.signum = signum
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True (early) when a signal arrived."""
        return self._event.wait(seconds)

    def check(self) -> None:
        """Raise `Interrupted` if a signal arrived."""
        if self.signum is not None:
            raise Interrupted(self.signum)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.set(signum)

    @contextmanager
    def installed(self) -> Iterator[StopSignal]:
        """Handle SIGINT and SIGTERM in this block (main thread only); restore after."""
        previous = {sig: signal.signal(sig, self._handle) for sig in HANDLED_SIGNALS}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


@dataclass
class ChildResult:
    returncode: int
    stdout: str
    stderr: str
    signum: int | None
    """The signal passed on to the child (None when it ran to its end undisturbed)."""


def run_child(args: Sequence[str], stop: StopSignal, grace: float = CHILD_GRACE_S,
              **popen: Any) -> ChildResult:
    """Run `args` to completion, capturing its output; pass a stop signal on to it.

    The child gets the same signal, then `grace` seconds to write what it has
    and exit; after that it is killed.  Output is never lost while waiting.
    """
    proc = subprocess.Popen(list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **popen)
    forwarded: int | None = None
    deadline: float | None = None
    while True:
        try:
            stdout, stderr = proc.communicate(timeout=POLL_S)
        except subprocess.TimeoutExpired:
            if stop.signum is not None and forwarded is None:
                forwarded = stop.signum
                proc.send_signal(forwarded)
                deadline = time.monotonic() + grace
            elif deadline is not None and time.monotonic() > deadline:
                proc.kill()
            continue
        return ChildResult(proc.returncode, stdout or "", stderr or "", forwarded)


def interrupted_prefix(command: str, signum: int) -> str:
    """How an interrupted run's line starts: "fingerprint probe: interrupted by SIGINT"."""
    return f"{command}: interrupted by {signal.Signals(signum).name}"


def relay_interruption(what: str, signum: int, child_stderr: str) -> str:
    """One line for a run whose child (`fingerprint probe`) was interrupted.

    The child's own line ("... after 14 of 30 measurements; partial results in
    F") is carried over, so the user still reads what was kept.
    """
    text = f"{what} interrupted by {signal.Signals(signum).name}"
    for line in reversed(child_stderr.strip().splitlines()):
        _, sep, tail = line.partition(": interrupted by ")
        if sep:
            name, _, rest = tail.partition(" ")
            return text + (f": probe {rest}" if name.startswith("SIG") and rest else "")
    return text
