"""CaptureWriter: format by file name, comments, per-packet flush, cross-read by scapy and tshark."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from scapy.layers.dns import DNS, DNSQR
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.utils import rdpcap

from fingerprint.capture.dissect import LINKTYPE_ETHERNET, LINKTYPE_RAW
from fingerprint.capture.reader import open_capture
from fingerprint.capture.writer import CaptureWriter

REPO = Path(__file__).resolve().parents[2]
METADATA = '{"schema": "fingerprint.probe/1", "targets": ["twitter.com"], "note": "ünïcode"}'


def frames() -> list[tuple[float, bytes, str | None]]:
    return [
        (1700000000.000001, bytes(IP(src="192.0.2.10", dst="198.51.100.53", id=9) /
                                  UDP(sport=40001, dport=53) /
                                  DNS(id=1, qd=DNSQR(qname="twitter.com"))), "dns twitter.com"),
        (1700000000.5, bytes(IP(src="192.0.2.10", dst="203.0.113.7", flags="DF") /
                             TCP(sport=50000, dport=443, flags="S", seq=5)), None),
        (1700000001.999999, bytes(IPv6(src="2001:db8::1", dst="2001:db8::2") /
                                  TCP(sport=443, dport=50000, flags="R")), "reset, ttl 27"),
    ]


def write(path: Path, linktype: int = LINKTYPE_RAW) -> None:
    with CaptureWriter(path, linktype=linktype, section_comment=METADATA) as writer:
        for ts, data, comment in frames():
            writer.write(ts, data, comment=comment)


@pytest.mark.parametrize("name", ["run.pcap", "run.pcap.gz", "run.pcapng", "run.pcapng.gz"])
def test_round_trip_through_our_reader_and_scapy(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    write(path)
    pcapng = ".pcapng" in name
    with open_capture(path) as capture:
        assert capture.format == ("pcapng" if pcapng else "pcap")
        assert capture.compressed == name.endswith(".gz")
        assert capture.section_comments == ([METADATA] if pcapng else [])
        packets = list(capture)
        assert capture.problem_count == 0
    expected = frames()
    assert [packet.ts for packet in packets] == [ts for ts, _, _ in expected]
    assert [packet.comment for packet in packets] == \
        [comment if pcapng else None for _, _, comment in expected]
    assert [(packet.src, packet.dst, packet.sport, packet.dport) for packet in packets] == [
        ("192.0.2.10", "198.51.100.53", 40001, 53),
        ("192.0.2.10", "203.0.113.7", 50000, 443),
        ("2001:db8::1", "2001:db8::2", 443, 50000),
    ]
    theirs = rdpcap(str(path))
    assert [bytes(packet) for packet in theirs] == [data for _, data, _ in expected]
    assert [float(packet.time) for packet in theirs] == \
        pytest.approx([ts for ts, _, _ in expected], abs=1e-6)
    if pcapng:
        assert [packet.comments for packet in theirs] == \
            [[comment.encode()] if comment else None for _, _, comment in expected]


@pytest.mark.parametrize("name", ["run.pcapng", "run.pcapng.gz", "run.pcap"])
def test_comments_are_visible_to_tshark(tmp_path: Path, name: str) -> None:
    tshark = shutil.which("tshark")
    if tshark is None:
        pytest.skip("tshark is not installed")
    path = tmp_path / name
    write(path)
    result = subprocess.run([tshark, "-r", str(path), "-Y", "frame.comment", "-T", "fields",
                             "-e", "frame.comment"], capture_output=True, text=True, check=True)
    if name.endswith(".pcap"):
        assert result.stdout == ""
    else:
        assert result.stdout.splitlines() == ["dns twitter.com", "reset, ttl 27"]
    capinfos = shutil.which("capinfos")
    if capinfos and ".pcapng" in name:
        info = subprocess.run([capinfos, str(path)], capture_output=True, text=True, check=True)
        assert f"Capture comment:     {METADATA}" in info.stdout


def test_ethernet_link_type_is_recorded(tmp_path: Path) -> None:
    path = tmp_path / "eth.pcapng"
    frame = bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") /
                  IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=1, dport=2))
    with CaptureWriter(path, linktype=LINKTYPE_ETHERNET) as writer:
        writer.write(1.0, frame)
    with open_capture(path) as capture:
        assert capture.section_comments == []
        [packet] = list(capture)
        assert capture.linktypes == {0: LINKTYPE_ETHERNET}
    assert (packet.src, packet.dport) == ("192.0.2.1", 2)
    assert rdpcap(str(path))[0].haslayer(Ether)


def test_empty_capture_is_readable(tmp_path: Path) -> None:
    for name in ("none.pcap", "none.pcapng.gz"):
        with CaptureWriter(tmp_path / name, section_comment="nothing sent"):
            pass
        with open_capture(tmp_path / name) as capture:
            assert list(capture) == []


KILLED_WRITER = """
import os, sys
from fingerprint.capture.writer import CaptureWriter
writer = CaptureWriter(sys.argv[1], section_comment="killed")
for index in range(5):
    writer.write(1700000000 + index, bytes.fromhex(sys.argv[2]), comment=f"packet {index}")
os._exit(0)  # no close(): as if the run was killed
"""


@pytest.mark.parametrize("name", ["killed.pcapng", "killed.pcapng.gz", "killed.pcap.gz"])
def test_a_killed_writer_leaves_a_readable_capture(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    data = bytes(IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=1, dport=53))
    subprocess.run([sys.executable, "-c", KILLED_WRITER, str(path), data.hex()], cwd=REPO,
                   check=True)
    with open_capture(path) as capture:
        packets = list(capture)
        assert len(packets) == 5
        if ".pcapng" in name:
            assert capture.section_comments == ["killed"]
            assert packets[4].comment == "packet 4"
        if name.endswith(".gz"):
            # The gzip trailer was never written: noted, not fatal.
            assert capture.problem_count == 1
            assert "without its trailer" in str(capture.problems[0])


def test_microsecond_rounding_carries_into_seconds(tmp_path: Path) -> None:
    path = tmp_path / "round.pcap"
    with CaptureWriter(path) as writer:
        writer.write(1699999999.9999996, bytes(IP() / UDP()))
    with open_capture(path) as capture:
        assert [packet.ts for packet in capture] == [1700000000.0]
