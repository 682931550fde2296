"""Localisation of the lab's TTL-copying DNS injector (root, the gfw scenario).

The gfw scenario's second injector (dns_injection, profile ttl-copy) sits on the
censor node, hop 3 from the client behind r2 (198.51.100.2), and answers with the
query's TTL as it saw it: its answers first reach the client at query TTL 5.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from lab_helpers import running_lab

from fingerprint.lab import lab as lab_core
from fingerprint.lab.scenarios import load_scenario

pytestmark = [
    pytest.mark.needs_root,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root (network namespaces)"),
]

CENSOR_HOP = 3
ROUTER_BEFORE_CENSOR = "198.51.100.2"


def test_ttl_copying_dns_injector_is_placed_at_the_censor_hop() -> None:
    assert any(rule.options.get("profile") == "ttl-copy"
               for rule in load_scenario("gfw").rules), "the scenario lost its TTL-copying injector"
    with running_lab("gfw") as info:
        command = [*lab_core.probe_command(info, 2.0, None, ["--no-quic"]), "--platform", "google",
                   "--max-hops", "8"]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    dns = [f for p in report["platforms"] for f in p["findings"]
           if f["technique"] == "dns.injection"]
    assert dns, report["platforms"]
    for finding in dns:
        location = finding["location"]
        assert location["ttl_copying"] is True, location
        assert location["hop"] == CENSOR_HOP, location
        assert location["router"] == ROUTER_BEFORE_CENSOR, location
