"""Lab instances (root): two labs, chosen with `fingerprint lab --instance NAME`,
run at the same time without interfering; a second `up` of a running instance
is refused with one clear line; `down` of one leaves the other alone.

The instance names derive from this session's FINGERPRINT_LAB_INSTANCE, so
parallel test sessions do not meet here either.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from fingerprint.lab.scenarios import load_scenario

BASE = os.environ.get("FINGERPRINT_LAB_INSTANCE", "")[:7]
FIRST, SECOND = BASE + "a", BASE + "b"


def lab(instance: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "fingerprint", "lab", "--instance", instance, *args]


def run(instance: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(lab(instance, *args), capture_output=True, text=True, timeout=120,
                          check=False)


def namespaces() -> set[str]:
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                             check=True).stdout
    return {line.split()[0] for line in listing.splitlines() if line.strip()}


def own(instance: str) -> set[str]:
    return {ns for ns in namespaces() if ns.startswith(f"fp{instance}-")}


@pytest.fixture
def two_instances() -> Iterator[None]:
    for instance in (FIRST, SECOND):
        run(instance, "down")
    try:
        yield
    finally:
        for instance in (FIRST, SECOND):
            run(instance, "down")
            # `down` keeps the instance's lock file (others may wait on it); these
            # instances are the test's own, so their state directories go too.
            if "FINGERPRINT_LAB_STATE" not in os.environ:
                shutil.rmtree(f"/run/fingerprint-lab-{instance}", ignore_errors=True)
    assert not own(FIRST) and not own(SECOND)


def verdict_errors(report: dict[str, Any]) -> dict[str, Any]:
    expected: dict[str, list[str]] = report["expected"]
    errors = {}
    for entry in report["platforms"]:
        techniques = expected[entry["platform"]]
        want = ("blocked", sorted(techniques)) if techniques else ("accessible", [])
        if (entry["status"], sorted(entry["techniques"])) != want:
            errors[entry["platform"]] = (entry["status"], entry["techniques"], want)
    return errors


@pytest.mark.needs_root
@pytest.mark.usefixtures("two_instances")
def test_two_lab_runs_at_the_same_time_do_not_interfere() -> None:
    """Both censors queue with NFQUEUE 0 and use the same addresses: only separate
    namespaces keep the gfw resets out of the uzbekistan run and vice versa."""
    scenarios = {FIRST: "gfw", SECOND: "uzbekistan-2021"}
    # --timeout 3: two labs and two probes share the cores.
    procs = {instance: subprocess.Popen(lab(instance, "run", scenario, "--json", "--timeout", "3",
                                                "--no-quic"),
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for instance, scenario in scenarios.items()}
    for instance, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=180)
        assert proc.returncode == 0, (instance, stderr)
        report = json.loads(stdout)
        assert report["scenario"] == scenarios[instance]
        assert report["expected"] == load_scenario(scenarios[instance]).expected(
            sorted(report["expected"]))
        assert verdict_errors(report) == {}, instance


@pytest.mark.needs_root
@pytest.mark.usefixtures("two_instances")
def test_second_up_of_an_instance_is_refused_and_down_touches_only_its_own() -> None:
    assert run(FIRST, "up", "clean").returncode == 0
    assert run(SECOND, "up", "uzbekistan-2021").returncode == 0
    assert len(own(FIRST)) == len(own(SECOND)) == 7

    again = run(FIRST, "up", "gfw")
    assert again.returncode != 0
    lines = again.stderr.strip().splitlines()
    assert len(lines) == 1, again.stderr
    assert "already running" in lines[0] and "clean" in lines[0]
    assert f"--instance {FIRST} down" in lines[0]
    assert len(own(FIRST)) == 7  # the refused up did not touch the running lab

    assert run(FIRST, "down").returncode == 0
    assert not own(FIRST) and len(own(SECOND)) == 7
    # The second lab still works: its resolver answers from its client namespace.
    dig = run(SECOND, "exec", "--", "dig", "+time=2", "+tries=1", "@203.0.113.53",
              "example.com", "A")
    assert dig.returncode == 0 and "status: NOERROR" in dig.stdout


def test_a_bad_instance_name_is_a_usage_error() -> None:
    proc = subprocess.run(lab("Bad/Name", "list"), capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert "--instance" in proc.stderr and "1-8 lowercase letters or digits" in proc.stderr
