"""Signals during long runs: recorded, checked at safe points, passed on to children."""

from __future__ import annotations

import os
import signal
import sys
import threading
from concurrent.futures import Future

import pytest

from fingerprint.interrupt import Interrupted, StopSignal, relay_interruption, run_child
from fingerprint.probes.runner import wait_all


def test_the_handler_only_records_and_the_first_signal_wins() -> None:
    stop = StopSignal()
    before = signal.getsignal(signal.SIGTERM)
    with stop.installed():
        stop.check()  # nothing yet
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)  # recorded, not raised as KeyboardInterrupt
        assert stop.wait(5.0)
    assert signal.getsignal(signal.SIGTERM) is before
    assert stop.signum == signal.SIGTERM
    with pytest.raises(Interrupted) as caught:
        stop.check()
    assert caught.value.exit_code == 143
    assert Interrupted(signal.SIGINT).exit_code == 130


def test_waiting_for_probes_ends_on_a_signal() -> None:
    stop = StopSignal()
    never: Future[None] = Future()  # a probe task stuck in a socket call
    threading.Timer(0.2, stop.set, args=(signal.SIGINT,)).start()
    with pytest.raises(Interrupted):
        wait_all([never], stop)


def test_a_child_gets_the_signal_and_its_output_is_kept() -> None:
    child = (
        "import signal, sys, time\n"
        "def bye(signum, frame):\n"
        "    print('kept 3 lines', flush=True)\n"
        "    print('fingerprint probe: interrupted by SIGTERM after 3 of 9 measurements; "
        "partial results in x.jsonl', file=sys.stderr, flush=True)\n"
        "    sys.exit(143)\n"
        "signal.signal(signal.SIGTERM, bye)\n"
        "print('started', flush=True)\n"
        "time.sleep(30)\n"
    )
    stop = StopSignal()
    threading.Timer(0.5, stop.set, args=(signal.SIGTERM,)).start()
    result = run_child([sys.executable, "-c", child], stop, grace=10)
    assert result.signum == signal.SIGTERM
    assert result.returncode == 143
    assert result.stdout == "started\nkept 3 lines\n"
    line = relay_interruption("run", signal.SIGTERM, result.stderr)
    assert line == ("run interrupted by SIGTERM: probe after 3 of 9 measurements; "
                    "partial results in x.jsonl")


def test_a_child_that_ignores_the_signal_is_killed_after_the_grace() -> None:
    child = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(30)\n"
    stop = StopSignal()
    # Late enough for the child to have set SIG_IGN (else it would just die of SIGTERM).
    threading.Timer(1.5, stop.set, args=(signal.SIGTERM,)).start()
    result = run_child([sys.executable, "-c", child], stop, grace=0.5)
    assert result.returncode == -signal.SIGKILL
    assert relay_interruption("run", signal.SIGTERM, result.stderr) == \
        "run interrupted by SIGTERM"


def test_a_child_left_alone_runs_to_its_end() -> None:
    result = run_child([sys.executable, "-c", "print('done')"], StopSignal())
    assert (result.returncode, result.stdout, result.signum) == (0, "done\n", None)
