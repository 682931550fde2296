"""Damaged captures and packets through the real analysis (`analyze_files`, the CLI).

What must hold for every input: no exception escapes but the documented
per-file `CaptureError` (which `analyze_files` turns into one line naming the
file), each input finishes before a generous liveness deadline, damage inside
packets never makes a well-formed file unreadable, and the report still
builds.  The inputs are seeded, so a failure names a reproducible case and
its bytes are kept under the test's tmp_path.
"""

from __future__ import annotations

import gzip
import json
import random
import struct
import subprocess
import sys
from collections import Counter
from pathlib import Path

import fuzz_corpus as corpus
import pytest
from fuzz_deadline import deadline
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fingerprint.analysis.pipeline import analyze_files
from fingerprint.analysis.quic import QuicObserver
from fingerprint.capture.dissect import SUPPORTED_LINKTYPES, Problem, decode_frame
from fingerprint.capture.packet import Packet
from fingerprint.catalog import Catalog, load_catalog
from fingerprint.protocols import quic, quic_initial
from fingerprint.protocols.dns import parse_dns
from fingerprint.protocols.http import parse_request, parse_response
from fingerprint.protocols.tls import parse_client_hello, parse_server_flight
from fingerprint.report import build_report, render_table
from fingerprint.signature import SignatureLibrary, load_library
from fingerprint.trust import TrustStore

CAPTURE_INPUTS = 10_000
"""Capture files built per run of the main fuzz loop (each holds 1 to 24 packets)."""
LIVENESS_S = 10.0
"""Per-input bound: orders of magnitude above the milliseconds an input takes."""
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pipeline_parts() -> tuple[Catalog, SignatureLibrary, TrustStore]:
    return load_catalog(None), load_library(None), TrustStore(None)


def _container(rng: random.Random, packets: list[bytes]) -> bytes:
    kind = rng.randrange(3)
    if kind == 0:
        return corpus.pcap_bytes(packets, byte_order=rng.choice("<>"))
    if kind == 1:
        return corpus.pcapng_bytes(packets)
    return gzip.compress(corpus.pcapng_bytes(packets), compresslevel=1)


def _analyze_one(path: Path, parts: tuple[Catalog, SignatureLibrary, TrustStore]) -> tuple[bool, int]:
    """Analyse one capture as `fingerprint analyze` does; (file failed, findings)."""
    catalog, library, trust = parts
    lines: list[str] = []
    with deadline(LIVENESS_S):
        result = analyze_files([str(path)], catalog, library, trust, on_problem=lines.append)
        report = build_report(result.verdicts, catalog, "analyze", extra={"problems": result.problems})
        json.dumps(report)
        render_table(report)
    for line in result.problems:
        assert line.startswith(str(path)) and "\n" not in line, line
    assert len(result.failed_inputs) <= 1
    if result.failed_inputs:
        assert sum(line.startswith("error: ") for line in lines) == 1, lines
    return bool(result.failed_inputs), len(result.verdicts.findings)


def test_mutated_captures_through_analyze(tmp_path: Path,
                                          pipeline_parts: tuple[Catalog, SignatureLibrary, TrustStore]
                                          ) -> None:
    rng = random.Random(20261128)
    captures = corpus.fixture_captures()
    seeds = [packet for capture in captures for packet in capture] + corpus.built_packets()
    assert len(captures) >= 40 and len(seeds) >= 400
    kinds: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    crashes: list[str] = []
    packets_fed = 0
    findings = 0
    path = tmp_path / "input.cap"
    for index in range(CAPTURE_INPUTS):
        roll = rng.random()
        if roll < 0.55:
            packets = corpus.mutated_flow(rng, captures)
            kind = "fixture flow, packets damaged"
            data = _container(rng, packets)
        elif roll < 0.8:
            packets = [corpus.mutate_packet(rng, rng.choice(seeds)) for _ in range(rng.randint(1, 8))]
            kind = "damaged packets"
            data = _container(rng, packets)
        else:
            packets = corpus.mutated_flow(rng, captures) if rng.random() < 0.5 else \
                [rng.choice(seeds) for _ in range(rng.randint(1, 6))]
            data, kind = corpus.damage_container(rng, packets)
        kinds[kind] += 1
        packets_fed += len(packets)
        path.write_bytes(data)
        try:
            file_failed, found = _analyze_one(path, pipeline_parts)
        except Exception as exc:  # every other exception is a crash to report
            kept = tmp_path / f"crash-{index}.cap"
            kept.write_bytes(data)
            crashes.append(f"input {index} ({kind}, kept as {kept}): {type(exc).__name__}: {exc}")
            continue
        findings += found
        if file_failed:
            failed[kind] += 1
    print(f"\ncapture fuzz: {CAPTURE_INPUTS} captures, {packets_fed} packets, {len(crashes)} crashes, "
          f"{sum(failed.values())} files refused with one line, {findings} findings")
    for kind, count in sorted(kinds.items()):
        print(f"  {kind}: {count} inputs, {failed[kind]} refused")
    assert not crashes, "\n".join(crashes[:10])
    assert CAPTURE_INPUTS + packets_fed >= 10_000
    # Damage inside packets never makes a well-formed file unreadable.
    assert failed["fixture flow, packets damaged"] == 0
    assert failed["damaged packets"] == 0
    # The loop reached both ends: deep analysis (findings) and refused files of each damage kind.
    assert findings > 1000
    for kind in ("pcap truncated", "pcap record length lies", "pcapng block length lies",
                 "pcapng block trailer lies", "gzip truncated", "random bytes", "magic then random bytes"):
        assert kinds[kind] >= 50 and failed[kind] > 0, kind


