"""What the rules produce: findings (a technique on a target), checks, and the verdicts."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from fingerprint.analysis.evidence import EvidencePacket
from fingerprint.analysis.locate import Location
from fingerprint.model import Technique


def count_of(count: int, noun: str) -> str:
    """'1 attempt', '3 attempts': evidence notes reach the report as written."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


@dataclass(slots=True)
class Finding:
    platform: str
    target: str
    technique: Technique
    confidence: float
    address: str | None = None
    signatures: list[str] = field(default_factory=list)
    location: Location | None = None
    evidence: list[EvidencePacket] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)
    """Finding-level fields signatures match on."""
    signature_confidence: float = 0.0


@dataclass(slots=True)
class Check:
    """One tested target and whether it (and its control) worked."""

    platform: str
    target: str
    kind: str
    ok: bool
    control_ok: bool | None
    """None when the capture holds no control for this target."""
    detail: str = ""
    applicable: bool = True
    """False when the test could not bear on the target (QUIC unanswered at a server
    nothing shows speaks QUIC): reported with its reason, left out of the status."""


@dataclass(slots=True)
class Verdicts:
    findings: list[Finding] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    candidates: list[Finding] = field(default_factory=list)
    """Answers the control logic cannot call (a public address, a plain response); a
    matching censor signature (a known blockpage address or page) promotes them."""
    suppressed: list[Finding] = field(default_factory=list)
    """Findings a false-positive signature removed (its id in `signatures`), kept so
    `signatures test` and curious users can see what was suppressed and why."""
    ended_early: list[str] = field(default_factory=list)
    """Why the capture looks cut short (tests the probe planned that it does not hold,
    answers not yet due when it ended); empty for a complete capture."""
    capture_point: dict[str, Any] = field(default_factory=dict)
    """Which end of the connections the capture was taken at (`ObservationIndex.capture_point`)."""

    def by_platform(self) -> tuple[dict[str, list[Finding]], dict[str, list[Check]]]:
        """Findings and checks grouped by platform id (the report's and the JSONL's rows)."""
        findings: dict[str, list[Finding]] = defaultdict(list)
        checks: dict[str, list[Check]] = defaultdict(list)
        for finding in self.findings:
            findings[finding.platform].append(finding)
        for check in self.checks:
            checks[check.platform].append(check)
        return findings, checks
