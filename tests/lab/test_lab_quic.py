"""The lab's QUIC servers (aioquic on UDP 443): an Initial from the client namespace,
built by the probe, is answered with the server's Initial/Handshake packets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fingerprint.analysis.quic import observe_quic
from fingerprint.capture.reader import open_capture
from fingerprint.lab import lab as lab_core
from fingerprint.lab import topology
from fingerprint.lab._system import in_netns
from fingerprint.lab.scenarios import load_scenario
from fingerprint.protocols import quic

pytestmark = [
    pytest.mark.needs_root,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root (network namespaces)"),
]

_ATTEMPT = """
import json, sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast
from fingerprint.probes import quic as quic_probe
from fingerprint.probes.runner import RateLimiter, Session
session = Session(timeout=3.0, limiter=RateLimiter(None), sniffer=cast(Any, None),
                  pool=cast(Any, None))
out = []
for address, sni, version in json.loads(sys.argv[1]):
    a = quic_probe.quic_attempt(session, address, sni, version=version)
    out.append({"address": address, "sni": sni, "outcome": a.outcome, "replies": a.replies})
print(json.dumps(out))
"""


def test_lab_quic_server_answers_initials_from_the_client(tmp_path: Path) -> None:
    info = lab_core.up(load_scenario("clean"))
    try:
        platform = next(iter(info.catalog.platforms.values()))
        address = platform.addresses[0]
        cases = [(address, platform.domains[0], quic.QUIC_V1),
                 (address, info.catalog.control_domains[0], quic.QUIC_V2),
                 (topology.CONTROL_SERVER_ADDRESS, info.catalog.control_domains[0], quic.QUIC_V1)]
        pcap = tmp_path / "client.pcap"
        namespace = topology.namespace("client")
        interface = topology.LINKS[0].left_interface
        dump = subprocess.Popen(in_netns(namespace, ["tcpdump", "-Z", "root", "-i", interface, "-n", "-U",
                                                     "--immediate-mode", "-w", str(pcap), "udp port 443"]),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert dump.stderr is not None
        assert "listening" in dump.stderr.readline()
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
        done = subprocess.run(in_netns(namespace, [sys.executable, "-c", _ATTEMPT, json.dumps(cases)]),
                              capture_output=True, text=True, timeout=60, check=False, env=env)
        time.sleep(0.5)
        dump.send_signal(signal.SIGINT)
        dump.wait(timeout=10)
    finally:
        lab_core.down()
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert [r["outcome"] for r in results] == ["answered"] * 3, results
    # What the wire shows, read by the analysis' own observer.
    with open_capture(pcap) as reader:
        flows = observe_quic(list(reader))
    assert len(flows) == 3
    for flow in flows:
        (conn,) = flow.connections
        assert conn.complete and conn.sni in {c[1] for c in cases}
        assert conn.first_answer is not None
        assert conn.first_answer.kind in (quic.ServerDatagram.INITIAL, quic.ServerDatagram.HANDSHAKE)
        kinds = {d.kind for d in flow.server_datagrams}
        assert quic.ServerDatagram.INITIAL in kinds, kinds
