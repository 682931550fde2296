"""Outputs of a live run (probe, lab): JSONL measurements and an annotated evidence capture.

A probe records raw IP packets; this analyses them exactly as `fingerprint
analyze` analyses a capture (frames numbered 1..n in recording order, as
`probes.runner.to_packets` numbers them), then writes the measurements and the
capture with a comment on each evidence packet.  The capture's section comment
holds the run's hints, so replaying it gives the same verdicts.

    verdicts = write_run_outputs(run.packets, run.hints, catalog, library, trust,
                                 source="probe", jsonl="results.jsonl",
                                 pcap_out="evidence.pcapng", probe=ProbeInfo(asn="AS8193"))

`fingerprint probe` writes while it runs instead: the probe streams the
capture (`probes.sweep.run_probe(pcap_out=)`), `LiveMeasurements` appends each
platform's measurements the moment the platform is done, and
`annotate_run_capture` adds the evidence comments at the end by rewriting the
finished capture (same packets, same order) and replacing it atomically.  An
interrupted run keeps every finished line and the un-annotated capture.

    lines = LiveMeasurements("results.jsonl", ProbeInfo(cc="UZ"), evidence_pcap="ev.pcapng")
    run = run_probe(config, library, trust, pcap_out="ev.pcapng", listener=lines)
    annotate_run_capture("ev.pcapng", run.packets, run.hints, run.verdicts.findings)
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from fingerprint.analysis.findings import Finding, Verdicts
from fingerprint.analysis.observe import CaptureHints
from fingerprint.analysis.pipeline import Pipeline
from fingerprint.capture.dissect import LINKTYPE_RAW, dissect
from fingerprint.catalog import Catalog
from fingerprint.output.evidence import EvidenceResult, write_evidence
from fingerprint.output.frames import RawFrame
from fingerprint.output.jsonl import JsonlWriter
from fingerprint.output.ooni.envelope import ProbeInfo, capture_vantage, new_run_id
from fingerprint.output.ooni.measurements import measurements_from_pipeline
from fingerprint.signature import SignatureLibrary
from fingerprint.trust import TrustStore

__all__ = ["LiveMeasurements", "RecordedPacket", "annotate_run_capture", "write_run_outputs"]


class RecordedPacket(Protocol):
    """What a probe records per packet (`probes.runner.RawPacket` has these)."""

    @property
    def ts(self) -> float: ...

    @property
    def data(self) -> bytes: ...


def _frames(raw: Iterable[RecordedPacket]) -> list[RawFrame]:
    return [RawFrame(n, item.ts, item.data) for n, item in enumerate(raw, start=1)]


def write_run_outputs(raw: Sequence[RecordedPacket], hints: CaptureHints, catalog: Catalog,
                      library: SignatureLibrary, trust: TrustStore, *, source: str = "probe",
                      jsonl: str | Path | None = None, pcap_out: str | Path | None = None,
                      probe: ProbeInfo | None = None) -> tuple[Verdicts, EvidenceResult | None]:
    """Analyse the recorded packets; write `pcap_out` (annotated pcapng) and append to `jsonl`.

    Returns the verdicts (the same as `fingerprint analyze pcap_out` gives) and
    what was written to the capture.
    """
    frames = _frames(raw)
    pipeline = Pipeline(catalog, library, trust)
    pipeline.add_hints(hints)
    for frame in frames:
        packet = dissect(frame.frame, frame.ts, LINKTYPE_RAW, frame.data)
        if packet is not None:
            pipeline.feed(packet)
    verdicts = pipeline.finish()
    written: EvidenceResult | None = None
    if pcap_out is not None:
        written = write_evidence(pcap_out, frames, verdicts.findings,
                                 section_comment=hints.to_comment())
    if jsonl is not None:
        start = frames[0].ts if frames else None
        measurements = measurements_from_pipeline(
            pipeline, verdicts, probe, source=source, test_start_time=start,
            evidence_pcap=str(pcap_out) if pcap_out is not None else None,
            evidence_frames=written.frames if written is not None else None)
        with JsonlWriter(jsonl) as out:
            for measurement in measurements:
                out.write(measurement)
    return verdicts, written


def _same_frames(findings: Iterable[Finding]) -> dict[tuple[str | None, int], int]:
    """Evidence frame numbers of a capture written in recording order: frame n is packet n."""
    return {(e.packet.capture, e.packet.frame): e.packet.frame
            for f in findings for e in f.evidence if e.packet.frame > 0}


class LiveMeasurements:
    """The --jsonl file of a live run, one platform at a time (`probes.sweep.RunListener`).

    A platform's measurements (one per target: its addresses and names) are
    built from the analysis of every packet recorded so far, appended and
    flushed as soon as the run says the platform is done; a platform is
    written once.  All lines of the run share its run id and test_start_time.
    """

    def __init__(self, jsonl: str | Path, probe: ProbeInfo, *, source: str = "probe",
                 evidence_pcap: str | Path | None = None, start: float | None = None) -> None:
        self.writer = JsonlWriter(jsonl)
        self.path = str(jsonl)
        self.probe = probe
        self.source = source
        self.evidence_pcap = str(evidence_pcap) if evidence_pcap is not None else None
        self.start = start if start is not None else time.time()
        self.run_id: str | None = None
        """Made with the first platform's measurements, when the vantage point is known
        (the user's, or the one the run records in its notes)."""
        self.expected: dict[str, int] = {}
        """platform -> targets planned (replaced by the count written once it is done)."""
        self.written: dict[str, int] = {}

    @property
    def lines(self) -> int:
        return sum(self.written.values())

    @property
    def total(self) -> int:
        """Measurements the whole run makes (planned counts for platforms not done yet)."""
        platforms = set(self.expected) | set(self.written)
        return sum(self.written.get(p, self.expected.get(p, 0)) for p in platforms)

    def planned(self, targets: dict[str, int]) -> None:
        self.expected.update(targets)

    def finished(self, pipeline: Pipeline, verdicts: Verdicts, platforms: list[str]) -> None:
        todo = list(dict.fromkeys(p for p in platforms if p not in self.written))
        if not todo:
            return
        if self.run_id is None:
            asn, cc = capture_vantage(self.probe, pipeline.hints.raw)
            self.run_id = new_run_id(self.start, cc, asn)
        measurements = measurements_from_pipeline(
            pipeline, verdicts, self.probe, source=self.source, run_id=self.run_id,
            test_start_time=self.start, evidence_pcap=self.evidence_pcap,
            evidence_frames=_same_frames(verdicts.findings) if self.evidence_pcap else None,
            platforms=todo)
        counts = dict.fromkeys(todo, 0)
        for measurement in measurements:
            self.writer.write(measurement)
            platform = _platform_of(measurement)
            if platform in counts:
                counts[platform] += 1
        self.written.update(counts)

    def close(self) -> None:
        self.writer.close()


def _platform_of(measurement: dict[str, Any]) -> str:
    return str(measurement["test_keys"]["x_fingerprint"]["platform"])


def annotate_run_capture(path: str | Path, raw: Sequence[RecordedPacket], hints: CaptureHints,
                         findings: Iterable[Finding]) -> EvidenceResult | None:
    """Rewrite a finished run's streamed pcapng with a comment on every evidence packet.

    The new file (same packets in the same order, the final hints in its
    section comment) is written next to the old one and then renamed over it,
    so at every moment `path` is a whole, readable capture.  The probe writes
    pcapng whatever the file's name (its notes need the section comment).
    """
    target = Path(path)
    partial = target.with_name(f".{os.getpid()}-{target.name}")
    try:
        written = write_evidence(partial, _frames(raw), findings,
                                 section_comment=hints.to_comment(), any_name=True)
        os.replace(partial, target)
    finally:
        if partial.exists():
            partial.unlink()
    return written
