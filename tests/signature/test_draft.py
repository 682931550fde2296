"""`fingerprint signatures new --from CAPTURE`: a draft signature from a crafted capture.

The captures are packet scripts crafted with scapy (an injected RST with a
fixed IP ID and sequence number 0; a forged DNS answer racing the genuine
one), written into a fixture folder of a throw-away repository layout.  The
draft must carry the injected packets' fields, fail lint while its TODOs
remain, and once they are filled lint clean and match the capture it came
from.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import IP, TCP, UDP
from scapy.packet import Raw

from fingerprint.analysis.pipeline import analyze_files
from fingerprint.capture.writer import CaptureWriter
from fingerprint.catalog import load_catalog
from fingerprint.signature.cli import lint_paths, signatures
from fingerprint.signature.library import load_library
from fingerprint.trust import TrustStore

CLIENT = "192.0.2.10"
SERVER = "203.0.113.10"
RESOLVER = "198.51.100.53"


def client_hello(sni: str) -> bytes:
    name = sni.encode()
    ext = (b"\x00\x00" + (len(name) + 5).to_bytes(2, "big") + (len(name) + 3).to_bytes(2, "big")
           + b"\x00" + len(name).to_bytes(2, "big") + name)
    body = (b"\x03\x03" + bytes(32) + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00"
            + len(ext).to_bytes(2, "big") + ext)
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + len(handshake).to_bytes(2, "big") + handshake


SERVER_HELLO = b"\x16\x03\x03\x00\x2a\x02\x00\x00\x26\x03\x03" + bytes(32) + b"\x00\x13\x01\x00"


def tls_attempt(sni: str, sport: int, injected: bool, other_injector: bool = False) -> list[Any]:
    hello = client_hello(sni)
    packets = [
        IP(src=CLIENT, dst=SERVER, ttl=64) / TCP(sport=sport, dport=443, flags="S", seq=1000),
        IP(src=SERVER, dst=CLIENT, ttl=47, flags="DF", id=0)
        / TCP(sport=443, dport=sport, flags="SA", seq=5000, ack=1001, window=29200),
        IP(src=CLIENT, dst=SERVER, ttl=64) / TCP(sport=sport, dport=443, flags="A", seq=1001, ack=5001),
        IP(src=CLIENT, dst=SERVER, ttl=64, flags="DF")
        / TCP(sport=sport, dport=443, flags="PA", seq=1001, ack=5001) / Raw(hello),
    ]
    if injected and other_injector:
        # Another censor's RST: in-window sequence number, a TTL from 64, its own IP ID.
        packets.append(IP(src=SERVER, dst=CLIENT, ttl=52, id=1234)
                       / TCP(sport=443, dport=sport, flags="RA", seq=5001, window=100))
    elif injected:
        # Turkmenistan-like injector: initial TTL 128, IP ID 30000, no DF, seq 0, window 0.
        packets.append(IP(src=SERVER, dst=CLIENT, ttl=117, id=30000)
                       / TCP(sport=443, dport=sport, flags="R", seq=0, window=0))
    else:
        packets.append(IP(src=SERVER, dst=CLIENT, ttl=47, flags="DF", id=77)
                       / TCP(sport=443, dport=sport, flags="PA", seq=5001, ack=1001 + len(hello))
                       / Raw(SERVER_HELLO))
    return packets


def dns_exchange(name: str, txid: int, answers: list[tuple[str, int, int, int]]) -> list[Any]:
    """answers: (address, ip ttl, ip id, dns flags) per response, in arrival order."""
    packets = [IP(src=CLIENT, dst=RESOLVER, ttl=64) / UDP(sport=40000 + txid, dport=53)
               / DNS(id=txid, rd=1, qd=DNSQR(qname=name))]
    for address, ttl, ip_id, flags in answers:
        reply = DNS(id=txid, qr=1, rd=1, ra=1, qd=DNSQR(qname=name), an=DNSRR(rrname=name, rdata=address))
        raw = bytearray(bytes(reply))
        raw[2:4] = flags.to_bytes(2, "big")
        packets.append(IP(src=RESOLVER, dst=CLIENT, ttl=ttl, id=ip_id)
                       / UDP(sport=53, dport=40000 + txid) / Raw(bytes(raw)))
    return packets


def new(folder: Path, *args: str) -> Any:
    """`signatures new` against the test's own (initially empty) library, not the shipped one."""
    library = folder.parents[2] / "signatures"
    return CliRunner().invoke(signatures, ["new", "--signatures", str(library), *args])


