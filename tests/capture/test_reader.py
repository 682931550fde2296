"""open_capture(): pcap/pcapng/gzip detection, streaming, and every file-level fault.

Captures are written by scapy (wrpcap, RawPcapWriter, PcapNgWriter) or built
block by block here, then checked against scapy's rdpcap.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import pytest
from scapy.layers.dns import DNS, DNSQR
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import CookedLinux, Dot1Q, Ether, Loopback
from scapy.packet import Packet as ScapyPacket
from scapy.utils import PcapNgWriter, RawPcapWriter, rdpcap, wrpcap

from fingerprint.capture import reader as reader_module
from fingerprint.capture.dissect import (
    LINKTYPE_ETHERNET,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
)
from fingerprint.capture.packet import Packet
from fingerprint.capture.reader import open_capture
from fingerprint.errors import CaptureError

MAC_A = "02:00:00:00:00:01"
MAC_B = "02:00:00:00:00:02"
CLIENT = "192.0.2.10"
SERVER = "203.0.113.7"


def ip_packets() -> list[ScapyPacket]:
    return [
        IP(src=CLIENT, dst="198.51.100.53", id=11) / UDP(sport=40001, dport=53) /
        DNS(id=3, qd=DNSQR(qname="example.com")),
        IP(src=CLIENT, dst=SERVER, flags="DF", id=12) / TCP(sport=50000, dport=443, flags="S",
                                                            seq=10),
        IP(src=SERVER, dst=CLIENT, ttl=27, id=0) / TCP(sport=443, dport=50000, flags="R", seq=1),
        IP(src="198.51.100.1", dst=CLIENT) / ICMP(type=11) /
        bytes(IP(src=CLIENT, dst=SERVER, ttl=1) / TCP(sport=50000, dport=443))[:28],
        IPv6(src="2001:db8::10", dst="2001:db8::7") / TCP(sport=50001, dport=443, flags="S"),
    ]


def read_all(path: Path) -> list[Packet]:
    with open_capture(path) as capture:
        return list(capture)


def assert_matches_rdpcap(path: Path, packets: list[Packet]) -> None:
    """Same count, timestamps and IP fields as scapy's own reading of the file."""
    reference = rdpcap(str(path))
    assert len(packets) == len(reference)
    for ours, theirs in zip(packets, reference, strict=True):
        assert ours.ts == pytest.approx(float(theirs.time), abs=1e-6)
        ip = theirs[IP] if IP in theirs else theirs[IPv6]
        assert (ours.src, ours.dst) == (ip.src, ip.dst)
        assert ours.ttl == (ip.ttl if IP in theirs else ip.hlim)
        if TCP in theirs and ours.quoted is None:
            assert (ours.sport, ours.dport, ours.seq) == (theirs[TCP].sport, theirs[TCP].dport,
                                                          theirs[TCP].seq)


def with_times(frames: list[ScapyPacket], start: float = 1700000000.0) -> list[ScapyPacket]:
    for index, frame in enumerate(frames):
        frame.time = start + index * 0.125 + 0.000001
    return frames


# -- formats ------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["pcap", "pcap.gz"])
def test_wrpcap_ethernet_with_vlan(tmp_path: Path, suffix: str) -> None:
    frames = with_times([Ether(src=MAC_A, dst=MAC_B) / packet for packet in ip_packets()] +
                        [Ether(src=MAC_A, dst=MAC_B) / Dot1Q(vlan=4) / ip_packets()[1]])
    path = tmp_path / f"eth.{suffix}"
    wrpcap(str(path), frames, gz=suffix.endswith(".gz"))
    packets = read_all(path)
    assert_matches_rdpcap(path, packets)
    assert [packet.frame for packet in packets] == list(range(1, len(frames) + 1))
    assert packets[3].quoted is not None and packets[3].quoted.dport == 443


