"""Annotated evidence captures: pcapng where every packet a finding rests on says why.

Each such packet carries a pcapng packet comment (Wireshark's `frame.comment`)
such as

    injected: TTL 64 vs server 47; DF unset vs server set; tls.sni_reset twitter.com;
    matches gfw-rst-type2

so `tshark -r FILE -Y frame.comment -T fields -e frame.comment` lists the
proof.  The output is raw IP (LINKTYPE_RAW) pcapng; the capture hints of the
analysed inputs go into its section comment, so the annotated file replays
through `fingerprint analyze` to the same verdicts as its inputs.

Two entry points:

* `write_evidence(path, frames, findings)` for a producer that holds the raw
  packets (a probe run): frames are `RawFrame`s numbered as the analysis saw
  them (1-based, in feed order).
* `annotate_captures(inputs, path, findings)` for `analyze --pcap-out`: a
  second streaming pass over the input files that copies every IP packet and
  comments the evidence frames, so memory stays flat.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from fingerprint.analysis.evidence import EvidencePacket
from fingerprint.analysis.findings import Finding
from fingerprint.capture.dissect import LINKTYPE_RAW, dissect
from fingerprint.capture.packet import Packet
from fingerprint.capture.writer import CaptureWriter
from fingerprint.errors import InputError
from fingerprint.output.frames import RawFrame, iter_ip_frames

__all__ = ["EvidenceResult", "annotate_captures", "evidence_comments", "packet_comment",
           "write_evidence"]

COMMENT_SEPARATOR = " | "
MAX_COMMENT = 4000
"""Wireshark shows long comments, but a bound keeps a file of many findings sane."""


@dataclass(slots=True)
class EvidenceResult:
    path: str
    packets: int = 0
    commented: int = 0
    missing: list[str] = field(default_factory=list)
    """Evidence frames that were not found where the analysis saw them (one line each)."""
    frames: dict[tuple[str | None, int], int] = field(default_factory=dict)
    """(capture label, frame in the analysed input) -> frame number in the written file,
    for every commented packet."""


def packet_comment(finding: Finding, evidence: EvidencePacket) -> str:
    """Why this packet matters for this finding, in one line."""
    parts = [evidence.role]
    why = list(evidence.reasons)
    answers = evidence.fields.get("dns.answer")
    if isinstance(answers, list):
        why.append("answer " + (", ".join(str(a) for a in answers) or "empty"))
    if "dns.rcode" in evidence.fields and evidence.fields["dns.rcode"] != "NOERROR":
        why.append(f"rcode {evidence.fields['dns.rcode']}")
    text = parts[0] + (": " + "; ".join(why) if why else "")
    text += f"; {finding.technique.value} {finding.target}"
    if finding.signatures:
        text += "; matches " + ", ".join(finding.signatures)
    return text


@dataclass(slots=True)
class _Note:
    packet: Packet
    texts: list[str] = field(default_factory=list)


def _notes(findings: Iterable[Finding]) -> dict[tuple[str | None, int], _Note]:
    notes: dict[tuple[str | None, int], _Note] = {}
    for finding in findings:
        for evidence in finding.evidence:
            pkt = evidence.packet
            if pkt.frame <= 0:
                continue  # a packet quoted inside an ICMP error has no frame of its own
            note = notes.setdefault((pkt.capture, pkt.frame), _Note(pkt))
            text = packet_comment(finding, evidence)
            if text not in note.texts:
                note.texts.append(text)
    return notes


def evidence_comments(findings: Iterable[Finding]) -> dict[tuple[str | None, int], str]:
    """{(capture label, frame): comment} for every packet the findings rest on."""
    return {key: _join(note.texts) for key, note in _notes(findings).items()}


def _join(texts: list[str]) -> str:
    text = COMMENT_SEPARATOR.join(texts)
    return text if len(text) <= MAX_COMMENT else text[:MAX_COMMENT - 3] + "..."


def _same_packet(frame: RawFrame, expected: Packet) -> bool:
    """The bytes at this frame number decode to the packet the analysis saw."""
    got = dissect(frame.frame, frame.ts, LINKTYPE_RAW, frame.data)
    return got is not None and (got.src, got.dst, got.proto, got.sport, got.dport, got.ttl,
                                got.tcp_flags, got.seq) == (
        expected.src, expected.dst, expected.proto, expected.sport, expected.dport,
        expected.ttl, expected.tcp_flags, expected.seq)


def _merge(existing: str | None, new: str) -> str:
    if not existing:
        return new
    if new in existing:
        return existing  # annotating an annotated capture again adds nothing
    return _join([existing, new])


def write_evidence(path: str | Path, frames: Iterable[RawFrame], findings: Iterable[Finding],
                   *, section_comment: str | None = None, only_evidence: bool = False,
                   any_name: bool = False) -> EvidenceResult:
    """Write `frames` to pcapng at `path`, commenting each packet a finding rests on.

    `only_evidence` keeps just the commented packets (a small file to attach to
    a report; it no longer replays to the same verdicts, since controls are
    left out).  Frames whose bytes do not match the evidence packet get no
    comment and are listed in `missing`.  `any_name`: pcapng whatever the file
    is called (a probe's `--pcap-out evidence.pcap`).
    """
    if not any_name and not str(path).lower().removesuffix(".gz").endswith(".pcapng"):
        # CaptureWriter picks the format from the name, and only pcapng has comments.
        raise InputError(str(path), "evidence captures are pcapng: name the file *.pcapng")
    notes = _notes(findings)
    result = EvidenceResult(str(path))
    with CaptureWriter(path, LINKTYPE_RAW, section_comment, pcapng=True) as out:
        for frame in frames:
            note = notes.pop((frame.capture, frame.frame), None)
            comment = frame.comment
            if note is not None:
                if _same_packet(frame, note.packet):
                    comment = _merge(comment, _join(note.texts))
                    result.commented += 1
                    result.frames[(frame.capture, frame.frame)] = result.packets + 1
                else:
                    result.missing.append(_missing_line(note, "bytes at that frame differ"))
            elif only_evidence:
                continue
            out.write(frame.ts, frame.data, comment)
            result.packets += 1
    for note in notes.values():
        result.missing.append(_missing_line(note, "frame not in the input"))
    return result


def _missing_line(note: _Note, why: str) -> str:
    where = f"{note.packet.capture}#{note.packet.frame}" if note.packet.capture \
        else f"#{note.packet.frame}"
    return f"evidence packet {where}: {why}; left without comment"


def annotate_captures(inputs: list[str], path: str | Path, findings: Iterable[Finding], *,
                      section_comment: str | None = None, only_evidence: bool = False
                      ) -> EvidenceResult:
    """Copy the IP packets of `inputs` (as `analyze_files` read them) with evidence comments.

    Capture labels follow `analyze_files`: the file name when several inputs
    are analysed together, none for a single input.
    """
    label_files = len(inputs) > 1

    def frames() -> Iterable[RawFrame]:
        for name in inputs:
            label = Path(name).name if label_files else None
            yield from iter_ip_frames(name, label)

    return write_evidence(path, frames(), findings, section_comment=section_comment,
                          only_evidence=only_evidence)