def write_fixture(root: Path, case: str, packets: list[Any]) -> Path:
    folder = root / "pcaps" / "tls" / case
    folder.mkdir(parents=True)
    ts = 1_700_000_000.0
    with CaptureWriter(folder / "capture.pcap") as writer:
        for pkt in packets:
            ts += 0.02
            writer.write(ts, bytes(pkt))
    (root / "signatures").mkdir(exist_ok=True)
    return folder


def fill_todos(draft: str, sig_id: str) -> str:
    data = yaml.safe_load(draft)
    data["id"] = sig_id
    data["title"] = "Crafted injector for this test"
    data["references"] = [{"source": "test_draft.py crafted capture", "values": "IP ID 30000"}]
    return yaml.safe_dump(data, sort_keys=False)


def matched(folder: Path, library_root: Path) -> set[str]:
    library = load_library(library_root)
    capture = next(folder.glob("*.pcap"))
    result = analyze_files([str(capture)], load_catalog(), library, TrustStore(),
                           on_problem=lambda _line: None)
    return {sig for f in result.verdicts.findings for sig in f.signatures}


@pytest.fixture
def reset_case(tmp_path: Path) -> Path:
    return write_fixture(tmp_path, "tm-rst", tls_attempt("example.com", 41000, False)
                         + tls_attempt("twitter.com", 41001, True))


def test_draft_carries_the_injected_packet_fields(reset_case: Path) -> None:
    res = new(reset_case, "--from", str(reset_case))
    assert res.exit_code == 0, res.output
    data = yaml.safe_load(res.stdout)
    assert data["techniques"] == ["tls.sni_reset"]
    assert data["fixtures"]["positive"] == ["pcaps/tls/tm-rst/"]
    rules = {m["field"]: m for m in data["match"]["matchers"]}
    assert rules["ip.id"] == {"field": "ip.id", "op": "equals", "value": 30000}
    assert rules["ip.df"]["value"] is False
    assert rules["tcp.flags"]["value"] == "R"
    assert rules["tcp.window"]["value"] == 0
    assert rules["tcp.seq"]["value"] == 0
    assert rules["injected.count"]["value"] == 1
    # TTL 117 from an initial 128: a range around it that stays in the 65-128 band.
    assert rules["ip.ttl"] == {"field": "ip.ttl", "op": "range", "min": 113, "max": 121}
    assert "# observed TTL 117; initial TTL 128" in res.stdout
    assert data["id"].startswith("TODO") and data["title"].startswith("TODO")


def test_draft_fails_lint_until_the_todos_are_filled_then_matches_its_capture(
        reset_case: Path, tmp_path: Path) -> None:
    draft_file = tmp_path / "draft.yaml"
    res = new(reset_case, "--from", str(reset_case / "capture.pcap"), "--id", "test.tm-rst",
              "--out", str(draft_file))
    assert res.exit_code == 0, res.output
    sigs = tmp_path / "signatures" / "tls"
    sigs.mkdir(parents=True)
    as_is = sigs / "test.tm-rst.yaml"
    as_is.write_text(draft_file.read_text())
    _loaded, problems = lint_paths(tmp_path / "signatures")
    # Each lint line names the file and the line of the key.
    assert any(re.fullmatch(rf"{re.escape(str(as_is))}:\d+: title still holds a TODO placeholder", p)
               for p in problems), problems
    assert any(re.fullmatch(rf"{re.escape(str(as_is))}:\d+: references still holds a TODO placeholder", p)
               for p in problems), problems

    as_is.write_text(fill_todos(draft_file.read_text(), "test.tm-rst"))
    loaded, problems = lint_paths(tmp_path / "signatures")
    assert problems == [] and [s.id for s in loaded] == ["test.tm-rst"]
    assert matched(reset_case, tmp_path / "signatures") == {"test.tm-rst"}