@pytest.mark.parametrize(("linktype", "frame"), [
    (LINKTYPE_RAW, lambda packet: bytes(packet)),
    (LINKTYPE_LINUX_SLL, lambda packet: bytes(CookedLinux(pkttype=0, lladdrtype=1, lladdrlen=6,
                                                          src=b"\x02" * 6 + b"\0\0") / packet)),
    (LINKTYPE_LINUX_SLL2, lambda packet: struct.pack(
        "!HHIHBB8s", 0x86DD if isinstance(packet, IPv6) else 0x0800, 0, 2, 1, 0, 6,
        b"\x02" * 6 + b"\0\0") + bytes(packet)),
    (LINKTYPE_NULL, lambda packet: bytes(Loopback(type=24 if isinstance(packet, IPv6) else 2) /
                                         packet)),
])
@pytest.mark.parametrize("endianness", ["<", ">"])
@pytest.mark.parametrize("nano", [False, True])
def test_raw_pcap_link_types_byte_orders_and_nanoseconds(
        tmp_path: Path, linktype: int, frame: object, endianness: str, nano: bool) -> None:
    path = tmp_path / "link.pcap"
    writer = RawPcapWriter(str(path), linktype=linktype, endianness=endianness, nano=nano)
    writer.linktype = linktype  # scapy drops a falsy link type (NULL is 0)
    writer.write_header(None)
    times = []
    for index, packet in enumerate(ip_packets()):
        seconds, fraction = 1700000000 + index, 123456789 if nano else 123456
        writer.write_packet(frame(packet), sec=seconds,  # type: ignore[operator]
                            usec=fraction)
        times.append(seconds + fraction / (1e9 if nano else 1e6))
    writer.close()
    with open_capture(path) as capture:
        assert capture.format == "pcap"
        assert capture.linktypes == {0: linktype}
        packets = list(capture)
    assert [packet.ts for packet in packets] == times
    expected = ip_packets()
    assert [(packet.src, packet.dst) for packet in packets] == \
        [(packet[IP].src, packet[IP].dst) if IP in packet else
         (packet[IPv6].src, packet[IPv6].dst) for packet in expected]


def test_pcapng_from_scapy_with_interfaces_and_comments(tmp_path: Path) -> None:
    path = tmp_path / "scapy.pcapng"
    ether = Ether(src=MAC_A, dst=MAC_B) / ip_packets()[0]
    ether.sniffed_on = "eth0"
    ether.comments = [b"the query"]
    raw = ip_packets()[2]
    raw.sniffed_on = "tun0"
    frames = with_times([ether, raw])
    writer = PcapNgWriter(str(path))
    for frame in frames:
        writer.write(frame)
    writer.close()
    packets = read_all(path)
    assert_matches_rdpcap(path, packets)
    assert packets[0].comment == "the query"
    assert packets[1].comment is None
    assert packets[1].tcp_flags == 0x04


# -- pcapng built block by block --------------------------------------------------------


def option(order: str, code: int, value: bytes) -> bytes:
    return struct.pack(order + "HH", code, len(value)) + value + b"\0" * (-len(value) & 3)


def block(order: str, block_type: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack(order + "II", block_type, length) + body + struct.pack(order + "I", length)


def shb(order: str, comments: list[str] = ()) -> bytes:  # type: ignore[assignment]
    options = b"".join(option(order, 1, text.encode()) for text in comments)
    if options:
        options += b"\0\0\0\0"
    return block(order, 0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1) + options)


def idb(order: str, linktype: int, tsresol: int | None = None, tsoffset: int = 0) -> bytes:
    options = b""
    if tsresol is not None:
        options += option(order, 9, bytes([tsresol]))
    if tsoffset:
        options += option(order, 14, struct.pack(order + "q", tsoffset))
    if options:
        options += b"\0\0\0\0"
    return block(order, 1, struct.pack(order + "HHI", linktype, 0, 0) + options)


def epb(order: str, interface: int, ticks: int, data: bytes, comment: str | None = None) -> bytes:
    body = struct.pack(order + "IIIII", interface, ticks >> 32, ticks & 0xFFFFFFFF, len(data),
                       len(data)) + data + b"\0" * (-len(data) & 3)
    if comment is not None:
        body += option(order, 1, comment.encode()) + b"\0\0\0\0"
    return block(order, 6, body)


def spb(order: str, data: bytes) -> bytes:
    return block(order, 3, struct.pack(order + "I", len(data)) + data + b"\0" * (-len(data) & 3))


