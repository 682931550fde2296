"""Lab helpers for the probe's root tests: a running lab, an independent packet
recorder on the client's link, and random loss at the censor.

The recorder is tcpdump in the client namespace, apart from the probe's own
sniffer, so a bug in the probe's capture cannot hide what the probe sent.  Loss
is an nftables `netdev` egress chain on both of the censor's interfaces
(`numgen random`): the kernel here has no tc netem, and an egress hook drops
what a netem qdisc on the same interfaces would, forwarded and injected packets
alike.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fingerprint.lab import lab as lab_core
from fingerprint.lab import topology
from fingerprint.lab._system import in_netns
from fingerprint.lab.scenarios import Scenario, load_scenario

BUSY_WAIT_S = 180.0
LOSS_TABLE = "fingerprint_test_loss"


@contextmanager
def running_lab(scenario: str | Scenario) -> Iterator[lab_core.LabInfo]:
    loaded = load_scenario(scenario) if isinstance(scenario, str) else scenario
    deadline = time.monotonic() + BUSY_WAIT_S
    while True:
        try:
            info = lab_core.up(loaded)
            break
        except lab_core.LabBusyError:
            # This instance's lab is in use by another test process: wait, never tear it down.
            if time.monotonic() > deadline:
                raise
            time.sleep(2)
    try:
        yield info
    finally:
        lab_core.down()


@contextmanager
def recording(path: Path, direction: str) -> Iterator[Path]:
    """tcpdump on the client's only link, packets going `direction` ("out" or "in")."""
    namespace = topology.namespace("client")
    interface = topology.LINKS[0].left_interface
    proc = subprocess.Popen(
        in_netns(namespace, ["tcpdump", "-i", interface, "-Q", direction, "-n", "-U",
                             "-s", "0", "-w", str(path)]),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        banner = proc.stderr.readline()  # "listening on ..." once the socket is bound
        assert "listening" in banner, banner
        yield path
    finally:
        time.sleep(0.3)  # late kernel packets (closing FINs, RSTs) belong to the run too
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def censor_loss(per_mille: int) -> Iterator[None]:
    """Drop `per_mille`/1000 of the packets leaving either censor interface, at random."""
    namespace = topology.namespace("censor")
    chains = []
    for link, end in ((topology.CENSOR_CLIENT_LINK, "right"),
                      (topology.CENSOR_SERVER_LINK, "left")):
        device = link.right_interface if end == "right" else link.left_interface
        chains.append(f'  chain out_{device.replace("-", "_")} {{ type filter hook egress '
                      f'device "{device}" priority 0; numgen random mod 1000 < {per_mille} '
                      "counter drop; }")
    ruleset = "table netdev " + LOSS_TABLE + " {\n" + "\n".join(chains) + "\n}\n"
    subprocess.run(in_netns(namespace, ["nft", "-f", "-"]), input=ruleset, text=True,
                   check=True, capture_output=True)
    try:
        yield
    finally:
        subprocess.run(in_netns(namespace, ["nft", "delete", "table", "netdev", LOSS_TABLE]),
                       check=False, capture_output=True)


def loss_counters() -> str:
    """The loss table's counters (for failure messages)."""
    proc = subprocess.run(in_netns(topology.namespace("censor"),
                                   ["nft", "list", "table", "netdev", LOSS_TABLE]),
                          capture_output=True, text=True, check=False)
    return proc.stdout