def test_lint_reports_every_problem_of_a_fresh_draft_at_once(reset_case: Path,
                                                              tmp_path: Path) -> None:
    """A draft saved as it came (TODO id, title, references) plus a misspelt field and an
    out-of-range value: one lint run names them all, each with its line."""
    res = new(reset_case, "--from", str(reset_case))
    assert res.exit_code == 0, res.output
    sigs = tmp_path / "signatures" / "tls"
    sigs.mkdir(parents=True)
    draft = sigs / "draft.yaml"
    draft.write_text(res.stdout.replace("field: tcp.window", "field: tcp.windw")
                     .replace("confidence: 0.5", "confidence: 2"))
    _loaded, problems = lint_paths(tmp_path / "signatures")
    lines = "\n".join(problems)
    for expected in (r"draft\.yaml:\d+: id: 'TODO-signature-id' does not match",
                     r"draft\.yaml:\d+: id 'TODO-signature-id' differs from the file name 'draft'",
                     r"draft\.yaml:\d+: confidence: 2 is greater than the maximum of 1",
                     r"draft\.yaml:\d+: match/matchers/\d+/field: unknown field 'tcp\.windw' "
                     r"\(did you mean 'tcp\.window'\?\)",
                     r"draft\.yaml:\d+: title still holds a TODO placeholder",
                     r"draft\.yaml:\d+: references still holds a TODO placeholder"):
        assert re.search(expected, lines), f"{expected!r} not in:\n{lines}"


def test_a_filled_draft_does_not_match_another_injector(reset_case: Path, tmp_path: Path) -> None:
    res = new(reset_case, "--from", str(reset_case))
    sig_dir = tmp_path / "signatures" / "tls"
    sig_dir.mkdir(parents=True)
    (sig_dir / "test.tm-rst.yaml").write_text(fill_todos(res.stdout, "test.tm-rst"))
    # Another injector's reset is the same technique but not this censor.
    other = write_fixture(tmp_path, "other-rst", tls_attempt("example.com", 42000, False)
                          + tls_attempt("twitter.com", 42001, True, other_injector=True))
    result = analyze_files([str(other / "capture.pcap")], load_catalog(), load_library(tmp_path / "signatures"),
                           TrustStore(), on_problem=lambda _line: None)
    assert [f.technique.value for f in result.verdicts.findings] == ["tls.sni_reset"]
    assert result.verdicts.findings[0].signatures == []


def test_dns_injection_draft_names_the_forged_answer_and_flags(tmp_path: Path) -> None:
    packets = (dns_exchange("example.com", 1, [("203.0.113.99", 58, 1200, 0x8180)])
               + dns_exchange("twitter.com", 2, [("203.0.113.45", 110, 4242, 0x8580),
                                                 ("203.0.113.10", 58, 1201, 0x8180)]))
    folder = write_fixture(tmp_path, "dns-inject", packets)
    res = new(folder, "--from", str(folder), "--technique", "dns.injection")
    assert res.exit_code == 0, res.output
    data = yaml.safe_load(res.stdout)
    rules = {m["field"]: m for m in data["match"]["matchers"]}
    assert rules["dns.answer"] == {"field": "dns.answer", "op": "equals", "value": "203.0.113.45"}
    assert rules["dns.flags"]["value"] == 0x8580
    assert rules["ip.id"]["value"] == 4242
    (tmp_path / "signatures" / "test.dns-forger.yaml").write_text(fill_todos(res.stdout, "test.dns-forger"))
    assert lint_paths(tmp_path / "signatures")[1] == []
    assert matched(folder, tmp_path / "signatures") == {"test.dns-forger"}


def test_no_finding_to_draft_from_is_an_error_that_says_what_was_seen(reset_case: Path) -> None:
    res = new(reset_case, "--from", str(reset_case), "--technique", "dns.drop")
    assert res.exit_code != 0
    assert "no finding to draft from (technique dns.drop)" in str(res.exception)
    assert "tls.sni_reset on twitter.com" in str(res.exception)
    bad = new(reset_case, "--from", str(reset_case), "--technique", "dns.nope")
    assert bad.exit_code == 2 and "not a technique" in bad.output


def test_redirect_draft_keeps_the_answer_not_the_resolver_packet_fields(tmp_path: Path) -> None:
    packets = (dns_exchange("example.com", 1, [("203.0.113.99", 58, 1200, 0x8180)])
               + dns_exchange("twitter.com", 2, [("10.10.34.99", 58, 1201, 0x8180)]))
    folder = write_fixture(tmp_path, "dns-redirect", packets)
    res = new(folder, "--from", str(folder))
    assert res.exit_code == 0, res.output
    data = yaml.safe_load(res.stdout)
    assert data["techniques"] == ["dns.redirect"]
    assert data["match"]["matchers"] == [{"field": "dns.answer", "op": "equals", "value": "10.10.34.99"}]
