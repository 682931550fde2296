"""Lab churn (root): 50 `lab up` / `lab down` cycles through the real command,
some of them SIGKILLed in the middle of building (and some `lab run`s killed
while the probe runs), each followed by a `lab down` or by the next `up`
cleaning the stale state.  Afterwards no namespace, veth, firewall rule,
NFQUEUE user or process of the lab may remain.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fingerprint.lab import state, topology

pytestmark = pytest.mark.needs_root

CYCLES = 50
SCENARIOS = ("uzbekistan-2021", "gfw", "blackhole", "turkmenistan", "kazakhstan", "russia",
             "iran", "dns-tampering", "clean")
"""Real scenarios, rotated: every censor kind (NFQUEUE engine, iptables, tc, MITM proxy)."""

# Every 4th cycle is killed; the kill point rotates through the stages of a build.
KILL_POINTS = ("state", "namespaces", "services", "engine", "run-probe")
"""state: state.json written; namespaces: the server namespace exists; services:
a service log exists; engine: the censor engine's log exists (scenarios with
one); run-probe: a `lab run` whose lab is complete, killed while probing."""


def fingerprint_lab(*args: str) -> list[str]:
    return [sys.executable, "-m", "fingerprint", "lab", *args]


def run_ok(*args: str) -> str:
    proc = subprocess.run(fingerprint_lab(*args), capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 0, (args, proc.stderr)
    return proc.stdout


def reached(point: str) -> bool:
    directory = state.state_dir()
    if point == "state":
        return (directory / "state.json").exists()
    if point == "namespaces":
        return topology.namespace("server") in topology.existing_namespaces()
    if point == "services":
        return (directory / "resolver.log").exists()
    if point == "engine":
        return (directory / "censor-engine.log").exists()
    recorded = state.read()
    return recorded is not None and recorded.complete


def kill_at(point: str, scenario: str) -> tuple[int, bool]:
    """Start an up (or a run) of `scenario`, SIGKILL it at `point`; (pid, killed while
    still building or probing)."""
    args = (("run", scenario, "--timeout", "1", "--no-quic") if point == "run-probe"
            else ("up", scenario))
    proc = subprocess.Popen(fingerprint_lab(*args), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not reached(point) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    if point == "run-probe":
        time.sleep(0.3)  # the probe is running in the client namespace by now
    busy = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return proc.pid, busy


def lab_pids() -> set[int]:
    recorded = state.read()
    return set(recorded.pids) if recorded else set()


def processes_naming(directory: Path) -> list[str]:
    needle = (str(directory) + "/").encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmdline:
            found.append(entry.name + ": " + cmdline.replace(b"\0", b" ").decode(errors="replace"))
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return not stat.rsplit(") ", 1)[1].startswith("Z")


def host_rules() -> set[str]:
    rules = set()
    for command in (["iptables-save"], ["nft", "list", "ruleset"]):
        proc = subprocess.run(command, capture_output=True, text=True, check=False)
        rules |= {line.strip() for line in proc.stdout.splitlines()
                  if line.strip() and not line.startswith("#")}
    return rules


def test_fifty_up_down_cycles_with_sigkills_leave_nothing_behind() -> None:
    run_ok("down")
    rules_before = host_rules()
    seen_pids: set[int] = set()
    kills: list[tuple[str, str, bool]] = []  # scenario, point, killed while busy
    full_ups = 0
    for cycle in range(CYCLES):
        scenario = SCENARIOS[cycle % len(SCENARIOS)]
        if cycle % 4 == 0:
            point = KILL_POINTS[(cycle // 4) % len(KILL_POINTS)]
            if point == "engine" and scenario in ("clean", "blackhole", "kazakhstan"):
                scenario = "gfw"  # a scenario whose censor runs the NFQUEUE engine
            pid, busy = kill_at(point, scenario)
            seen_pids |= {pid} | lab_pids()
            kills.append((scenario, point, busy))
            if cycle % 8 == 0:
                continue  # the next cycle's `up` must clean the stale state itself
        else:
            run_ok("up", scenario)
            recorded = state.read()
            assert recorded is not None and recorded.complete and recorded.scenario == scenario
            assert sorted(topology.existing_namespaces()) == sorted(topology.all_namespaces())
            assert recorded.pids and all(alive(p) for p in recorded.pids), scenario
            seen_pids |= set(recorded.pids)
            full_ups += 1
        assert "lab down:" in run_ok("down")
        assert topology.existing_namespaces() == []
    run_ok("down")  # the last cycle may have been a kill left for the next command

    assert full_ups + len(kills) == CYCLES
    assert all(busy for _s, _p, busy in kills), kills
    assert topology.existing_namespaces() == []
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True)
    veths = {name for link in topology.LINKS for name in (link.left_interface,
                                                          link.right_interface)}
    assert not [line for line in links.stdout.splitlines()
                if line.split(": ")[1].split("@")[0] in veths]
    assert [p for p in seen_pids if alive(p)] == []
    # Services, the censor engine (the NFQUEUE user) and a killed run's probe all name
    # files of the state directory on their command lines.
    assert processes_naming(state.state_dir()) == []
    new_rules = host_rules() - rules_before
    assert not [r for r in new_rules if "NFQUEUE" in r or "queue" in r
                or any(net in r for net in ("192.0.2.", "198.51.100.", "203.0.113."))]
    assert [e.name for e in state.state_dir().iterdir()] == ["lock"]
    print(f"churn: {CYCLES} cycles, {full_ups} full ups, {len(kills)} SIGKILLs "
          f"({', '.join(f'{s}@{p}' for s, p, _m in kills)})")


def test_down_kills_an_unrecorded_lab_process_outside_the_lab_namespaces() -> None:
    """What a SIGKILLed `up` can leave: a service it started but never recorded, whose
    namespace a teardown already deleted (so `ip netns pids` cannot find it)."""
    run_ok("down")
    directory = state.state_dir()
    marker = directory / "orphan.ready"
    orphan = subprocess.Popen(["unshare", "--net", sys.executable, "-c",
                               "import time; time.sleep(120)", str(marker)])
    try:
        deadline = time.monotonic() + 10
        while not processes_naming(directory) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert processes_naming(directory), "the stand-in service did not start"
        assert "1 process(es)" in run_ok("down")
        assert orphan.wait(timeout=10) == -signal.SIGTERM
        assert processes_naming(directory) == []
    finally:
        if orphan.poll() is None:
            orphan.kill()
            orphan.wait()
