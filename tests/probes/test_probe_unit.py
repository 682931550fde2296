"""Unprivileged tests of the probe's building blocks and of its command line."""

from __future__ import annotations

import socket
from pathlib import Path

import dns.message
import dns.rdatatype
import pytest

from fingerprint.analysis.observe import CaptureHints
from fingerprint.capture.reader import open_capture
from fingerprint.cli import main
from fingerprint.errors import PrivilegeError
from fingerprint.probes import privileges
from fingerprint.probes.dns import (
    ResolverSpecError,
    build_query,
    parse_resolver_spec,
    system_resolver,
)
from fingerprint.probes.runner import RawPacket, to_packets
from fingerprint.probes.sweep import write_capture


def test_resolver_specs() -> None:
    doh = parse_resolver_spec("https://203.0.113.54/dns-query")
    assert (doh.kind, doh.host, doh.port, doh.path) == ("doh", "203.0.113.54", 443, "/dns-query")
    dot = parse_resolver_spec("tls://203.0.113.54:8853")
    assert (dot.kind, dot.host, dot.port) == ("dot", "203.0.113.54", 8853)
    plain = parse_resolver_spec("198.51.100.53")
    assert (plain.kind, plain.port) == ("udp", 53)
    for bad in ("tls://resolver.example", "resolver.example", "https:///x"):
        with pytest.raises(ResolverSpecError):
            parse_resolver_spec(bad)


def test_query_is_a_plain_recursive_a_query() -> None:
    message = dns.message.from_wire(build_query("twitter.com", 0x1234))
    assert message.id == 0x1234
    assert message.flags & dns.flags.RD
    assert message.question[0].name.to_text() == "twitter.com."
    assert message.question[0].rdtype == dns.rdatatype.A


def test_system_resolver_reads_first_nameserver(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("# comment\nsearch lan\nnameserver 192.0.2.53\nnameserver 192.0.2.54\n")
    assert system_resolver(str(conf)) == "192.0.2.53"
    conf.write_text("search lan\n")
    assert system_resolver(str(conf)) is None


def _udp_packet(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    from scapy.layers.inet import IP, UDP

    return bytes(IP(src=src, dst=dst, ttl=64) / UDP(sport=sport, dport=dport) / payload)


def test_capture_keeps_packets_and_hints(tmp_path: Path) -> None:
    hints = CaptureHints(control_answers={"twitter.com": ["203.0.113.20"]},
                         no_resolver={"203.0.113.99"},
                         address_platform={"203.0.113.20": "twitter"})
    query = build_query("twitter.com", 7)
    raw = [RawPacket(1000.0, _udp_packet("192.0.2.10", "203.0.113.53", 40000, 53, query)),
           RawPacket(1000.5, _udp_packet("203.0.113.53", "192.0.2.10", 53, 40000, query))]
    path = tmp_path / "evidence.pcapng"
    write_capture(path, raw, hints)
    with open_capture(path) as reader:
        replayed = list(reader)
        read_hints = CaptureHints.from_comments(reader.section_comments)
    live = to_packets(raw)
    assert [(p.ts, p.src, p.dst, p.sport, p.payload) for p in replayed] == \
        [(p.ts, p.src, p.dst, p.sport, p.payload) for p in live]
    assert read_hints.control_answers == hints.control_answers
    assert read_hints.no_resolver == hints.no_resolver
    assert read_hints.address_platform == hints.address_platform


def test_without_raw_sockets_one_line_and_exit_77(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    def refuse(*_args: object, **_kwargs: object) -> socket.socket:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(privileges.socket, "socket", refuse)
    with pytest.raises(PrivilegeError):
        privileges.check_privileges()
    with pytest.raises(SystemExit) as exit_info:
        main(["probe", "--resolver", "192.0.2.53", "--control-resolver", "tls://192.0.2.54",
              "--platform", "twitter"])
    assert exit_info.value.code == 77
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "CAP_NET_RAW" in err and "sudo" in err and "setcap" in err


def test_unknown_platform_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["probe", "--resolver", "192.0.2.53", "--platform", "no-such-platform"])
    assert exit_info.value.code not in (0, 77)
    assert "no-such-platform" in capsys.readouterr().err


def test_quic_and_ech_probing_is_on_by_default_and_documented() -> None:
    """Issue 14: `probe` sends QUIC Initials and ECH ClientHellos unless --no-quic, and its
    help says what they are."""
    from click.testing import CliRunner

    from fingerprint.probes.cli import probe
    from fingerprint.probes.sweep import ProbeConfig

    assert ProbeConfig.__dataclass_fields__["quic"].default is True
    text = " ".join(CliRunner().invoke(probe, ["--help"]).output.split())
    assert "--quic / --no-quic" in text and "[default: quic]" in text
    assert "QUIC v1 Initials on UDP 443" in text and "GREASE encrypted_client_hello" in text