def handmade_pcapng() -> tuple[bytes, list[tuple[float, str | None, str]]]:
    """Two sections of opposite byte orders, three interfaces, SPB, skipped blocks."""
    packets = [bytes(packet) for packet in ip_packets()]
    ether = bytes(Ether(src=MAC_A, dst=MAC_B) / ip_packets()[1])
    data = (
        shb("<", ['{"probe": "tls.sni", "run": 1}']) +
        idb("<", LINKTYPE_RAW) +                               # microseconds (default)
        idb("<", LINKTYPE_ETHERNET, tsresol=9) +               # nanoseconds
        idb("<", LINKTYPE_RAW, tsresol=0x80 | 10, tsoffset=100) +  # 2^-10 s, +100 s
        block("<", 4, b"\0\0\0\0") +                           # NRB, skipped
        epb("<", 0, 1700000000_250000, packets[0], comment="dns query") +
        block("<", 5, struct.pack("<III", 0, 0, 0)) +          # ISB, skipped
        epb("<", 1, 1700000001_000000500, ether) +
        epb("<", 2, 1024 * 7 + 512, packets[2]) +
        block("<", 0x99, b"unknown\0") +                       # unknown type, skipped
        spb("<", packets[3]) +
        shb(">", ["second section"]) +
        idb(">", LINKTYPE_RAW) +
        epb(">", 0, 1700000005_000001, packets[4], comment="v6") +
        block(">", 0x0A, b"\0" * 8)                            # DSB, skipped
    )
    expected = [
        (1700000000.25, "dns query", CLIENT),
        (1700000001.0000005, None, CLIENT),
        (107.5, None, SERVER),
        (107.5, None, "198.51.100.1"),    # SPB: previous packet's timestamp
        (1700000005.000001, "v6", "2001:db8::10"),
    ]
    return data, expected


@pytest.mark.parametrize("compress", [False, True])
def test_handmade_pcapng_sections_resolutions_and_skipped_blocks(
        tmp_path: Path, compress: bool) -> None:
    data, expected = handmade_pcapng()
    path = tmp_path / "handmade.pcapng"
    path.write_bytes(gzip.compress(data) if compress else data)
    with open_capture(path) as capture:
        assert capture.format == "pcapng" and capture.compressed is compress
        assert capture.section_comments == ['{"probe": "tls.sni", "run": 1}']
        packets = list(capture)
        assert capture.section_comments == ['{"probe": "tls.sni", "run": 1}', "second section"]
        assert capture.problems == []
        assert capture.frames == 5
    assert [(packet.ts, packet.comment, packet.src) for packet in packets] == expected
    assert [packet.frame for packet in packets] == [1, 2, 3, 4, 5]
    assert packets[3].quoted is not None


def test_tshark_agrees_on_handmade_pcapng(tmp_path: Path) -> None:
    tshark = pytest.importorskip("shutil").which("tshark")
    if tshark is None:
        pytest.skip("tshark is not installed")
    import subprocess

    data, expected = handmade_pcapng()
    path = tmp_path / "handmade.pcapng"
    path.write_bytes(data)
    result = subprocess.run([tshark, "-n", "-r", str(path), "-T", "fields", "-e", "ip.src",
                             "-e", "ipv6.src", "-e", "frame.comment"],
                            capture_output=True, text=True, check=True)
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert [(row[0] or row[1]).split(",")[0] for row in rows] == \
        [source for _, _, source in expected]
    assert [row[2] or None for row in rows] == [comment for _, comment, _ in expected]


