"""Capture writer: pcap or pcapng, optionally gzip-compressed, readable at every moment.

    with CaptureWriter("evidence.pcapng.gz", section_comment=json.dumps(meta)) as out:
        out.write(time.time(), bytes(ip_packet), comment="probe 3, TTL 7")

The format follows the file name unless the caller chooses (`pcapng=True`):
`.pcapng` (or `.pcapng.gz`) writes pcapng with one section and one interface,
anything else classic pcap (microsecond magic, little-endian); a `.gz` suffix
adds gzip.  The probe always asks for pcapng, whatever the name the user gave:
its run notes live in the section comment, and replay needs them.  Comments exist only in
pcapng (SHB and EPB `opt_comment`, which Wireshark shows as frame.comment); a
pcap file drops them.  Each packet is flushed to the OS (gzip with a sync
flush) so a run that is killed leaves a capture that reads up to its last
packet.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from fingerprint import __version__
from fingerprint.capture.dissect import LINKTYPE_RAW
from fingerprint.errors import CaptureError

__all__ = ["SNAPLEN", "CaptureWriter", "name_says_pcapng"]

SNAPLEN = 262144
"""Snapshot length announced in file headers (the largest that tcpdump uses)."""

_PCAP_HEADER = struct.Struct("<IHHiIII")
_PCAP_RECORD = struct.Struct("<IIII")
_BLOCK_HEADER = struct.Struct("<II")
_EPB_FIXED = struct.Struct("<IIIIIII")
_OPTION_HEADER = struct.Struct("<HH")
_PCAPNG_SHB = 0x0A0D0D0A
_PCAPNG_IDB = 1
_PCAPNG_EPB = 6
_OPT_COMMENT = 1
_SHB_USERAPPL = 4


def _option(code: int, value: bytes) -> bytes:
    return _OPTION_HEADER.pack(code, len(value)) + value + b"\0" * (-len(value) & 3)


def _options(options: list[bytes]) -> bytes:
    """Option list with its end-of-options marker (none at all when empty)."""
    return b"".join(options) + b"\0\0\0\0" if options else b""


def _block(block_type: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return _BLOCK_HEADER.pack(block_type, length) + body + struct.pack("<I", length)


def name_says_pcapng(path: str | Path) -> bool:
    """Whether the file name asks for pcapng (`.pcapng`, `.pcapng.gz`)."""
    return str(path).lower().removesuffix(".gz").endswith(".pcapng")


def _ticks(ts: float) -> int:
    """Microseconds since the epoch, rounded (a float's precision is about 0.5 us today)."""
    return round(ts * 1_000_000)


class CaptureWriter:
    """Writes packets of one link type to a pcap or pcapng file (see module docstring).

    `sync=False` skips the per-packet flush, for bulk writers such as the
    benchmarks that do not need a readable file before `close()`.  `pcapng`:
    True or False chooses the format whatever the name; None goes by the name.
    """

    def __init__(self, path: str | Path, linktype: int = LINKTYPE_RAW,
                 section_comment: str | None = None, *, sync: bool = True,
                 pcapng: bool | None = None) -> None:
        self.path = str(path)
        self.linktype = linktype
        name = self.path.lower()
        self.compressed = name.endswith(".gz")
        self.pcapng = name_says_pcapng(self.path) if pcapng is None else pcapng
        self._sync = sync
        self.packets = 0
        try:
            raw: BinaryIO = open(self.path, "wb")
        except OSError as exc:
            raise CaptureError(self.path, f"cannot create: {exc.strerror or exc}") from None
        self._raw = raw
        self._out: BinaryIO | gzip.GzipFile = raw
        if self.compressed:
            # mtime=0 keeps the output reproducible; the name is not recorded.
            self._out = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0)
        if self.pcapng:
            self._write_pcapng_header(section_comment)
        else:
            self._out.write(_PCAP_HEADER.pack(0xA1B2C3D4, 2, 4, 0, 0, SNAPLEN, linktype))
        self._flush()

    def _write_pcapng_header(self, section_comment: str | None) -> None:
        shb_options = [_option(_SHB_USERAPPL, f"fingerprint {__version__}".encode())]
        if section_comment is not None:
            shb_options.insert(0, _option(_OPT_COMMENT, section_comment.encode()))
        # Byte-order magic, version 1.0, section length -1 (not known in advance).
        shb_body = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + _options(shb_options)
        idb_body = struct.pack("<HHI", self.linktype, 0, SNAPLEN)
        self._out.write(_block(_PCAPNG_SHB, shb_body) + _block(_PCAPNG_IDB, idb_body))

    def __enter__(self) -> CaptureWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def write(self, ts: float, data: bytes, comment: str | None = None) -> None:
        """Append one frame captured at `ts` (seconds since the epoch)."""
        if len(data) > SNAPLEN:
            data = data[:SNAPLEN]
        ticks = max(0, _ticks(ts))
        if self.pcapng:
            padding = b"\0" * (-len(data) & 3)
            options = _options([_option(_OPT_COMMENT, comment.encode())]) \
                if comment is not None else b""
            length = 32 + len(data) + len(padding) + len(options)
            self._out.write(b"".join((
                _EPB_FIXED.pack(_PCAPNG_EPB, length, 0, ticks >> 32, ticks & 0xFFFFFFFF, len(data),
                                len(data)),
                data, padding, options, struct.pack("<I", length))))
        else:
            seconds, micros = divmod(ticks, 1_000_000)
            self._out.write(_PCAP_RECORD.pack(seconds, micros, len(data), len(data)) + data)
        self.packets += 1
        if self._sync:
            self._flush()

    def _flush(self) -> None:
        if isinstance(self._out, gzip.GzipFile):
            self._out.flush(zlib.Z_SYNC_FLUSH)
        else:
            self._out.flush()

    def close(self) -> None:
        if self._raw.closed:
            return
        if self._out is not self._raw:
            self._out.close()
        self._raw.close()