# ---------------------------------------------------------------- hypothesis: packets and parsers

LINKTYPES = [*sorted(SUPPORTED_LINKTYPES), 147]
FUZZ = settings(max_examples=1500, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
_counts: Counter[str] = Counter()


@FUZZ
@given(linktype=st.sampled_from(LINKTYPES), frame=st.binary(max_size=160),
       seed=st.sampled_from(corpus.built_packets()), use_seed=st.booleans(), cut=st.integers(0, 200))
def test_decode_frame_is_total(linktype: int, frame: bytes, seed: bytes, use_seed: bool, cut: int) -> None:
    if use_seed:
        frame = (frame[:cut] + seed[cut:]) if linktype in (101, 12, 14, 228, 229) else frame + seed
    with deadline(LIVENESS_S):
        result = decode_frame(7, 1.0, linktype, frame, 0, len(frame))
    assert result is None or isinstance(result, Packet | Problem)
    if isinstance(result, Problem):
        assert result.frame == 7 and result.message
    _counts["frames"] += 1


_NAME_PIECES = st.sampled_from([b"\xc0\x0c", b"\xc0", b"\x0c", b"\x00", b"\x01a", b"\x3f", b"\xff\xff",
                                b"\x80", b"\x40", b"\x07twitter\x03com", b"\xc0\x12", b"\x00\x01\x00\x01"])


@FUZZ
@given(raw=st.binary(max_size=400), pieces=st.lists(_NAME_PIECES, max_size=60),
       counts=st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF)))
def test_dns_parser_is_total(raw: bytes, pieces: list[bytes], counts: tuple[int, int]) -> None:
    crafted = struct.pack("!HHHHHH", 1, 0x8180, counts[0] % 3, counts[1], 0, 0) + b"".join(pieces)
    with deadline(LIVENESS_S):
        for message in (raw, crafted):
            parsed = parse_dns(message)
            if parsed is not None:
                assert len(parsed.answers) <= 64 and len(parsed.qname) <= 255 * 4
    _counts["dns messages"] += 2


@FUZZ
@given(raw=st.binary(max_size=400), offset=st.integers(0, 120), value=st.binary(min_size=1, max_size=3),
       sni=st.binary(max_size=300))
def test_tls_and_http_parsers_are_total(raw: bytes, offset: int, value: bytes, sni: bytes) -> None:
    hello = bytearray(corpus.client_hello(sni))
    hello[offset:offset + len(value)] = value
    with deadline(LIVENESS_S):
        for data in (raw, bytes(hello), b"\x16\x03\x03" + raw):
            parse_client_hello(data)
            flight = parse_server_flight(data)
            assert len(flight.certificates) <= 16
            parse_request(b"GET " + data)
            parse_response(b"HTTP/1.1 " + data)
    _counts["tls/http payloads"] += 3


_QUIC_SEEDS = corpus.quic_packets()


@FUZZ
@given(seed=st.sampled_from(_QUIC_SEEDS), mutations=st.integers(0, 3), rng_seed=st.integers(0, 2**32),
       raw=st.binary(max_size=1300))
