"""Annotated evidence captures: comments on the packets findings rest on, same verdicts on replay."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.l2 import ARP, Ether
from synthetic import censored_network, verdict_summary

from fingerprint.capture.dissect import LINKTYPE_ETHERNET
from fingerprint.capture.reader import open_capture
from fingerprint.capture.writer import CaptureWriter
from fingerprint.errors import InputError
from fingerprint.output.evidence import annotate_captures, evidence_comments, write_evidence
from fingerprint.output.frames import RawFrame, iter_ip_frames


def _comments(path: Path) -> dict[int, str]:
    with open_capture(path) as capture:
        return {p.frame: p.comment for p in capture if p.comment}


def test_every_evidence_packet_is_commented(analyze: Any, censored_capture: Path,
                                            tmp_path: Path) -> None:
    result = analyze(censored_capture)
    out = tmp_path / "evidence.pcapng"
    written = annotate_captures([str(censored_capture)], out, result.verdicts.findings)
    evidence_frames = {e.packet.frame for f in result.verdicts.findings for e in f.evidence}
    comments = _comments(out)
    assert set(comments) == evidence_frames
    assert written.commented == len(evidence_frames) and not written.missing
    reset = next(f for f in result.verdicts.findings if f.technique.value == "tls.sni_reset")
    injected = next(e.packet.frame for e in reset.evidence if e.role == "injected")
    assert comments[injected] == ("injected: TTL 64 vs server 47; DF unset vs server set; "
                                  "tls.sni_reset twitter.com; matches test-rst-ttl64")
    dns = next(f for f in result.verdicts.findings if f.technique.value == "dns.injection")
    forged = next(e.packet.frame for e in dns.evidence if e.role == "injected")
    assert "answer 8.7.198.45" in comments[forged]
    # Every input packet is copied, in order, with its time.
    assert written.packets == len(censored_network().frames)


def test_commented_capture_replays_to_the_same_verdicts(analyze: Any, censored_capture: Path,
                                                        tmp_path: Path) -> None:
    result = analyze(censored_capture)
    out = tmp_path / "evidence.pcapng"
    annotate_captures([str(censored_capture)], out, result.verdicts.findings)
    assert verdict_summary(analyze(out)) == verdict_summary(result)
    # Annotating the annotated capture again changes no comment.
    again = tmp_path / "again.pcapng"
    annotate_captures([str(out)], again, analyze(out).verdicts.findings)
    assert _comments(again) == _comments(out)


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_tshark_shows_the_comments(analyze: Any, censored_capture: Path, tmp_path: Path) -> None:
    result = analyze(censored_capture)
    out = tmp_path / "evidence.pcapng"
    annotate_captures([str(censored_capture)], out, result.verdicts.findings)
    shown = subprocess.run(["tshark", "-r", str(out), "-Y", "frame.comment", "-T", "fields",
                            "-e", "frame.number", "-e", "frame.comment"],
                           capture_output=True, text=True, check=True).stdout
    lines = dict(line.split("\t", 1) for line in shown.splitlines() if "\t" in line)
    assert {int(n) for n in lines} == set(_comments(out))
    assert any(text.startswith("injected: TTL 64 vs server 47") for text in lines.values())


def test_multiple_inputs_keep_their_labels(analyze: Any, tmp_path: Path) -> None:
    cap = censored_network()
    half = len(cap.frames) // 2
    first, second = censored_network(), censored_network()
    first.frames, second.frames = cap.frames[:half], cap.frames[half:]
    a = first.write(tmp_path / "a.pcapng")
    b = second.write(tmp_path / "b.pcapng")
    result = analyze(a, b)
    out = tmp_path / "both.pcapng"
    written = annotate_captures([str(a), str(b)], out, result.verdicts.findings)
    assert not written.missing
    labels = {key[0] for key in written.frames}
    assert labels <= {"a.pcapng", "b.pcapng"} and "b.pcapng" in labels
    assert verdict_summary(analyze(out)) == verdict_summary(result)


def test_ethernet_gzip_input_maps_frames(analyze: Any, tmp_path: Path) -> None:
    """Non-IP frames (ARP) are dropped from the raw-IP copy; evidence frames are remapped."""
    src = tmp_path / "ether.pcapng.gz"
    # Explicit MAC addresses: scapy would otherwise resolve them (and could send ARP).
    link = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02", type=0x0800)
    arp = Ether(src="02:00:00:00:00:01", dst="ff:ff:ff:ff:ff:ff", type=0x0806) / ARP(
        hwsrc="02:00:00:00:00:01", psrc="192.0.2.2", hwdst="00:00:00:00:00:00",
        pdst="192.0.2.1")
    with CaptureWriter(src, LINKTYPE_ETHERNET) as out:
        for n, (ts, data) in enumerate(censored_network().frames):
            if n % 4 == 0:
                out.write(ts, bytes(arp))
            out.write(ts, bytes(link) + data)
    result = analyze(src)
    out = tmp_path / "evidence.pcapng"
    written = annotate_captures([str(src)], out, result.verdicts.findings)
    assert not written.missing and written.commented
    comments = _comments(out)
    assert set(comments) == set(written.frames.values())
    assert any(old != new for (_label, old), new in written.frames.items())
    assert verdict_summary(analyze(out)) == verdict_summary(result)


def test_frames_reader_agrees_with_the_capture_reader(censored_capture: Path,
                                                      tmp_path: Path) -> None:
    packed = tmp_path / "copy.pcap.gz"  # classic pcap inside gzip
    with CaptureWriter(packed) as out:
        for ts, data in censored_network().frames:
            out.write(ts, data)
    assert packed.read_bytes()[:2] == b"\x1f\x8b"
    for path in (censored_capture, packed):
        raw = list(iter_ip_frames(path))
        with open_capture(path) as capture:
            decoded = list(capture)
        assert [f.frame for f in raw] == [p.frame for p in decoded]
        assert all(abs(f.ts - p.ts) < 1e-6 for f, p in zip(raw, decoded, strict=True))


def test_mismatched_frame_gets_no_comment(analyze: Any, censored_capture: Path,
                                          tmp_path: Path) -> None:
    result = analyze(censored_capture)
    frames = list(iter_ip_frames(censored_capture))
    # Shift the numbering by one: the bytes at each evidence frame no longer match.
    shifted = [RawFrame(f.frame + 1, f.ts, f.data) for f in frames]
    written = write_evidence(tmp_path / "shifted.pcapng", shifted, result.verdicts.findings)
    assert written.commented < len(evidence_comments(result.verdicts.findings))
    assert written.missing and all("left without comment" in line for line in written.missing)


def test_only_evidence_and_pcapng_names(analyze: Any, censored_capture: Path,
                                        tmp_path: Path) -> None:
    result = analyze(censored_capture)
    frames = list(iter_ip_frames(censored_capture))
    small = write_evidence(tmp_path / "small.pcapng", frames, result.verdicts.findings,
                           only_evidence=True)
    assert small.packets == small.commented == len(evidence_comments(result.verdicts.findings))
    with pytest.raises(InputError):
        write_evidence(tmp_path / "evidence.pcap", frames, result.verdicts.findings)
