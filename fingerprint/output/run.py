"""Outputs of a live run (probe, lab): JSONL measurements and an annotated evidence capture.

A probe records raw IP packets; this analyses them exactly as `fingerprint
analyze` analyses a capture (frames numbered 1..n in recording order, as
`probes.runner.to_packets` numbers them), then writes the measurements and the
capture with a comment on each evidence packet.  The capture's section comment
holds the run's hints, so replaying it gives the same verdicts.

    verdicts = write_run_outputs(run.packets, run.hints, catalog, library, trust,
                                 source="probe", jsonl="results.jsonl",
                                 pcap_out="evidence.pcapng", probe=ProbeInfo(asn="AS8193"))
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

from fingerprint.analysis import Pipeline
from fingerprint.capture.dissect import LINKTYPE_RAW, dissect
from fingerprint.catalog import Catalog
from fingerprint.classify import Verdicts
from fingerprint.observe import CaptureHints
from fingerprint.output.evidence import EvidenceResult, write_evidence
from fingerprint.output.frames import RawFrame
from fingerprint.output.jsonl import JsonlWriter
from fingerprint.output.ooni import ProbeInfo, measurements_from_pipeline
from fingerprint.signature import SignatureLibrary
from fingerprint.trust import TrustStore

__all__ = ["RecordedPacket", "write_run_outputs"]


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