# -- streaming --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["stream.pcap", "stream.pcapng", "stream.pcapng.gz"])
def test_tiny_read_chunks_give_the_same_packets(tmp_path: Path, name: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Records straddling every possible chunk boundary decode the same."""
    frames = with_times([Ether(src=MAC_A, dst=MAC_B) / ip_packets()[index % 5]
                         for index in range(40)])
    path = tmp_path / name
    if name.endswith(".pcap"):
        wrpcap(str(path), frames)
    else:
        data, _ = handmade_pcapng()
        path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    normal = [packet.describe() for packet in read_all(path)]
    for chunk in (1, 7, 64):
        monkeypatch.setattr(reader_module, "_CHUNK", chunk)
        assert [packet.describe() for packet in read_all(path)] == normal
    assert len(normal) in (40, 5)


def test_multi_member_gzip_with_trailing_zeros(tmp_path: Path) -> None:
    plain = tmp_path / "plain.pcap"
    wrpcap(str(plain), with_times([Ether(src=MAC_A, dst=MAC_B) / packet
                                   for packet in ip_packets()]))
    data = plain.read_bytes()
    path = tmp_path / "members.pcap.gz"
    path.write_bytes(gzip.compress(data[:100]) + gzip.compress(data[100:]) + b"\0" * 512)
    assert [p.describe() for p in read_all(path)] == [p.describe() for p in read_all(plain)]


def test_problems_are_counted_and_capped(tmp_path: Path) -> None:
    bad = bytearray(bytes(ip_packets()[1]))
    bad[0] = 0x43  # IHL 3: 12 bytes
    path = tmp_path / "bad.pcap"
    writer = RawPcapWriter(str(path), linktype=LINKTYPE_RAW)
    writer.write_header(None)
    for index in range(150):
        writer.write_packet(bytes(bad) if index % 2 == 0 else bytes(ip_packets()[2]),
                            sec=index, usec=0)
    writer.close()
    with open_capture(path) as capture:
        packets = list(capture)
        assert len(packets) == 75
        assert capture.problem_count == 75
        assert len(capture.problems) == 75
        assert str(capture.problems[1]) == "packet 3: IPv4 header length 12 is below 20 bytes"
    path2 = tmp_path / "worse.pcap"
    writer = RawPcapWriter(str(path2), linktype=LINKTYPE_RAW)
    writer.write_header(None)
    for index in range(250):
        writer.write_packet(bytes(bad), sec=index, usec=0)
    writer.close()
    with open_capture(path2) as capture:
        assert list(capture) == []
        assert capture.problem_count == 250
        assert len(capture.problems) == 100


# -- file-level faults ------------------------------------------------------------------


def pcap_bytes(count: int = 5) -> bytes:
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, LINKTYPE_RAW)
    records = b""
    for index in range(count):
        data = bytes(ip_packets()[index % 5])
        records += struct.pack("<IIII", 1700000000 + index, 0, len(data), len(data)) + data
    return header + records


def fault(path: Path) -> tuple[list[Packet], CaptureError]:
    """Packets yielded before the error, and the error."""
    packets: list[Packet] = []
    with pytest.raises(CaptureError) as caught:
        with open_capture(path) as capture:
            for packet in capture:
                packets.append(packet)
    return packets, caught.value


def test_missing_file(tmp_path: Path) -> None:
    _, error = fault(tmp_path / "nope.pcap")
    assert str(error) == f"{tmp_path / 'nope.pcap'}: cannot open: No such file or directory"


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.pcap"
    path.write_bytes(b"")
    _, error = fault(path)
    assert str(error) == f"{path}: empty file"


def test_not_a_capture_says_what_it_starts_with(tmp_path: Path) -> None:
    path = tmp_path / "archive.pcap"
    path.write_bytes(b"PK\x03\x04" + b"\x14" * 40)
    _, error = fault(path)
    assert str(error) == f"{path}: not a pcap or pcapng file (starts with " \
                         f"'PK\\x03\\x04\\x14\\x14\\x14\\x14')"
    path.write_bytes(gzip.compress(b"hello world, not a capture"))
    _, error = fault(path)
    assert "not a pcap or pcapng file (gzip content starts with 'hello wo')" in str(error)


def test_truncated_file_header(tmp_path: Path) -> None:
    path = tmp_path / "short.pcap"
    path.write_bytes(pcap_bytes()[:10])
    _, error = fault(path)
    assert str(error) == f"{path}: truncated file header (10 of 24 bytes)"


def test_unsupported_link_type(tmp_path: Path) -> None:
    path = tmp_path / "wifi.pcap"
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 105))
    _, error = fault(path)
    assert str(error) == f"{path}: link type 105 is not supported"


def test_absurd_record_length_after_good_packets(tmp_path: Path) -> None:
    data = bytearray(pcap_bytes(3))
    data += struct.pack("<IIII", 1700000009, 0, 0x7FFFFFF0, 60) + b"\0" * 60
    path = tmp_path / "absurd.pcap"
    path.write_bytes(bytes(data))
    packets, error = fault(path)
    assert len(packets) == 3
    assert error.frame == 4
    assert "packet 4: record length 2147483632 is absurd" in str(error)


def test_record_cut_short_at_end_of_file(tmp_path: Path) -> None:
    data = pcap_bytes(4)
    path = tmp_path / "cut.pcap"
    path.write_bytes(data[:-37])
    packets, error = fault(path)
    assert len(packets) == 3
    assert str(error) == f"{path}: packet 4: record truncated (file ends 37 bytes early)"
    path.write_bytes(data[:24 + 5])
    packets, error = fault(path)
    assert packets == []
    assert str(error) == f"{path}: packet 1: record header truncated (file ends 11 bytes early)"


def second_epb_offset(data: bytes) -> int:
    """Offset of the second enhanced packet block of the (little-endian) first section."""
    at = 0
    seen = 0
    while True:
        block_type, length = struct.unpack_from("<II", data, at)
        if block_type == 6:
            seen += 1
            if seen == 2:
                return at
        at += length


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda data, at: data[:at + 4] + struct.pack("<I", 30) + data[at + 8:],
     "bad block length 30"),
    (lambda data, at: data[:at + 4] + struct.pack("<I", 8) + data[at + 8:],
     "bad block length 8"),
    (lambda data, at: data[:at + 4] + struct.pack("<I", 64 << 20) + data[at + 8:],
     "absurd block length 67108864"),
    (lambda data, at: data[:at + 4] + struct.pack("<I", 64) + data[at + 8:],
     "bad block length (leading 64, trailing"),
])
def test_bad_pcapng_block_length(tmp_path: Path, mutate: object, message: str) -> None:
    data, _ = handmade_pcapng()
    at = second_epb_offset(data)
    path = tmp_path / "bad.pcapng"
    path.write_bytes(mutate(data, at))  # type: ignore[operator]
    packets, error = fault(path)
    assert len(packets) == 1
    assert f"pcapng block at offset {at} (type 0x6): {message}" in str(error)


def test_pcapng_cut_short(tmp_path: Path) -> None:
    data, _ = handmade_pcapng()
    path = tmp_path / "cut.pcapng"
    # The last block is a 20-byte DSB: cut 10 bytes from the v6 EPB before it.
    path.write_bytes(data[:-30])
    packets, error = fault(path)
    assert len(packets) == 4
    assert "(type 0x6): block truncated (file ends 10 bytes early)" in str(error)
    path.write_bytes(data[:-10])
    packets, error = fault(path)
    assert len(packets) == 5
    assert "block header truncated (file ends 2 bytes early)" in str(error)


def test_pcapng_bad_byte_order_magic(tmp_path: Path) -> None:
    data, _ = handmade_pcapng()
    path = tmp_path / "magic.pcapng"
    path.write_bytes(data[:8] + b"XXXX" + data[12:])
    _, error = fault(path)
    assert "bad byte-order magic 'XXXX'" in str(error)


def test_corrupt_gzip_stream(tmp_path: Path) -> None:
    compressed = bytearray(gzip.compress(pcap_bytes(50)))
    for index in range(40, 60):
        compressed[index] ^= 0xFF
    path = tmp_path / "corrupt.pcap.gz"
    path.write_bytes(bytes(compressed))
    _, error = fault(path)
    assert "corrupt gzip stream" in str(error)


def test_gzip_cut_at_a_flush_point_reads_every_packet(tmp_path: Path) -> None:
    import zlib

    compressor = zlib.compressobj(wbits=31)
    data = pcap_bytes(6)
    stream = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    path = tmp_path / "killed.pcap.gz"
    path.write_bytes(stream)
    with open_capture(path) as capture:
        assert len(list(capture)) == 6
        assert capture.problem_count == 1
        assert "gzip stream ends without its trailer after 6 packets" in str(capture.problems[0])
