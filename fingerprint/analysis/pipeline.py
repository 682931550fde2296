"""The pipeline: packets -> observations -> findings -> report.

Live probes and capture replay both end here (`Pipeline.feed`), so a probe's
evidence capture replayed through `fingerprint analyze` gives the same report.
"""

from __future__ import annotations

import gc
import math
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fingerprint.analysis.findings import Verdicts
from fingerprint.analysis.index import ObservationIndex
from fingerprint.analysis.observe import CaptureHints, Observer
from fingerprint.analysis.quic import QuicObserver
from fingerprint.analysis.rules import decide
from fingerprint.analysis.signatures import apply_signatures
from fingerprint.capture.packet import Packet
from fingerprint.capture.reader import open_capture
from fingerprint.catalog import Catalog
from fingerprint.errors import CaptureError
from fingerprint.signature import SignatureLibrary
from fingerprint.trust import TrustStore


@dataclass(slots=True)
class Result:
    verdicts: Verdicts
    packets: int
    inputs: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """One line per skipped packet or unreadable file."""
    failed_inputs: list[str] = field(default_factory=list)
    hints: CaptureHints = field(default_factory=CaptureHints)
    pipeline: Pipeline | None = None
    """The finished pipeline: its `index` keeps every observation (for OONI measurements)."""


RECORDED_UNTIL_KEY = "recorded_until"
"""Capture notes: until when the probe recorded (epoch seconds).  The last packet is not when
recording stopped: a QUIC attempt ends in silence, with no packet of the client's to say it
gave up, so the Initials of the run's last attempts would otherwise read as sent too shortly
before the capture ended for their silence to count (issue 14: a platform's quic.drop missed
in the udp-drop scenario)."""


def recorded_end(hints: CaptureHints, last_ts: float) -> float:
    """The capture's end: its last packet, or later when the notes say recording went on."""
    value = hints.raw.get(RECORDED_UNTIL_KEY)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) \
            and value > last_ts:
        return float(value)
    return last_ts


class Pipeline:
    def __init__(self, catalog: Catalog, library: SignatureLibrary, trust: TrustStore,
                 hints: CaptureHints | None = None) -> None:
        self.catalog = catalog
        self.library = library
        self.hints = hints or CaptureHints()
        self.index = ObservationIndex(catalog, trust, self.hints)
        self.quic = QuicObserver(self.index.add_quic)
        self.observer = Observer(self.index.add, udp=self.quic)

    def feed(self, packet: Packet) -> None:
        self.observer.feed(packet)

    def add_hints(self, hints: CaptureHints) -> None:
        self.hints.control_answers.update(hints.control_answers)
        self.hints.no_resolver |= hints.no_resolver
        self.hints.address_platform.update(hints.address_platform)
        self.hints.raw.update(hints.raw)

    def finish(self) -> Verdicts:
        # Flows still open are in memory already: packing them now would save nothing
        # and cost an unpacking when the verdicts read them.
        self.index.pack_closed = False
        self.observer.close()
        self.index.capture_end = recorded_end(self.hints, self.observer.last_ts)
        return apply_signatures(decide(self.index), self.library)


def analyze_packets(packets: Iterable[Packet], catalog: Catalog, library: SignatureLibrary,
                    trust: TrustStore, hints: CaptureHints | None = None) -> Result:
    pipeline = Pipeline(catalog, library, trust, hints)
    count = 0
    for packet in packets:
        pipeline.feed(packet)
        count += 1
    return Result(pipeline.finish(), count, hints=pipeline.hints, pipeline=pipeline)


ProblemSink = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Pause the cyclic garbage collector for the duration (nested uses are fine).

    Analysis allocates many small objects that live until their flow closes, so
    nearly every object survives a young collection and is scanned at least once
    for nothing: that cost a quarter of the run time on a 1,000,000-packet
    capture even with collections every 100,000 allocations.  The pipeline builds
    no reference cycles (tests/test_flowstore.py checks that a whole analysis
    leaves no cyclic garbage), so reference counting frees everything it drops.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            # Everything allocated meanwhile still counts as young: the first collection
            # after this would walk it all.  Move it to the oldest generation instead.
            gc.freeze()
            gc.unfreeze()
            gc.enable()


def analyze_files(paths: list[str], catalog: Catalog, library: SignatureLibrary,
                  trust: TrustStore, on_problem: ProblemSink = _stderr,
                  vantage: CaptureHints | None = None) -> Result:
    """Analyse captures together (a control may sit in another file than its target).

    A file that cannot be read is named in one line and the others are still
    analysed; what was read before a fault is kept.  `vantage` holds what the user
    says about the vantage point (`probe_cc`, `probe_asn` in its `raw`, as a probe
    records them): it is applied after the captures' own hints, so it wins over
    them, and country-scoped signatures then fire on any tool's capture.
    """
    with fewer_collections():
        return _analyze_files(paths, catalog, library, trust, on_problem, vantage)


def _analyze_files(paths: list[str], catalog: Catalog, library: SignatureLibrary,
                   trust: TrustStore, on_problem: ProblemSink,
                   vantage: CaptureHints | None = None) -> Result:
    pipeline = Pipeline(catalog, library, trust)
    if vantage is not None and "capture_point" in vantage.raw:
        # Flows are judged as they close, so which end the capture was taken at
        # (`--vantage`) must be known before the first packet.
        pipeline.hints.raw["capture_point"] = vantage.raw["capture_point"]
    result = Result(Verdicts(), 0, inputs=list(paths))
    label_files = len(paths) > 1
    for path in paths:
        name = Path(path).name if label_files else None
        try:
            with open_capture(path) as reader:
                pipeline.add_hints(CaptureHints.from_comments(reader.section_comments))
                # The observer is fed directly and counts the packets itself: per packet,
                # one call and one attribute write fewer (this loop runs millions of times).
                observer = pipeline.observer
                feed = observer.feed
                before = observer.packets
                malformed_before = pipeline.quic.malformed
                try:
                    if name is None:
                        for packet in reader:
                            feed(packet)
                    else:
                        for packet in reader:
                            packet.capture = name
                            feed(packet)
                finally:
                    result.packets += observer.packets - before
                for problem in reader.problems:
                    line = f"{path}: packet {problem.frame}: {problem.message}"
                    result.problems.append(line)
                    on_problem(f"warning: {line}")
                malformed = pipeline.quic.malformed - malformed_before
                if malformed:
                    # Counted and skipped as a bad packet is: one line, not one per datagram.
                    line = (f"{path}: {malformed} malformed QUIC datagram(s) skipped (truncated, "
                            "bad lengths, or an Initial that did not decrypt)")
                    result.problems.append(line)
                    on_problem(f"warning: {line}")
        except CaptureError as exc:
            result.failed_inputs.append(path)
            result.problems.append(str(exc))
            on_problem(f"error: {exc}")
    if vantage is not None:
        pipeline.add_hints(vantage)
    result.verdicts = pipeline.finish()
    result.hints = pipeline.hints
    result.pipeline = pipeline
    return result

