"""Raw IP packets of a capture, numbered as `fingerprint.capture.reader` numbers them.

The analysis keeps only decoded fields; re-emitting the packets a finding
rests on (with comments) needs their bytes, so this is a second, streaming pass
over the same file.  Frame numbers follow the reader: every pcap record, and
every pcapng enhanced, simple or obsolete packet block, counts one frame.  The
link layer is removed (the output is raw IP, LINKTYPE_RAW), and an IPv4/IPv6
packet is cut at the length its header states, dropping link padding.

Formats: pcap as in pcap-savefile(5) (both byte orders, micro/nanosecond
magics, Kuznetzov records); pcapng as in the IETF pcapng draft (if_tsresol,
if_tsoffset, opt_comment); gzip (RFC 1952).  A file that ends early stops the
iteration quietly: the analysis pass already reported it.
"""

from __future__ import annotations

import gzip
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from fingerprint.capture.dissect import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
    LINKTYPE_RAW_BSD12,
    LINKTYPE_RAW_BSD14,
)
from fingerprint.errors import CaptureError

__all__ = ["RawFrame", "ip_packet", "iter_ip_frames"]

_PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1_000_000, 16), b"\xa1\xb2\xc3\xd4": (">", 1_000_000, 16),
    b"\x4d\x3c\xb2\xa1": ("<", 1_000_000_000, 16), b"\xa1\xb2\x3c\x4d": (">", 1_000_000_000, 16),
    b"\x34\xcd\xb2\xa1": ("<", 1_000_000, 24), b"\xa1\xb2\xcd\x34": (">", 1_000_000, 24),
}
_SHB = 0x0A0D0D0A
_IDB = 1
_OPB = 2
_SPB = 3
_EPB = 6
_OPT_COMMENT = 1
_IF_TSRESOL = 9
_IF_TSOFFSET = 14
_VLAN = frozenset({0x8100, 0x88A8, 0x9100, 0x9200})
_RAW_LINKS = frozenset({LINKTYPE_RAW, LINKTYPE_RAW_BSD12, LINKTYPE_RAW_BSD14, LINKTYPE_IPV4,
                        LINKTYPE_IPV6})


@dataclass(slots=True, frozen=True)
class RawFrame:
    """One IP packet with the frame number and time it has in its capture."""

    frame: int
    ts: float
    data: bytes
    """The IP packet, from its IP header on."""
    capture: str | None = None
    """Capture label as the analysis used it (file name when several files are analysed)."""
    comment: str | None = None
    """The packet's pcapng comment in its capture, if any."""


def ip_packet(linktype: int, frame: bytes) -> bytes | None:
    """The IP packet inside a link-layer frame; None when the frame carries no IP."""
    offset: int
    if linktype in _RAW_LINKS:
        offset = 0
    elif linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        offset = 4
    elif linktype in (LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2):
        if linktype == LINKTYPE_ETHERNET:
            type_at, offset = 12, 14
        elif linktype == LINKTYPE_LINUX_SLL:
            type_at, offset = 14, 16
        else:
            type_at, offset = 0, 20
        if len(frame) < offset:
            return None
        ethertype = int.from_bytes(frame[type_at:type_at + 2], "big")
        while ethertype in _VLAN and len(frame) >= offset + 4:
            ethertype = int.from_bytes(frame[offset + 2:offset + 4], "big")
            offset += 4
        if ethertype not in (0x0800, 0x86DD):
            return None
    else:
        return None
    packet = frame[offset:]
    if not packet:
        return None
    version = packet[0] >> 4
    if version == 4 and len(packet) >= 4:
        total = int.from_bytes(packet[2:4], "big")
    elif version == 6 and len(packet) >= 6:
        total = 40 + int.from_bytes(packet[4:6], "big")
    else:
        return None
    return packet[:total] if 0 < total < len(packet) else packet


def _open(path: str) -> BinaryIO:
    try:
        raw: BinaryIO = open(path, "rb")
    except OSError as exc:
        raise CaptureError(path, f"cannot open: {exc.strerror or exc}") from None
    if raw.read(2) == b"\x1f\x8b":
        raw.seek(0)
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    raw.seek(0)
    return raw


