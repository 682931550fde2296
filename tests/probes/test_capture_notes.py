"""The probe's run notes survive whatever the capture's name (issue 13, case 6), and
`analyze` says so when a capture the probe wrote has lost them.

The unit tests need no root: a recorded lab fixture (written by the probe) is
converted to classic pcap, as an older `--pcap-out evidence.pcap` or a
conversion tool would leave it.  The root test runs the probe in the lab with
`--pcap-out evidence.pcap` and replays it.
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

from fingerprint.analysis.observe import CaptureHints
from fingerprint.capture.reader import open_capture, open_ip_frames
from fingerprint.capture.writer import CaptureWriter
from fingerprint.lab import lab as lab_core
from fingerprint.probes.notes import missing_notes_warning, written_by_probe

PCAPS = Path(__file__).resolve().parents[2] / "pcaps"
LAB_FIXTURE = PCAPS / "lab" / "clean" / "capture.pcapng.gz"
OTHER_TOOL = PCAPS / "clean" / "http" / "capture.pcapng.gz"


def as_classic_pcap(source: Path, target: Path) -> Path:
    reader = open_ip_frames(source)
    try:
        with CaptureWriter(target) as out:  # the name says pcap: no section comment
            for frame in reader.ip_frames():
                out.write(frame.ts, frame.data)
    finally:
        reader.close()
    return target


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fingerprint", "analyze", "--json", *args],
                          capture_output=True, text=True, timeout=300, check=False)


def test_a_probe_capture_is_recognised_by_its_http_requests(tmp_path: Path) -> None:
    assert written_by_probe(LAB_FIXTURE)
    assert not written_by_probe(OTHER_TOOL)
    with open_capture(LAB_FIXTURE) as reader:
        hints = CaptureHints.from_comments(reader.section_comments)
    assert missing_notes_warning([str(LAB_FIXTURE)], hints) is None, "it has its notes"
    converted = as_classic_pcap(LAB_FIXTURE, tmp_path / "evidence.pcap")
    warning = missing_notes_warning([str(converted)], CaptureHints())
    assert warning is not None and str(converted) in warning
    assert missing_notes_warning([str(OTHER_TOOL)], CaptureHints()) is None


def test_analyze_warns_when_the_notes_are_lost_and_only_then(tmp_path: Path) -> None:
    converted = as_classic_pcap(LAB_FIXTURE, tmp_path / "evidence.pcap")
    catalog = LAB_FIXTURE.parent / "catalog.yaml"
    args = ["--catalog", str(catalog)] if catalog.exists() else []
    lost = analyze(*args, str(converted))
    assert lost.returncode in (0, 3), lost.stderr
    assert "without its run notes" in lost.stderr
    assert any("without its run notes" in p for p in json.loads(lost.stdout)["problems"])
    kept = analyze(*args, str(LAB_FIXTURE))
    assert "without its run notes" not in kept.stderr


def verdicts(report: dict[str, Any]) -> dict[str, tuple[str, list[str]]]:
    return {p["platform"]: (p["status"], sorted(p["techniques"])) for p in report["platforms"]}


@pytest.mark.needs_root
@pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root (network namespaces)")
def test_live_equals_replay_with_a_pcap_name(tmp_path: Path) -> None:
    pcap = tmp_path / "evidence.pcap"
    platforms = ["twitter", "google", "linkedin"]
    with running_lab("gfw") as info:
        catalog, ca = tmp_path / "catalog.yaml", tmp_path / "ca.pem"
        catalog.write_bytes(info.catalog_path.read_bytes())
        ca.write_bytes(info.ca_path.read_bytes())
        command = lab_core.probe_command(info, 2.0, pcap)
        for platform in platforms:
            command += ["--platform", platform]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert f"{pcap} is written as pcapng" in proc.stderr
    live = json.loads(proc.stdout)
    with open_capture(pcap) as reader:
        assert reader.format == "pcapng"
        hints = CaptureHints.from_comments(reader.section_comments)
    assert hints.no_resolver and "probe" in hints.raw
    replay = analyze("--catalog", str(catalog), "--ca-file", str(ca), str(pcap))
    assert replay.returncode == 0, replay.stderr
    assert "without its run notes" not in replay.stderr
    assert verdicts(json.loads(replay.stdout)) == verdicts(live)
    assert verdicts(live)["twitter"][0] == "blocked"
