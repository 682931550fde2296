"""A slow middlebox, no censorship: every packet of TCP ports 80 and 443, both
directions, goes through one userspace process with a short queue that lets
about `rate` packets per second through; what does not fit in the queue is
lost.

Issue 13 (case 5) measured the probe in an independent emulated network with
exactly this hop (a queue of 128 at about 500 packets/s): bursts of the
sweep's own connections overflowed the queue and open platforms came out
`tls.sni_drop`, `http.drop` or `ip.blackhole`.  The same shape is common in
the field: NFQUEUE-based userspace DPI (for example the deployments zapret
and GoodbyeDPI are built to evade, bol-van/zapret docs/readme.eng.md) and
small CPE boxes drop on queue overflow rather than slowing down.  Nothing is
blocked: every platform must come out `accessible` or `inconclusive`, never
`blocked`.

How: iptables FORWARD rules in the censor namespace send those packets to
NFQUEUE `QUEUE_NUMBER` (queue length `queue`, the kernel drops beyond it),
and `python -m fingerprint.lab.censors.slow_path --config FILE` accepts them
one at a time at `rate` per second.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from fingerprint.lab import topology
from fingerprint.lab.censors._nfqueue import run_queue
from fingerprint.lab.censors.base import Behaviour, CensorSetup

QUEUE_NUMBER = 1
"""The censor engine uses queue 0."""


class SlowPath(Behaviour):
    name = "slow_path"
    techniques = ()
    title = "slow userspace middlebox with a short queue on ports 80/443 (no censorship)"
    defaults: ClassVar[dict[str, Any]] = {"rate": 500, "queue": 128}

    def prepare(self, setup: CensorSetup) -> None:
        config_path = setup.state_dir / "slow-path.json"
        config_path.write_text(json.dumps({"rate": float(self.options["rate"]),
                                           "queue": int(self.options["queue"])}))
        commands: list[list[str]] = []
        for interface in (topology.CENSOR_CLIENT_LINK.right_interface,
                          topology.CENSOR_SERVER_LINK.left_interface):
            for direction in ("--dport", "--sport"):
                for port in ("80", "443"):
                    commands.append(["iptables", "-A", "FORWARD", "-i", interface, "-p", "tcp",
                                     direction, port, "-j", "NFQUEUE", "--queue-num",
                                     str(QUEUE_NUMBER)])
        setup.once("slow-path", commands)
        if not any(name == "slow-path" for name, _ in setup.processes):
            setup.processes.append(("slow-path", ["fingerprint.lab.censors.slow_path",
                                                  "--config", str(config_path)]))


class Pacer:
    """Lets one packet through every 1/rate seconds at most (time and sleep injectable)."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.interval = 1.0 / rate
        self._clock, self._sleep = clock, sleep
        self._next = 0.0

    def wait(self) -> None:
        now = self._clock()
        if self._next > now:
            self._sleep(self._next - now)
            now = self._next
        self._next = now + self.interval


def main() -> None:
    parser = argparse.ArgumentParser(description="fingerprint lab slow middlebox")
    parser.add_argument("--config", required=True)
    parser.add_argument("--ready-file")
    args = parser.parse_args()
    config = json.loads(Path(args.config).read_text())
    pacer = Pacer(float(config["rate"]))

    def handle(queued: Any) -> None:
        pacer.wait()
        queued.accept()

    run_queue(QUEUE_NUMBER, handle, int(config["queue"]), args.ready_file)


if __name__ == "__main__":
    main()
