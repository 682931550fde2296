"""Test helpers for signature authors: does this capture match this signature?

    from fingerprint.testing import replay

    def test_my_signature() -> None:
        replay("pcaps/uz/middlebox-fin").expect(technique="tls.sni_fin",
                                                signature="uz-middlebox-fin")

or, for a signature file that is not in the library yet:

    assert_capture_matches("my-capture.pcapng", "xx-new-censor",
                           signatures="signatures/xx/xx-new-censor.yaml")

A replay runs the capture through the pipeline `fingerprint analyze` and a live
probe use (capture hints included), with the shipped library plus any
signature files given.  When an expectation fails, the AssertionError lists
what the analysis did find and, for the expected signature, which of its
matchers failed on each finding - usually enough to fix the YAML.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fingerprint.analysis.findings import Finding
from fingerprint.analysis.pipeline import Result, analyze_files
from fingerprint.catalog import load_catalog
from fingerprint.errors import InputError
from fingerprint.report import build_report
from fingerprint.signature import Signature, SignatureLibrary, load_library
from fingerprint.signature.library import evidence_fields
from fingerprint.testing.fixtures import Fixture
from fingerprint.trust import TrustStore

__all__ = ["Replay", "assert_capture_does_not_match", "assert_capture_matches", "library_with",
           "replay"]

PathLike = str | Path


def library_with(*extra: PathLike | SignatureLibrary) -> SignatureLibrary:
    """The shipped library plus signature files/folders (theirs win on an id clash)."""
    merged: dict[str, Signature] = {s.id: s for s in load_library(None).signatures}
    for item in extra:
        loaded = item if isinstance(item, SignatureLibrary) else load_library(item)
        merged.update({s.id: s for s in loaded.signatures})
    return SignatureLibrary(list(merged.values()))


def _describe(finding: Finding) -> str:
    sigs = ", ".join(finding.signatures) or "no signature"
    return f"{finding.platform}: {finding.technique.value} on {finding.target} [{sigs}]"


@dataclass
class Replay:
    """The outcome of analysing one capture (or fixture folder)."""

    source: str
    result: Result
    report: dict[str, Any]
    library: SignatureLibrary

    @property
    def findings(self) -> list[Finding]:
        return list(self.result.verdicts.findings)

    @property
    def suppressed(self) -> list[Finding]:
        """Findings a false-positive signature removed (its id in `signatures`)."""
        return list(self.result.verdicts.suppressed)

    def signatures(self) -> set[str]:
        """Ids of every signature that matched (false-positive ones by suppressing)."""
        return {s for f in [*self.findings, *self.suppressed] for s in f.signatures}

    def status(self, platform: str) -> str | None:
        return next((p["status"] for p in self.report["platforms"] if p["platform"] == platform),
                    None)

    # -- expectations -----------------------------------------------------------
    def expect(self, *, technique: str | None = None, signature: str | None = None,
               platform: str | None = None, target: str | None = None) -> Finding:
        """The finding with all the given properties; AssertionError (explained) if none.

        A false-positive `signature` is expected among the suppressed findings.
        """
        sig = self.library.get(signature) if signature else None
        if signature and sig is None:
            raise AssertionError(f"no signature {signature!r} in the library used for the replay")
        pool = self.suppressed if sig is not None and sig.is_false_positive else self.findings
        for finding in pool:
            if technique and finding.technique.value != technique:
                continue
            if platform and finding.platform != platform:
                continue
            if target and finding.target != target:
                continue
            if sig is not None and sig.id not in finding.signatures:
                continue
            return finding
        wanted = ", ".join(f"{k}={v}" for k, v in (("technique", technique), ("signature", signature),
                                                   ("platform", platform), ("target", target)) if v)
        raise AssertionError(f"{self.source}: no finding with {wanted}\n" + self.explain(signature))

    def expect_no_match(self, signature: str) -> None:
        """The signature matched nothing in this capture (a negative fixture)."""
        if signature in self.signatures():
            hits = [_describe(f) for f in [*self.findings, *self.suppressed]
                    if signature in f.signatures]
            raise AssertionError(f"{self.source}: {signature} matched: " + "; ".join(hits))

    def expect_accessible(self, platform: str | None = None) -> None:
        """No finding (for `platform`, or at all) and the platform(s) reported accessible."""
        entries = [p for p in self.report["platforms"] if platform in (None, p["platform"])]
        if platform is not None and not entries:
            raise AssertionError(f"{self.source}: {platform} was not tested in this capture")
        bad = [f"{p['platform']}: {p['status']}" for p in entries if p["status"] != "accessible"]
        if bad:
            raise AssertionError(f"{self.source}: not accessible - " + "; ".join(bad)
                                 + "\n" + self.explain(None))

    # -- explanations -----------------------------------------------------------
    def explain(self, signature: str | None) -> str:
        """What was found, and why `signature` did or did not match each finding."""
        lines = ["findings:"]
        lines += [f"  {_describe(f)}" for f in self.findings] or ["  (none)"]
        if self.suppressed:
            lines.append("suppressed by false-positive signatures:")
            lines += [f"  {_describe(f)}" for f in self.suppressed]
        if self.result.verdicts.candidates:
            lines.append("candidates no censor signature promoted:")
            lines += [f"  {_describe(f)}" for f in self.result.verdicts.candidates]
        sig = self.library.get(signature) if signature else None
        if sig is not None:
            lines.append(f"{sig.id} ({', '.join(sorted(t.value for t in sig.techniques))}):")
            everything = [*self.findings, *self.suppressed, *self.result.verdicts.candidates]
            for finding in everything:
                lines.append(f"  on {_describe(finding)}:")
                if finding.technique not in sig.techniques:
                    lines.append(f"    technique {finding.technique.value} is not one of the "
                                 "signature's")
                    continue
                packets = evidence_fields(finding)
                for matcher in sig.rule.matchers:
                    ok = matcher.evaluate(finding.context, packets)
                    lines.append(f"    {'ok  ' if ok else 'FAIL'} {matcher.field} {matcher.op}"
                                 f" {matcher.value if matcher.value is not None else list(matcher.values)}")
        return "\n".join(lines)


def replay(path: PathLike, *, signatures: PathLike | SignatureLibrary | None = None,
           catalog: PathLike | None = None, ca_file: PathLike | None = None) -> Replay:
    """Analyse a capture file, or a fixture folder (with its catalog.yaml / ca.pem).

    `signatures`: extra signature files or a folder, added to the shipped library,
    or a `SignatureLibrary` used as it is.
    """
    source = Path(path)
    if source.is_dir():
        fixture = Fixture(source)
        capture = fixture.capture
        if catalog is None and (source / "catalog.yaml").exists():
            catalog = source / "catalog.yaml"
        if ca_file is None and (source / "ca.pem").exists():
            ca_file = source / "ca.pem"
    else:
        capture = source
        if not capture.is_file():
            raise InputError(str(path), "no such capture file or fixture folder")
    if isinstance(signatures, SignatureLibrary):
        library = signatures
    else:
        library = library_with(signatures) if signatures is not None else load_library(None)
    loaded_catalog = load_catalog(catalog)
    result = analyze_files([str(capture)], loaded_catalog, library, TrustStore(ca_file),
                           on_problem=lambda _line: None)
    report = build_report(result.verdicts, loaded_catalog, "analyze")
    return Replay(str(path), result, report, library)


def assert_capture_matches(capture: PathLike, signature: str, *, technique: str | None = None,
                           signatures: PathLike | SignatureLibrary | None = None) -> Finding:
    """Replay `capture` and require a finding that `signature` matches."""
    return replay(capture, signatures=signatures).expect(technique=technique, signature=signature)


def assert_capture_does_not_match(capture: PathLike, signature: str, *,
                                  signatures: PathLike | SignatureLibrary | None = None) -> None:
    replay(capture, signatures=signatures).expect_no_match(signature)
