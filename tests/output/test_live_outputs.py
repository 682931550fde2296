"""Outputs a live run writes while it runs: JSONL per finished platform, the capture's
evidence comments added by an atomic rewrite."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthetic import censored_network

from fingerprint.analysis.observe import CaptureHints
from fingerprint.analysis.pipeline import Pipeline
from fingerprint.capture.reader import open_capture
from fingerprint.capture.writer import CaptureWriter
from fingerprint.catalog import load_catalog
from fingerprint.output.frames import iter_ip_frames
from fingerprint.output.ooni.envelope import ProbeInfo
from fingerprint.output.run import LiveMeasurements, annotate_run_capture
from fingerprint.probes.runner import RawPacket, to_packets
from fingerprint.signature import load_library
from fingerprint.trust import TrustStore


@dataclass
class Analysed:
    raw: list[RawPacket]
    pipeline: Pipeline
    verdicts: Any
    hints: CaptureHints


def _analysed(catalog_file: Path, signatures_dir: Path) -> Analysed:
    raw = [RawPacket(ts, data) for ts, data in censored_network().frames]
    hints = CaptureHints(no_resolver={"203.0.113.250"}, raw={"probe_cc": "UZ"})
    pipeline = Pipeline(load_catalog(str(catalog_file)), load_library(str(signatures_dir)),
                        TrustStore(None))
    pipeline.add_hints(hints)
    for packet in to_packets(raw):
        pipeline.feed(packet)
    return Analysed(raw, pipeline, pipeline.finish(), hints)


def test_each_platform_is_written_once_and_flushed(catalog_file: Path, signatures_dir: Path,
                                                   tmp_path: Path) -> None:
    run = _analysed(catalog_file, signatures_dir)
    jsonl = tmp_path / "live.jsonl"
    lines = LiveMeasurements(jsonl, ProbeInfo(asn="AS8193", cc="UZ"), evidence_pcap="ev.pcapng")
    lines.planned({"twitter": 2, "telegram": 2})
    assert (lines.lines, lines.total) == (0, 4)
    lines.finished(run.pipeline, run.verdicts, ["twitter"])
    # On disk before the writer is closed: a killed run keeps it.
    first = [json.loads(x) for x in jsonl.read_text().splitlines()]
    assert first and {m["test_keys"]["x_fingerprint"]["platform"] for m in first} == {"twitter"}
    lines.finished(run.pipeline, run.verdicts, ["twitter", "telegram"])  # twitter not again
    lines.close()
    every = [json.loads(x) for x in jsonl.read_text().splitlines()]
    platforms = [m["test_keys"]["x_fingerprint"]["platform"] for m in every]
    assert platforms.count("twitter") == len(first)
    assert "telegram" in platforms
    assert lines.lines == len(every)
    assert lines.total == len(every)  # planned counts replaced by what was written
    assert {m["test_keys"]["x_fingerprint"]["run_id"] for m in every} == {lines.run_id}
    assert {m["probe_cc"] for m in every} == {"UZ"}
    # Evidence frames point into a capture written in recording order: frame n is packet n.
    frames = [(p["frame"], p.get("evidence_frame")) for m in every
              for f in m["test_keys"]["x_fingerprint"]["findings"] for p in f["packets"]
              if p.get("frame", 0) > 0]
    assert frames and all(a == b for a, b in frames)


def test_annotated_rewrite_keeps_every_packet_in_order(catalog_file: Path,
                                                       signatures_dir: Path,
                                                       tmp_path: Path) -> None:
    run = _analysed(catalog_file, signatures_dir)
    capture = tmp_path / "ev.pcapng"
    with CaptureWriter(capture, section_comment=run.hints.to_comment()) as out:
        for item in run.raw:
            out.write(item.ts, item.data)
    written = annotate_run_capture(capture, run.raw, run.hints, run.verdicts.findings)
    assert written is not None and written.commented > 0 and not written.missing
    with open_capture(capture) as reader:
        packets = list(reader)
        hints = CaptureHints.from_comments(reader.section_comments)
    assert [f.data for f in iter_ip_frames(capture)] == [r.data for r in run.raw]
    assert sum(1 for p in packets if p.comment) == written.commented
    assert hints.raw.get("probe_cc") == "UZ" and hints.no_resolver == {"203.0.113.250"}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_pcap_name_still_gets_pcapng_with_the_run_notes(catalog_file: Path,
                                                          signatures_dir: Path,
                                                          tmp_path: Path) -> None:
    """`--pcap-out evidence.pcap`: the notes replay needs survive whatever the name."""
    run = _analysed(catalog_file, signatures_dir)
    capture = tmp_path / "ev.pcap"
    with CaptureWriter(capture, pcapng=True) as out:
        for item in run.raw:
            out.write(item.ts, item.data)
    written = annotate_run_capture(capture, run.raw, run.hints, run.verdicts.findings)
    assert written is not None and written.commented > 0
    with open_capture(capture) as reader:
        assert reader.format == "pcapng"
        hints = CaptureHints.from_comments(reader.section_comments)
    assert hints.no_resolver == run.hints.no_resolver
