"""`fingerprint probe` against the lab's scenarios (root): every technique a scenario
applies is found for the platforms it blocks, nothing for the others, and
`fingerprint analyze` on the probe's `--pcap-out` gives the same verdicts.

Platform subsets and a short timeout keep the whole module to about a minute.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from lab_helpers import running_lab

from fingerprint.lab import lab as lab_core
from fingerprint.lab.scenarios import load_scenario

pytestmark = [
    pytest.mark.needs_root,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root (network namespaces)"),
]

TIMEOUT = "2"

# scenario -> platforms probed (blocked ones and at least one the scenario leaves alone).
# One scenario per kind of censor (injector, IP blocking, interception, forged FIN and
# blockpage): every scenario, with every platform, is run through `lab run` by
# tests/lab/test_lab_scenarios.py; this module checks `probe` itself with --platform.
CASES = {
    "gfw": ["twitter", "google", "linkedin"],
    "uzbekistan-middlebox": ["vkontakte", "youtube"],
    "blackhole": ["telegram", "signal", "whatsapp", "google"],
    "kazakhstan": ["google", "linkedin"],
}


def verdicts(report: dict[str, Any]) -> dict[str, tuple[str, list[str]]]:
    return {p["platform"]: (p["status"], sorted(p["techniques"])) for p in report["platforms"]}


def run_json(args: list[str]) -> dict[str, Any]:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    report: dict[str, Any] = json.loads(proc.stdout)
    return report


@pytest.mark.parametrize("scenario", sorted(CASES))
def test_probe_finds_what_the_scenario_does(scenario: str, tmp_path: Path) -> None:
    platforms = CASES[scenario]
    pcap = tmp_path / "probe.pcapng"
    with running_lab(scenario) as info:
        catalog = tmp_path / "catalog.yaml"
        ca = tmp_path / "ca.pem"
        catalog.write_bytes(info.catalog_path.read_bytes())
        ca.write_bytes(info.ca_path.read_bytes())
        # QUIC/ECH probing has its own scenarios (tests/lab/test_lab_scenarios.py); off here,
        # where the subject is probe --platform on TCP censors, to keep the suite short.
        command = lab_core.probe_command(info, float(TIMEOUT), pcap, ["--no-quic"])
        for platform in platforms:
            command += ["--platform", platform]
        live = run_json(command)
    assert live["source"] == "probe"
    expected = load_scenario(scenario).expected(platforms)
    found = verdicts(live)
    assert sorted(found) == sorted(platforms)
    for platform in platforms:
        status, techniques = found[platform]
        if expected[platform]:
            assert status == "blocked", (platform, found[platform])
            missing = set(expected[platform]) - set(techniques)
            assert not missing, (platform, found[platform], expected[platform])
        else:
            assert (status, techniques) == ("accessible", []), (platform, found[platform])
    replay = run_json([sys.executable, "-m", "fingerprint", "analyze", "--catalog", str(catalog),
                       "--ca-file", str(ca), "--json", str(pcap)])
    assert verdicts(replay) == found


def test_localisation_places_the_censor_hop(tmp_path: Path) -> None:
    """SNI drop in the lab sits on the censor node, 3 hops from the client, behind r2."""
    with running_lab("uzbekistan-2021") as info:
        command = [*lab_core.probe_command(info, float(TIMEOUT), None, ["--no-quic"]),
                   "--platform", "twitter", "--max-hops", "6"]
        live = run_json(command)
    findings = [f for p in live["platforms"] for f in p["findings"]]
    assert [f["technique"] for f in findings] == ["tls.sni_drop"]
    location = findings[0]["location"]
    assert location["hop"] == 3
    assert location["router"] == "198.51.100.2"
