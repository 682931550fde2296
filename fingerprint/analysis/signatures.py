"""Applying the signature library to the rules' verdicts: its own step after the rules.

Two things a signature can do to a verdict besides naming a finding's censor:

* a false-positive signature (a closed port, the platform's own redirect) removes
  the finding, keeps it in `Verdicts.suppressed`, and marks the target's check of
  that family as working again: the target behaved as its service does;
* a censor signature promotes a candidate (an answer the control logic cannot call:
  a public address, a plain HTTP response) to a finding, and marks its checks failed.
"""

from __future__ import annotations

from fingerprint.analysis.findings import Finding, Verdicts
from fingerprint.signature import SignatureLibrary


def apply_signatures(verdicts: Verdicts, library: SignatureLibrary) -> Verdicts:
    kept: list[Finding] = []
    for finding in verdicts.findings:
        if library.apply(finding):
            kept.append(finding)
            continue
        suppress(verdicts, finding)
    verdicts.findings = kept
    for candidate in verdicts.candidates:
        # Only a known censor's signature turns an ordinary-looking answer into a finding.
        if library.apply(candidate) and candidate.signatures:
            promote(verdicts, candidate)
    verdicts.findings.sort(key=lambda f: (f.platform, f.target, -f.confidence))
    return verdicts


def suppress(verdicts: Verdicts, finding: Finding) -> None:
    """A false-positive signature names a known look-alike: the target worked as its service does."""
    verdicts.suppressed.append(finding)
    kind = finding.technique.value.split(".", 1)[0]
    for check in verdicts.checks:
        if (check.target, check.platform, check.kind) == (finding.target, finding.platform, kind):
            check.ok = True


def promote(verdicts: Verdicts, candidate: Finding) -> None:
    """A censor signature matched a candidate: it is a finding, and its target failed."""
    candidate.context.pop("candidate", None)
    verdicts.findings.append(candidate)
    for check in verdicts.checks:
        if check.target == candidate.target and check.platform == candidate.platform:
            check.ok = False
