"""Interrupted runs in the lab (root): SIGINT and SIGTERM during `fingerprint probe` and
`fingerprint lab run`, sent once the first measurement is on disk.

Each case checks what issue 7 asks: every JSONL line is whole, valid and counted
in the one line the command ends with; the evidence capture replays through
`fingerprint analyze`; nothing of the run is left (the probe process, firewall
rules in the client namespace, and for `lab run` the lab's namespaces and
processes); the exit code is 128 + the signal.  A complete run checks the
streaming outputs: --jsonl per platform equal to the report, the capture's
evidence comments, --probe-cc reaching a country-scoped signature live and on
replay, and --exit-code.  About 40 s in all.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from lab_helpers import BUSY_WAIT_S, running_lab

from fingerprint.capture.reader import open_capture
from fingerprint.catalog import catalog_to_yaml, load_catalog
from fingerprint.lab import lab as lab_core
from fingerprint.lab import state, topology

pytestmark = [
    pytest.mark.needs_root,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root (network namespaces)"),
]

TIMEOUT = 2.0
FIRST_LINE_WAIT_S = 90.0
SCENARIO = "gfw"
"""Eight blocked platforms: their localisation keeps the run busy after the first lines."""
ENVELOPE = {"annotations", "data_format_version", "input", "measurement_start_time",
            "probe_asn", "probe_cc", "probe_ip", "resolver_ip", "software_name",
            "software_version", "test_keys", "test_name", "test_runtime", "test_start_time",
            "test_version"}
FINGERPRINT = [sys.executable, "-m", "fingerprint"]


def copy_lab_files(info: lab_core.LabInfo, folder: Path) -> tuple[Path, Path]:
    """The catalog and CA outlive the lab (replay needs them after `down`)."""
    catalog, ca = folder / "catalog.yaml", folder / "ca.pem"
    catalog.write_bytes(info.catalog_path.read_bytes())
    ca.write_bytes(info.ca_path.read_bytes())
    return catalog, ca


def rules(namespace: str) -> str:
    saved = subprocess.run(["ip", "netns", "exec", namespace, "iptables-save"],
                           capture_output=True, text=True, check=True).stdout
    nft = subprocess.run(["ip", "netns", "exec", namespace, "nft", "list", "ruleset"],
                         capture_output=True, text=True, check=True).stdout
    # iptables-save stamps its output with the time; the rules are what matters.
    return "\n".join(line for line in (saved + nft).splitlines() if not line.startswith("#"))


def processes_naming(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def interrupt_after_first_line(command: list[str], jsonl: Path,
                               signum: int) -> subprocess.CompletedProcess[str]:
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + FIRST_LINE_WAIT_S
    try:
        while not (jsonl.exists() and jsonl.stat().st_size > 0):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no measurement written"
            time.sleep(0.05)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


def check_jsonl(jsonl: Path) -> list[dict[str, Any]]:
    text = jsonl.read_text()
    assert text.endswith("\n")
    lines = [json.loads(line) for line in text.splitlines()]
    for measurement in lines:
        assert ENVELOPE <= set(measurement), sorted(ENVELOPE - set(measurement))
        assert measurement["test_keys"]["x_fingerprint"]["platform"]
    # A platform is written whole (in the lab: its address and its one domain) or not at all.
    per_platform: dict[str, int] = {}
    for measurement in lines:
        platform = measurement["test_keys"]["x_fingerprint"]["platform"]
        per_platform[platform] = per_platform.get(platform, 0) + 1
    assert set(per_platform.values()) == {2}, per_platform
    return lines


def replay(capture: Path, catalog: Path, ca: Path | None) -> dict[str, Any]:
    trust = ["--ca-file", str(ca)] if ca is not None else []
    proc = subprocess.run([*FINGERPRINT, "analyze", "--catalog", str(catalog), *trust, "--json",
                           str(capture)], capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    report: dict[str, Any] = json.loads(proc.stdout)
    assert report["packets"] > 0 and report["problems"] == []
    return report


def statuses(lines: list[dict[str, Any]]) -> dict[str, str]:
    return {m["test_keys"]["x_fingerprint"]["platform"]:
            m["test_keys"]["x_fingerprint"]["platform_status"] for m in lines}


def verdicts(report: dict[str, Any]) -> list[tuple[str, str, list[str], list[str]]]:
    return sorted((p["platform"], p["status"], sorted(p["techniques"]),
                   sorted(s for f in p["findings"] for s in f["signatures"]))
                  for p in report["platforms"])


LINE = re.compile(r"after (\d+) of (\d+) measurements; partial results in (\S+) and (\S+)$")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_probe_interrupted(signum: int, tmp_path: Path) -> None:
    jsonl, capture = tmp_path / "run.jsonl", tmp_path / "run.pcapng"
    with running_lab(SCENARIO) as info:
        catalog, ca = copy_lab_files(info, tmp_path)
        before = rules(info.client_namespace)
        namespaces = topology.existing_namespaces()
        command = lab_core.probe_command(info, TIMEOUT, capture, ["--jsonl", str(jsonl)])
        done = interrupt_after_first_line(command, jsonl, signum)
        assert rules(info.client_namespace) == before  # the probe adds no firewall rule
        assert topology.existing_namespaces() == namespaces
    assert done.returncode == 128 + signum, done.stderr
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    name = signal.Signals(signum).name
    assert line.startswith(f"fingerprint probe: interrupted by {name} after ")
    found = LINE.search(line)
    assert found is not None, line
    kept, total = int(found[1]), int(found[2])
    assert (found[3], found[4]) == (str(jsonl), str(capture))
    lines = check_jsonl(jsonl)
    assert 0 < kept == len(lines) < total
    report = replay(capture, catalog, ca)
    replayed = {p["platform"]: p["status"] for p in report["platforms"]}
    # The finished platforms' lines say what the capture says about them.
    assert {p: replayed[p] for p in statuses(lines)} == statuses(lines)
    assert processes_naming(str(tmp_path)) == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_lab_run_interrupted(signum: int, tmp_path: Path) -> None:
    jsonl, capture = tmp_path / "run.jsonl", tmp_path / "run.pcapng"
    command = [*FINGERPRINT, "lab", "run", SCENARIO, "--timeout", str(TIMEOUT),
               "--pcap-out", str(capture), "--jsonl", str(jsonl)]
    # Wait for another session's lab of this instance instead of failing as busy.
    deadline = time.monotonic() + BUSY_WAIT_S
    while lab_core.current() is not None and time.monotonic() < deadline:
        time.sleep(2)
    done = interrupt_after_first_line(command, jsonl, signum)
    assert done.returncode == 128 + signum, done.stderr
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    name = signal.Signals(signum).name
    assert line.startswith(f"fingerprint lab: run interrupted by {name}: probe after ")
    assert line.endswith("; lab torn down")
    found = LINE.search(line.removesuffix("; lab torn down"))
    assert found is not None, line
    lines = check_jsonl(jsonl)
    assert 0 < int(found[1]) == len(lines) < int(found[2])
    # Nothing of the lab is left: namespaces (with their rules), processes, state.
    assert topology.existing_namespaces() == []
    assert lab_core.current() is None
    assert processes_naming(str(state.state_dir()) + "/") == []
    assert processes_naming(str(tmp_path)) == []
    # The capture outlives the lab and replays (the lab's catalog is the same every time).
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(catalog_to_yaml(lab_core.lab_catalog(load_catalog())))
    replay(capture, catalog, None)


def test_probe_streams_measurements_and_evidence(tmp_path: Path) -> None:
    """A complete run: --jsonl per platform, commented evidence, --probe-cc, --exit-code."""
    jsonl, capture = tmp_path / "run.jsonl", tmp_path / "run.pcapng"
    with running_lab("uzbekistan-2021") as info:
        catalog, ca = copy_lab_files(info, tmp_path)
        command = lab_core.probe_command(info, TIMEOUT, capture, [
            "--jsonl", str(jsonl), "--probe-cc", "UZ", "--probe-asn", "AS8193",
            "--platform", "twitter", "--platform", "facebook", "--no-localise", "--exit-code"])
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 3, done.stderr  # twitter is blocked
    live = json.loads(done.stdout)
    lines = check_jsonl(jsonl)
    assert statuses(lines) == {p["platform"]: p["status"] for p in live["platforms"]}
    assert {(m["probe_cc"], m["probe_asn"]) for m in lines} == {("UZ", "AS8193")}
    twitter = [f for p in live["platforms"] if p["platform"] == "twitter" for f in p["findings"]]
    # uz-sni-drop-2021 is scoped to captures from Uzbekistan: the user's --probe-cc reaches it.
    assert any("uz-sni-drop-2021" in f["signatures"] for f in twitter), twitter
    replayed = replay(capture, catalog, ca)
    assert verdicts(replayed) == verdicts(live)
    with open_capture(capture) as reader:
        comments = [p.comment for p in reader if p.comment]
    assert any("tls.sni_drop twitter.com" in c and "uz-sni-drop-2021" in c for c in comments)