def test_quic_parsers_and_observer_are_total(seed: bytes, mutations: int, rng_seed: int, raw: bytes) -> None:
    """Damaged QUIC (truncated Initials, lying lengths, unknown versions, garbage on
    UDP/443) is skipped or counted, never raised, by the parsers and the flow observer."""
    rng = random.Random(rng_seed)
    packet = seed
    for _ in range(mutations):
        packet = rng.choice((corpus.quic_lengths, corpus.quic_lengths, corpus.bit_flips, corpus.truncate))(
            rng, packet)
    flows: list[object] = []
    observer = QuicObserver(flows.append)
    with deadline(LIVENESS_S):
        for frame, data in enumerate((seed, packet, corpus._checksum_free_ipv4(17, corpus._udp(40020, 443, raw)))):
            decoded = decode_frame(frame + 1, 1.0 + frame, 101, data, 0, len(data))
            if isinstance(decoded, Packet):
                observer.feed(decoded)
                quic.classify_datagram(decoded.payload)
        observer.close()
        quic_initial.read_client_initials([raw, packet])
    assert len(flows) <= 3
    _counts["quic datagrams"] += 3


# ---------------------------------------------------------------- hypothesis: whole captures

_LENGTH_LIES = st.sampled_from([None, 0, 1, 19, 65535, 0xFFFFFFFF, 300_000, -1, +1, +3])


@settings(max_examples=600, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(packets=st.lists(st.binary(max_size=120) | st.sampled_from(corpus.built_packets()), max_size=6),
       lie_at=st.integers(0, 5), lie=_LENGTH_LIES, pcapng=st.booleans(), cut=st.integers(0, 4000))
def test_generated_captures_through_analyze(tmp_path: Path,
                                            pipeline_parts: tuple[Catalog, SignatureLibrary, TrustStore],
                                            packets: list[bytes], lie_at: int, lie: int | None,
                                            pcapng: bool, cut: int) -> None:
    def lying(index: int, length: int) -> int:
        if index != lie_at or lie is None:
            return length
        return length + lie if lie in (-1, 1, 3) else lie

    data = corpus.pcapng_bytes(packets) if pcapng else corpus.pcap_bytes(packets, lie=lying)
    if cut and cut < len(data):
        data = data[:cut]
    path = tmp_path / "generated.cap"
    path.write_bytes(data)
    _analyze_one(path, pipeline_parts)
    _counts["generated captures"] += 1
    _counts["generated packets"] += len(packets)


def test_zz_hypothesis_figures() -> None:
    """Prints what the hypothesis tests above fed (runs after them, in file order)."""
    print("\nhypothesis inputs: " + ", ".join(f"{kind} {count}" for kind, count in sorted(_counts.items())))
    if _counts:
        assert _counts["frames"] >= 1000 or "frames" not in _counts


# ---------------------------------------------------------------- the CLI on a mix of files

def _fixture_capture() -> Path:
    return next(REPO.glob("pcaps/cn/gfw-rst-type1/capture.pcap*"))


def test_cli_names_each_unreadable_file_and_analyses_the_others(tmp_path: Path) -> None:
    good = _fixture_capture()
    whole = gzip.decompress(good.read_bytes())
    packets = corpus.fixture_captures()[0][:5]
    bad = {
        "empty.pcap": b"",
        "text.pcap": b"this is not a capture\n",
        "cut.pcapng": whole[: len(whole) // 2 + 3],
        "cut.pcapng.gz": good.read_bytes()[:60],
        # The third record claims 4 GiB: the error names that packet.
        "lying.pcap": corpus.pcap_bytes(packets, lie=lambda i, n: 0xFFFFFFF0 if i == 2 else n),
        "block.pcapng": corpus.pcapng_bytes(packets)[:-4] + bytes(4),
    }
    for name, data in bad.items():
        (tmp_path / name).write_bytes(data)
    args = [str(tmp_path / name) for name in bad] + [str(good), str(tmp_path / "missing.pcap")]
    done = subprocess.run([sys.executable, "-m", "fingerprint", "analyze", "--json", *args],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    for name in [*bad, "missing.pcap"]:
        naming = [line for line in errors if line.startswith(f"error: {tmp_path / name}: ")]
        assert len(naming) == 1, (name, done.stderr)
    lying_line = next(line for line in errors if "lying.pcap" in line)
    assert ": packet 3: " in lying_line
    assert len(errors) == len(bad) + 1
    report = json.loads(done.stdout)
    statuses = {p["platform"]: p["status"] for p in report["platforms"]}
    assert statuses.get("twitter") == "blocked", statuses
