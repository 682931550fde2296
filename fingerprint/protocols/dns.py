"""DNS messages (RFC 1035, AAAA from RFC 3596), parsed from the wire.

Only what censorship analysis needs: header flags, the question, and answer
records (A, AAAA, CNAME kept as text; other types kept as their type number).
Name decompression refuses forward and looping pointers, so a crafted message
costs bounded work.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

TYPE_A = 1
TYPE_CNAME = 5
TYPE_AAAA = 28
TYPE_NAMES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA",
              33: "SRV", 64: "SVCB", 65: "HTTPS"}
RCODE_NAMES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}

FLAG_QR = 0x8000
FLAG_AA = 0x0400
FLAG_TC = 0x0200
FLAG_RD = 0x0100
FLAG_RA = 0x0080

_MAX_RECORDS = 64
_MAX_POINTER_JUMPS = 32
_HEADER = struct.Struct("!HHHHHH").unpack_from
_QUESTION_TAIL = struct.Struct("!HH").unpack_from
_RECORD_HEADER = struct.Struct("!HHIH").unpack_from
_QNAME_POINTER = b"\xc0\x0c"
"""A compression pointer to offset 12: the question's name, as most answers spell theirs."""


@dataclass(frozen=True, slots=True)
class DnsRecord:
    name: str
    rtype: int
    ttl: int
    value: str
    """Address for A/AAAA, target for CNAME, hex for anything else."""

    @property
    def type_name(self) -> str:
        return TYPE_NAMES.get(self.rtype, str(self.rtype))


@dataclass(frozen=True, slots=True)
class DnsMessage:
    txid: int
    flags: int
    qname: str
    qtype: int
    answers: tuple[DnsRecord, ...]
    answer_count: int
    """ANCOUNT as the header says (answers may hold fewer if the message was cut)."""

    @property
    def is_response(self) -> bool:
        return bool(self.flags & FLAG_QR)

    @property
    def rcode(self) -> int:
        return self.flags & 0x000F

    @property
    def rcode_name(self) -> str:
        return RCODE_NAMES.get(self.rcode, str(self.rcode))

    @property
    def addresses(self) -> tuple[str, ...]:
        return tuple(r.value for r in self.answers if r.rtype in (TYPE_A, TYPE_AAAA))

    @property
    def cnames(self) -> tuple[str, ...]:
        """CNAME targets of the answer, in the order the records chain (lower case)."""
        return tuple(r.value.lower().rstrip(".") for r in self.answers if r.rtype == TYPE_CNAME)

    def flags_text(self) -> str:
        names = [("qr", FLAG_QR), ("aa", FLAG_AA), ("tc", FLAG_TC), ("rd", FLAG_RD), ("ra", FLAG_RA)]
        return " ".join(n for n, bit in names if self.flags & bit)


class _Malformed(Exception):
    pass


def _read_name(data: bytes, offset: int) -> tuple[str, int]:
    """Return (name, offset after the name in the original position)."""
    labels: list[str] = []
    jumps = 0
    end: int | None = None
    pos = offset
    total = 0
    while True:
        if pos >= len(data):
            raise _Malformed("name runs past the message")
        length = data[pos]
        if length & 0xC0 == 0xC0:
            if pos + 1 >= len(data):
                raise _Malformed("truncated compression pointer")
            target = ((length & 0x3F) << 8) | data[pos + 1]
            if end is None:
                end = pos + 2
            jumps += 1
            # Pointers must go backwards; a bound on jumps also stops loops.
            if target >= pos or jumps > _MAX_POINTER_JUMPS:
                raise _Malformed("compression pointer loop")
            pos = target
            continue
        if length & 0xC0:
            raise _Malformed("unsupported label type")
        pos += 1
        if length == 0:
            break
        if pos + length > len(data):
            raise _Malformed("label runs past the message")
        total += length + 1
        if total > 255:
            raise _Malformed("name longer than 255 bytes")
        labels.append(data[pos:pos + length].decode("ascii", "backslashreplace").lower())
        pos += length
    return ".".join(labels), (end if end is not None else pos)


def parse_dns(data: bytes) -> DnsMessage | None:
    """Parse a DNS message; None when it is not one (or is malformed)."""
    try:
        return _parse(data)
    except (_Malformed, struct.error, ValueError, OSError):
        return None


def _parse(data: bytes) -> DnsMessage:
    if len(data) < 12:
        raise _Malformed("shorter than a DNS header")
    txid, flags, qdcount, ancount, _ns, _ar = _HEADER(data, 0)
    if qdcount != 1:
        raise _Malformed("not exactly one question")
    qname, pos = _read_name(data, 12)
    # Answers usually repeat the question's name, as a pointer or spelled out: the same
    # bytes decode to the same name (pointers are absolute), so it is not read again.
    qname_wire = data[12:pos]
    qtype, _qclass = _QUESTION_TAIL(data, pos)
    pos += 4
    answers: list[DnsRecord] = []
    for _ in range(min(ancount, _MAX_RECORDS)):
        if pos >= len(data):
            break
        if data.startswith(_QNAME_POINTER, pos):
            name = qname
            pos += 2
        elif data.startswith(qname_wire, pos):
            name = qname
            pos += len(qname_wire)
        else:
            name, pos = _read_name(data, pos)
        rtype, _rclass, ttl, rdlength = _RECORD_HEADER(data, pos)
        pos += 10
        rdata = data[pos:pos + rdlength]
        if len(rdata) < rdlength:
            raise _Malformed("record data runs past the message")
        if rtype == TYPE_A and rdlength == 4:
            value = socket.inet_ntop(socket.AF_INET, rdata)
        elif rtype == TYPE_AAAA and rdlength == 16:
            value = socket.inet_ntop(socket.AF_INET6, rdata)
        elif rtype == TYPE_CNAME:
            value, _ = _read_name(data, pos)
        else:
            value = rdata[:64].hex()
        answers.append(DnsRecord(name, rtype, ttl, value))
        pos += rdlength
    return DnsMessage(txid, flags, qname, qtype, tuple(answers), ancount)


def build_query(qname: str, qtype: int = TYPE_A, txid: int = 0, recursion: bool = True) -> bytes:
    """Wire bytes of a one-question query (used by probes and fixtures)."""
    header = struct.pack("!HHHHHH", txid, FLAG_RD if recursion else 0, 1, 0, 0, 0)
    labels = b"".join(bytes([len(p)]) + p.encode("ascii") for p in qname.rstrip(".").split(".") if p)
    return header + labels + b"\x00" + struct.pack("!HH", qtype, 1)
