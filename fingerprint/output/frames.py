"""Raw IP packets of a capture, numbered exactly as the analysis numbered them.

The analysis keeps only decoded fields; re-emitting the packets a finding
rests on (with comments) needs their bytes, so this is a second, streaming pass
over the same file with the same reader (`capture.reader.IpFrameReader`): same
formats, framing and frame numbers.  The link layer is removed (the output is
raw IP, LINKTYPE_RAW) and each packet is cut at the length its IP header
states.  A file that ends early stops the iteration quietly: the analysis pass
already reported it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from fingerprint.capture.packet import RawFrame
from fingerprint.capture.reader import open_ip_frames
from fingerprint.errors import CaptureError

__all__ = ["RawFrame", "iter_ip_frames"]


def iter_ip_frames(path: str | Path, label: str | None = None) -> Iterator[RawFrame]:
    """Every IP packet of a pcap/pcapng (optionally gzip) capture, in file order."""
    reader = open_ip_frames(path)
    with reader:
        try:
            for frame in reader.ip_frames():
                frame.capture = label
                yield frame
        except CaptureError:
            return