def iter_ip_frames(path: str | Path, label: str | None = None) -> Iterator[RawFrame]:
    """Every IP packet of a pcap/pcapng (optionally gzip) capture, in file order."""
    name = str(path)
    stream = _open(name)
    try:
        head = stream.read(4)
        if head in _PCAP_MAGICS:
            yield from _pcap(stream, head, label)
        elif head == struct.pack("<I", _SHB):
            yield from _pcapng(stream, head, label)
        else:
            raise CaptureError(name, "not a pcap or pcapng file")
    except (EOFError, OSError, gzip.BadGzipFile):
        return  # cut short or corrupt compression: the analysis pass reported it
    finally:
        stream.close()


def _pcap(stream: BinaryIO, magic: bytes, label: str | None) -> Iterator[RawFrame]:
    order, ticks, record_length = _PCAP_MAGICS[magic]
    header = stream.read(20)
    if len(header) < 20:
        return
    linktype = struct.unpack_from(order + "I", header, 16)[0] & 0xFFFF
    record = struct.Struct(order + "IIII")
    frame = 0
    while True:
        head = stream.read(record_length)
        if len(head) < record_length:
            return
        seconds, fraction, captured, _ = record.unpack_from(head)
        data = stream.read(captured)
        if len(data) < captured:
            return
        frame += 1
        packet = ip_packet(linktype, data)
        if packet is not None:
            yield RawFrame(frame, seconds + fraction / ticks, packet, label)


def _options(body: bytes, start: int, order: str) -> Iterator[tuple[int, bytes]]:
    pos = start
    while pos + 4 <= len(body):
        code, length = struct.unpack_from(order + "HH", body, pos)
        if code == 0:
            return
        yield code, body[pos + 4:pos + 4 + length]
        pos += 4 + length + (-length & 3)


def _pcapng(stream: BinaryIO, first: bytes, label: str | None) -> Iterator[RawFrame]:
    order = "<"
    interfaces: list[tuple[int, int, float]] = []  # (link type, ticks per second, offset)
    frame = 0
    last_ts = 0.0
    head = first + stream.read(4)
    while len(head) == 8:
        block_type = struct.unpack_from(order + "I", head)[0]
        if block_type == _SHB:
            bom = stream.read(4)
            if len(bom) < 4:
                return
            order = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
            length = struct.unpack_from(order + "I", head, 4)[0]
            body = bom + stream.read(max(0, length - 12))
            interfaces = []
        else:
            length = struct.unpack_from(order + "I", head, 4)[0]
            body = stream.read(max(0, length - 8))
        if length < 12 or len(body) < length - 8:
            return
        body = body[:-4]  # the trailing copy of the block length
        if block_type == _IDB and len(body) >= 8:
            linktype = struct.unpack_from(order + "H", body, 0)[0]
            ticks, offset = 1_000_000, 0.0
            for code, value in _options(body, 8, order):
                if code == _IF_TSRESOL and value:
                    exp = value[0] & 0x7F
                    ticks = 2 ** exp if value[0] & 0x80 else 10 ** exp
                elif code == _IF_TSOFFSET and len(value) == 8:
                    offset = float(struct.unpack_from(order + "q", value)[0])
            interfaces.append((linktype, ticks, offset))
        elif block_type == _EPB and len(body) >= 20:
            frame += 1
            interface, high, low, captured, _ = struct.unpack_from(order + "IIIII", body, 0)
            if interface < len(interfaces):
                linktype, ticks, offset = interfaces[interface]
                last_ts = ((high << 32) | low) / ticks + offset
                data = body[20:20 + captured]
                comment = None
                for code, value in _options(body, 20 + captured + (-captured & 3), order):
                    if code == _OPT_COMMENT:
                        comment = value.decode("utf-8", "replace")
                        break
                packet = ip_packet(linktype, data)
                if packet is not None:
                    yield RawFrame(frame, last_ts, packet, label, comment)
        elif block_type == _SPB and len(body) >= 4:
            frame += 1
            if interfaces:
                packet = ip_packet(interfaces[0][0], body[4:])
                if packet is not None:
                    yield RawFrame(frame, last_ts, packet, label)
        elif block_type == _OPB:
            frame += 1
        head = stream.read(8)
