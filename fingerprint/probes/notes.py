"""Telling a capture the probe wrote that lost its run notes (issue 13, case 6).

The probe's notes (control answers, the address that runs no resolver, the
confirmation round) live in the pcapng section comment.  A copy converted to
classic pcap, or one written by an older version as `evidence.pcap`, lacks
them, and its replay then disagrees with the live run (every DNS query to the
address that runs no resolver reads as a drop).  Such a capture still shows
whose it is: every HTTP request the probe sends carries its User-Agent.  Only
the first `SCAN_FRAMES` frames are read (the HTTP controls go out in the
sweep's first seconds), so a large capture from another tool costs almost
nothing.
"""

from __future__ import annotations

from pathlib import Path

from fingerprint.analysis.observe import CaptureHints
from fingerprint.capture.reader import open_ip_frames
from fingerprint.errors import CaptureError
from fingerprint.probes.http import USER_AGENT

SCAN_FRAMES = 20_000
MARKER = f"\r\nUser-Agent: {USER_AGENT}\r\n".encode()


def written_by_probe(path: str | Path, scan_frames: int = SCAN_FRAMES) -> bool:
    """Whether one of the capture's first frames is an HTTP request the probe sent."""
    try:
        reader = open_ip_frames(path)
    except CaptureError:
        return False
    try:
        for index, frame in enumerate(reader.ip_frames()):
            if MARKER in frame.data:
                return True
            if index >= scan_frames:
                break
    except CaptureError:
        return False
    finally:
        reader.close()
    return False


def missing_notes_warning(paths: list[str], hints: CaptureHints) -> str | None:
    """One line when a capture the probe wrote is analysed without the probe's notes."""
    if "probe" in hints.raw:
        return None
    written = [p for p in paths if written_by_probe(p)]
    if not written:
        return None
    return (f"{', '.join(written)}: written by `fingerprint probe` but without its run notes "
            "(pcapng section comment; lost in a conversion to pcap or by an older version's "
            "--pcap-out *.pcap): control answers and the address that runs no resolver are "
            "unknown, so verdicts may differ from the live run; analyse the probe's own "
            "pcapng")
