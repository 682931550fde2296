"""Outputs of a live run: the recorded packets analysed, annotated and written as measurements."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthetic import censored_network, verdict_summary

from fingerprint.analysis.observe import CaptureHints
from fingerprint.catalog import load_catalog
from fingerprint.output.ooni.envelope import ProbeInfo
from fingerprint.output.run import write_run_outputs
from fingerprint.signature import load_library
from fingerprint.trust import TrustStore


@dataclass
class Recorded:
    ts: float
    data: bytes


def test_run_outputs_match_a_replay(analyze: Any, catalog_file: Path, signatures_dir: Path, test_ca: Path,
                                    tmp_path: Path) -> None:
    raw = [Recorded(ts, data) for ts, data in censored_network().frames]
    hints = CaptureHints(no_resolver={"203.0.113.250"})
    pcap = tmp_path / "run.pcapng"
    jsonl = tmp_path / "run.jsonl"
    verdicts, written = write_run_outputs(
        raw, hints, load_catalog(str(catalog_file)), load_library(str(signatures_dir)),
        TrustStore(str(test_ca)), source="probe", jsonl=jsonl, pcap_out=pcap,
        probe=ProbeInfo(asn="AS8193", cc="UZ"))
    assert written is not None and written.packets == len(raw) and not written.missing
    replay = analyze(pcap)
    assert verdict_summary(replay) == sorted(
        (f.platform, f.target, f.technique.value, tuple(f.signatures)) for f in verdicts.findings)
    assert replay.hints.no_resolver == {"203.0.113.250"}  # hints survive in the section comment
    lines = [json.loads(x) for x in jsonl.read_text().splitlines()]
    assert {m["test_keys"]["x_fingerprint"]["source"] for m in lines} == {"probe"}
    assert {m["probe_asn"] for m in lines} == {"AS8193"}
    assert lines[0]["test_start_time"] == "2023-11-14 22:13:20"
