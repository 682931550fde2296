"""Streaming reader for pcap and pcapng capture files, plain or gzip-compressed.

    with open_capture("run.pcapng.gz") as capture:
        metadata = capture.section_comments
        for packet in capture:
            ...

The file is read in large chunks and parsed with `struct.unpack_from` on the
chunk, so memory stays flat however large the capture is, and each record is
dissected in place (see `dissect.decode_frame`).

Formats: pcap as described by tcpdump's pcap-savefile(5) and the IETF draft
"PCAP Capture File Format" (both byte orders, microsecond and nanosecond
magics, and the Kuznetzov variant with 8 extra bytes per record); pcapng as in
the IETF draft "PCAP Next Generation (pcapng) Capture File Format" (several
sections, per-interface link type, if_tsresol and if_tsoffset, EPB and SPB;
OPB, NRB, ISB, DSB and unknown blocks are skipped).  gzip is RFC 1952.

Faults of the file itself raise `CaptureError` once every packet before the
fault has been yielded.  Packets whose IP header is malformed are skipped and
listed in `CaptureReader.problems`.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from fingerprint.capture.dissect import (
    SUPPORTED_LINKTYPES,
    Problem,
    decode_frame,
    decode_ip_frame,
)
from fingerprint.capture.packet import Packet, RawFrame
from fingerprint.errors import CaptureError

__all__ = ["MAX_RECORD_LENGTH", "CaptureReader", "IpFrameReader", "Problem", "open_capture",
           "open_ip_frames"]

_CHUNK = 1 << 20
MAX_RECORD_LENGTH = 256 * 1024
"""Longer packet records are taken as a sign of a corrupt file (no link type frames that big)."""
_MAX_BLOCK_LENGTH = 16 << 20
"""Non-packet pcapng blocks (name resolution, comments) may be big, but not this big."""
_PROBLEM_LIMIT = 100
_GZIP_MAGIC = b"\x1f\x8b"

_PCAP_MAGICS: dict[bytes, tuple[str, int, int]] = {
    # magic bytes as stored -> (struct byte order, ticks per second, record header length)
    b"\xd4\xc3\xb2\xa1": ("<", 1_000_000, 16),
    b"\xa1\xb2\xc3\xd4": (">", 1_000_000, 16),
    b"\x4d\x3c\xb2\xa1": ("<", 1_000_000_000, 16),
    b"\xa1\xb2\x3c\x4d": (">", 1_000_000_000, 16),
    # Alexey Kuznetzov's patched libpcap: 8 more bytes (ifindex, protocol, type) per record.
    b"\x34\xcd\xb2\xa1": ("<", 1_000_000, 24),
    b"\xa1\xb2\xcd\x34": (">", 1_000_000, 24),
}
_PCAP_HEADER_LENGTH = 24

_PCAPNG_SHB = 0x0A0D0D0A
_PCAPNG_SHB_BYTES = b"\x0a\x0d\x0d\x0a"
_PCAPNG_IDB = 1
_PCAPNG_SPB = 3
_PCAPNG_EPB = 6
_PCAPNG_OPB = 2
_BYTE_ORDER_MAGIC = 0x1A2B3C4D
_OPT_ENDOFOPT = 0
_OPT_COMMENT = 1
_IF_TSRESOL = 9
_IF_TSOFFSET = 14


def open_capture(path: str | Path) -> CaptureReader:
    """Open a pcap or pcapng file (optionally gzip-compressed) for streaming."""
    return CaptureReader(path)


def open_ip_frames(path: str | Path) -> IpFrameReader:
    """Open a capture to copy its IP packets as bytes (same framing and numbering)."""
    return IpFrameReader(path)


def _show_bytes(head: bytes) -> str:
    return repr(head)[2:-1]


class _PlainSource:
    def __init__(self, raw: BinaryIO, path: str) -> None:
        self._raw = raw
        self._path = path
        self.unterminated = False

    def read(self) -> bytes:
        try:
            return self._raw.read(_CHUNK)
        except OSError as exc:
            raise CaptureError(self._path, f"read failed: {exc.strerror or exc}") from None


class _GzipSource:
    """Decompresses chunk by chunk; accepts several members and a stream cut short
    at a flush point (what a killed writer leaves), which it notes in `unterminated`."""

    def __init__(self, raw: BinaryIO, path: str, first: bytes) -> None:
        self._raw = raw
        self._path = path
        self._pending = first
        self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._in_member = False
        self.unterminated = False

    def read(self) -> bytes:
        while True:
            data = self._pending
            if not data:
                try:
                    data = self._raw.read(_CHUNK)
                except OSError as exc:
                    raise CaptureError(self._path, f"read failed: {exc.strerror or exc}") \
                        from None
                if not data:
                    self.unterminated = self._in_member
                    return b""
            if not self._in_member:
                # Between members: tolerate zero padding after the last one.
                data = data.lstrip(b"\0")
                if not data:
                    self._pending = b""
                    continue
            try:
                out = self._inflater.decompress(data, _CHUNK)
            except zlib.error as exc:
                raise CaptureError(self._path, f"corrupt gzip stream ({exc})") from None
            self._in_member = True
            if self._inflater.eof:
                self._pending = self._inflater.unused_data
                self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
                self._in_member = False
            else:
                self._pending = self._inflater.unconsumed_tail
            if out:
                return out


class CaptureReader:
    """Iterator of `Packet` over one capture file; also a context manager.

    Attributes available right after opening: `format` ("pcap" or "pcapng"),
    `compressed`, `section_comments` (pcapng SHB comments; later sections
    append theirs as they are reached).  While and after iterating:
    `frames` (records read), `problems` (the first 100 skipped malformed
    packets) and `problem_count` (all of them).
    """

    _decode = staticmethod(decode_frame)
    """Turns one record into what the iterator yields (or a Problem, or None to skip)."""
    _record_class: type = Packet

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.section_comments: list[str] = []
        self.problems: list[Problem] = []
        self.problem_count = 0
        self.frames = 0
        self.compressed = False
        self.format = ""
        self.linktypes: dict[int, int] = {}
        """pcap: {0: link type}; pcapng: interface index in the current section -> link type
        (filled in as the interface blocks are reached while iterating)."""
        self._buf = b""
        self._pos = 0
        self._origin = 0
        """File (or decompressed stream) offset of self._buf[0], for error messages."""
        self._order = "<"
        self._interfaces: list[tuple[int, int, int, int]] = []
        """pcapng interfaces of the current section: (link type, ticks/s, ts offset, snaplen)."""
        try:
            self._raw: BinaryIO = open(self.path, "rb")
        except OSError as exc:
            raise CaptureError(self.path, f"cannot open: {exc.strerror or exc}") from None
        try:
            self._packets = self._start()
        except BaseException:
            self._raw.close()
            raise

    # -- context manager / iterator -------------------------------------------------

    def __enter__(self) -> CaptureReader:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __iter__(self) -> Iterator[Packet]:
        return self._packets

    def __next__(self) -> Packet:
        return next(self._packets)

    def close(self) -> None:
        self._raw.close()

    # -- shared helpers ---------------------------------------------------------------

    def _note(self, problem: Problem) -> None:
        self.problem_count += 1
        if len(self.problems) < _PROBLEM_LIMIT:
            self.problems.append(problem)

    def _fill(self, need: int) -> bool:
        """Make at least `need` bytes available after self._pos; False at end of file."""
        while len(self._buf) - self._pos < need:
            chunk = self._source.read()
            if not chunk:
                return False
            self._origin += self._pos
            self._buf = self._buf[self._pos:] + chunk
            self._pos = 0
        return True

    def _start(self) -> Iterator[Packet]:
        try:
            head = self._raw.read(_CHUNK)
            while 0 < len(head) < 4:  # only short reads (pipes, tiny chunks) get here
                more = self._raw.read(_CHUNK)
                if not more:
                    break
                head += more
        except OSError as exc:
            raise CaptureError(self.path, f"read failed: {exc.strerror or exc}") from None
        if not head:
            raise CaptureError(self.path, "empty file")
        self._source: _PlainSource | _GzipSource
        if head.startswith(_GZIP_MAGIC):
            self.compressed = True
            self._source = _GzipSource(self._raw, self.path, head)
            self._buf = b""
        else:
            self._source = _PlainSource(self._raw, self.path)
            self._buf = head
        self._pos = 0
        self._origin = 0
        self._fill(_PCAP_HEADER_LENGTH)
        start = self._buf[:4]
        inside = "gzip content " if self.compressed else ""
        if not start:
            raise CaptureError(self.path, "gzip stream holds no data")
        if start in _PCAP_MAGICS:
            return self._start_pcap()
        if start == _PCAPNG_SHB_BYTES:
            self.format = "pcapng"
            if len(self._buf) < 12:
                raise CaptureError(self.path, f"truncated file header ({len(self._buf)} of 28 "
                                              f"bytes)")
            self._section_header()
            return self._iter_pcapng()
        if len(start) < 4:
            raise CaptureError(self.path, f"truncated file header ({len(start)} bytes: "
                                          f"'{_show_bytes(start)}')")
        raise CaptureError(self.path, f"not a pcap or pcapng file ({inside}starts with "
                                      f"'{_show_bytes(self._buf[:8])}')")

    # -- pcap -------------------------------------------------------------------------

    def _start_pcap(self) -> Iterator[Packet]:
        self.format = "pcap"
        if len(self._buf) < _PCAP_HEADER_LENGTH:
            raise CaptureError(self.path, f"truncated file header ({len(self._buf)} of "
                                          f"{_PCAP_HEADER_LENGTH} bytes)")
        order, ticks, record_length = _PCAP_MAGICS[self._buf[:4]]
        snaplen, network = struct.unpack_from(order + "II", self._buf, 16)
        # The upper bits of the link-type field carry FCS information.
        linktype = network & 0xFFFF
        if linktype not in SUPPORTED_LINKTYPES:
            raise CaptureError(self.path, f"link type {linktype} is not supported")
        self.linktypes = {0: linktype}
        self._pos = _PCAP_HEADER_LENGTH
        return self._iter_pcap(order, ticks, record_length, snaplen, linktype)

    def _iter_pcap(self, order: str, ticks: int, header_length: int, snaplen: int,
                   linktype: int) -> Iterator[Packet]:
        path = self.path
        read = self._source.read
        record = struct.Struct(order + "IIII").unpack_from
        decode = self._decode
        packet_class = self._record_class
        buf = self._buf
        pos = self._pos
        size = len(buf)
        frame = 0
        # A record may exceed a small snaplen a little (some writers ignore it),
        # but a length beyond both bounds means the file is corrupt.
        limit = MAX_RECORD_LENGTH if snaplen == 0 else \
            min(MAX_RECORD_LENGTH, max(2 * snaplen, 65535 + 4096))
        while True:
            if size - pos < header_length:
                chunk = read()
                if chunk:
                    buf = buf[pos:] + chunk
                    size = len(buf)
                    pos = 0
                    continue
                self.frames = frame
                if size == pos:
                    self._end_of_stream(frame)
                    return
                raise CaptureError(path, f"record header truncated (file ends "
                                         f"{header_length - (size - pos)} bytes early)", frame + 1)
            seconds, fraction, captured, _ = record(buf, pos)
            frame += 1
            if captured > limit:
                self.frames = frame - 1
                raise CaptureError(path, f"record length {captured} is absurd (snaplen "
                                         f"{snaplen}, limit {limit})", frame)
            start = pos + header_length
            stop = start + captured
            while stop > size:
                chunk = read()
                if not chunk:
                    self.frames = frame - 1
                    raise CaptureError(path, f"record truncated (file ends {stop - size} bytes "
                                             f"early)", frame)
                buf = buf[pos:] + chunk
                size = len(buf)
                start -= pos
                stop -= pos
                pos = 0
            result = decode(frame, seconds + fraction / ticks, linktype, buf, start, stop)
            pos = stop
            if result is not None:
                if result.__class__ is packet_class:
                    yield result  # type: ignore[misc]
                else:
                    self._note(result)  # type: ignore[arg-type]

    def _end_of_stream(self, frame: int) -> None:
        if self._source.unterminated:
            self._note(Problem(0, f"gzip stream ends without its trailer after {frame} packets "
                                  f"(the writer was interrupted?); every complete packet was "
                                  f"read"))

    # -- pcapng -----------------------------------------------------------------------

    def _offset(self) -> int:
        return self._origin + self._pos

    def _section_header(self) -> None:
        """Parse the SHB at self._pos (at least 12 bytes are buffered)."""
        magic = self._buf[self._pos + 8:self._pos + 12]
        if magic == b"\x4d\x3c\x2b\x1a":
            self._order = "<"
        elif magic == b"\x1a\x2b\x3c\x4d":
            self._order = ">"
        else:
            raise CaptureError(self.path, f"pcapng section header at offset {self._offset()}: "
                                          f"bad byte-order magic '{_show_bytes(magic)}'")
        length = struct.unpack_from(self._order + "I", self._buf, self._pos + 4)[0]
        body = self._block(_PCAPNG_SHB, length, 28)
        major = struct.unpack_from(self._order + "H", self._buf, body + 4)[0]
        if major != 1:
            raise CaptureError(self.path, f"pcapng version {major} is not supported")
        for code, value in self._options(body + 16, self._pos + length - 4):
            if code == _OPT_COMMENT:
                self.section_comments.append(value.decode("utf-8", "replace"))
        self._interfaces = []
        self.linktypes = {}
        self._pos += length

    def _block(self, block_type: int, length: int, minimum: int) -> int:
        """Check a block's length fields and buffer it; return the offset of its body."""
        if length < minimum or length % 4:
            raise self._block_error(block_type, f"bad block length {length}")
        if length > _MAX_BLOCK_LENGTH:
            raise self._block_error(block_type, f"absurd block length {length}")
        if len(self._buf) - self._pos < length and not self._fill(length):
            missing = length - (len(self._buf) - self._pos)
            raise self._block_error(block_type, f"block truncated (file ends {missing} bytes "
                                                f"early)")
        trailer = struct.unpack_from(self._order + "I", self._buf, self._pos + length - 4)[0]
        if trailer != length:
            raise self._block_error(block_type, f"bad block length (leading {length}, "
                                                f"trailing {trailer})")
        return self._pos + 8

    def _block_error(self, block_type: int, message: str) -> CaptureError:
        return CaptureError(self.path, f"pcapng block at offset {self._offset()} "
                                       f"(type {block_type:#x}): {message}")

    def _options(self, start: int, end: int) -> Iterator[tuple[int, bytes]]:
        """Options in buf[start:end]; a malformed option list just ends early."""
        buf = self._buf
        header = struct.Struct(self._order + "HH").unpack_from
        while start + 4 <= end:
            code, length = header(buf, start)
            if code == _OPT_ENDOFOPT:
                return
            value_end = start + 4 + length
            if value_end > end:
                return
            yield code, buf[start + 4:value_end]
            start = value_end + (-length & 3)

    def _first_comment(self, start: int, end: int) -> str | None:
        """The first comment option in buf[start:end] (a packet block's), if any."""
        for code, value in self._options(start, end):
            if code == _OPT_COMMENT:
                return value.decode("utf-8", "replace")
        return None

    def _interface(self) -> None:
        body = self._pos + 8
        length = struct.unpack_from(self._order + "I", self._buf, self._pos + 4)[0]
        linktype, _, snaplen = struct.unpack_from(self._order + "HHI", self._buf, body)
        ticks = 1_000_000
        offset = 0
        for code, value in self._options(body + 8, self._pos + length - 4):
            if code == _IF_TSRESOL and len(value) >= 1:
                exponent = value[0] & 0x7F
                ticks = 2 ** exponent if value[0] & 0x80 else 10 ** exponent
            elif code == _IF_TSOFFSET and len(value) >= 8:
                offset = struct.unpack_from(self._order + "q", value)[0]
        index = len(self._interfaces)
        if linktype not in SUPPORTED_LINKTYPES:
            self._note(Problem(0, f"interface {index} has link type {linktype}, which is not "
                                  f"supported: its packets are skipped"))
        self._interfaces.append((linktype, ticks or 1, offset, snaplen))
        self.linktypes[index] = linktype

    def _iter_pcapng(self) -> Iterator[Packet]:
        path = self.path
        decode = self._decode
        packet_class = self._record_class
        frame = 0
        last_ts = 0.0
        while True:
            # Fast path: whole, well-formed EPBs already in the buffer.  Anything
            # else (other blocks, a block that needs a refill, any fault) falls
            # through to the general code below, which handles one block.
            buf = self._buf
            pos = self._pos
            size = len(buf)
            order = self._order
            # Block header and EPB fields in one unpack (garbage for other block
            # types, which the type test then sends to the general code).
            epb_head = struct.Struct(order + "IIIIIII").unpack_from
            trailer = struct.Struct(order + "I").unpack_from
            interfaces = self._interfaces
            while size - pos >= 32:
                block_type, length, interface, high, low, captured, _ = epb_head(buf, pos)
                if block_type != _PCAPNG_EPB or length < 32 or length & 3 \
                        or pos + length > size or trailer(buf, pos + length - 4)[0] != length:
                    break
                data = pos + 28
                options = data + captured + (-captured & 3)
                block_end = pos + length - 4
                if captured > MAX_RECORD_LENGTH or options > block_end \
                        or interface >= len(interfaces):
                    break
                frame += 1
                pos += length
                linktype, ticks, ts_offset, _ = interfaces[interface]
                last_ts = ((high << 32) | low) / ticks + ts_offset
                result = decode(frame, last_ts, linktype, buf, data, data + captured)
                if result is None:
                    continue
                if result.__class__ is not packet_class:
                    self._note(result)  # type: ignore[arg-type]
                    continue
                if options < block_end:
                    self._buf = buf
                    result.comment = self._first_comment(options, block_end)  # type: ignore[union-attr]
                yield result  # type: ignore[misc]
            self._pos = pos
            if not self._fill(12):
                left = len(self._buf) - self._pos
                self.frames = frame
                if left == 0:
                    self._end_of_stream(frame)
                    return
                raise CaptureError(path, f"pcapng block at offset {self._offset()}: block "
                                         f"header truncated (file ends {12 - left} bytes early)")
            buf = self._buf
            pos = self._pos
            order = self._order
            block_type, length = struct.unpack_from(order + "II", buf, pos)
            if block_type == _PCAPNG_EPB:
                self._block(block_type, length, 32)
                buf = self._buf
                pos = self._pos
                interface, high, low, captured, _ = struct.unpack_from(order + "IIIII", buf,
                                                                       pos + 8)
                frame += 1
                if captured > MAX_RECORD_LENGTH:
                    self.frames = frame - 1
                    raise CaptureError(path, f"record length {captured} is absurd", frame)
                data = pos + 28
                options = data + captured + (-captured & 3)
                block_end = pos + length - 4
                if options > block_end:
                    self.frames = frame - 1
                    raise CaptureError(path, f"captured length {captured} overruns its "
                                             f"{length}-byte block", frame)
                self._pos = pos + length
                if interface >= len(self._interfaces):
                    self._note(Problem(frame, f"packet block names interface {interface}, but "
                                              f"the section defines {len(self._interfaces)}"))
                    continue
                linktype, ticks, ts_offset, _ = self._interfaces[interface]
                last_ts = ((high << 32) | low) / ticks + ts_offset
                result = decode(frame, last_ts, linktype, buf, data, data + captured)
                if result is None:
                    continue
                if result.__class__ is not packet_class:
                    self._note(result)  # type: ignore[arg-type]
                    continue
                if options < block_end:
                    result.comment = self._first_comment(options, block_end)  # type: ignore[union-attr]
                yield result  # type: ignore[misc]
            elif block_type == _PCAPNG_SHB:
                self._section_header()
            elif block_type == _PCAPNG_IDB:
                self._block(block_type, length, 20)
                self._interface()
                self._pos += length
            elif block_type == _PCAPNG_SPB:
                self._block(block_type, length, 16)
                buf = self._buf
                pos = self._pos
                frame += 1
                self._pos = pos + length
                if not self._interfaces:
                    self._note(Problem(frame, "simple packet block before any interface block"))
                    continue
                linktype, _, _, snaplen = self._interfaces[0]
                original = struct.unpack_from(order + "I", buf, pos + 8)[0]
                captured = min(original, length - 16)
                if snaplen:
                    captured = min(captured, snaplen)
                # An SPB has no timestamp: it gets the previous packet's.
                result = decode(frame, last_ts, linktype, buf, pos + 12, pos + 12 + captured)
                if result is None:
                    continue
                if result.__class__ is not packet_class:
                    self._note(result)  # type: ignore[arg-type]
                    continue
                yield result  # type: ignore[misc]
            else:
                self._block(block_type, length, 12)
                if block_type == _PCAPNG_OPB:
                    # Obsolete packet block: not decoded, but it is a frame for Wireshark,
                    # so it keeps the numbering aligned with tshark's frame.number.
                    frame += 1
                self._pos += length



class IpFrameReader(CaptureReader):
    """The same reader, yielding each frame's IP packet as bytes (`RawFrame`), undissected."""

    _decode = staticmethod(decode_ip_frame)  # type: ignore[assignment]
    _record_class = RawFrame

    def ip_frames(self) -> Iterator[RawFrame]:
        return self._packets  # type: ignore[return-value]
