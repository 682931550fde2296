"""Rules real captures by other researchers needed (issue 12), through the public entry
points: `analyze_files` + `build_report` as `fingerprint analyze --json` runs them, and
the command line for its options.  Captures are crafted with documentation addresses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fingerprint.analysis import index as observation_index
from fingerprint.analysis.flowstore import PackedFlow
from fingerprint.analysis.observe import CaptureHints
from fingerprint.analysis.outcome import Outcome
from fingerprint.analysis.pipeline import analyze_files
from fingerprint.catalog import load_catalog
from fingerprint.output.ooni.measurements import measurements_from_pipeline
from fingerprint.report import build_report, render_table
from fingerprint.signature import SignatureLibrary, load_library
from fingerprint.testing.craft import Capture
from fingerprint.trust import TrustStore

REPO = Path(__file__).resolve().parents[1]
SERVER = "203.0.113.80"


@pytest.fixture(scope="module")
def library() -> SignatureLibrary:
    return load_library(REPO / "signatures")


def analyze(path: Path, library: SignatureLibrary, vantage: str | None = None) -> dict[str, Any]:
    hints = CaptureHints(raw={"capture_point": vantage}) if vantage else None
    catalog = load_catalog(None)
    result = analyze_files([str(path)], catalog, library, TrustStore(None),
                           on_problem=lambda _l: None, vantage=hints)
    return build_report(result.verdicts, catalog, "analyze")


def by_target(report: dict[str, Any]) -> dict[str, set[str]]:
    """target -> techniques found ({} when tested and not blocked)."""
    out: dict[str, set[str]] = {}
    for platform in report["platforms"]:
        for check in platform["tested"]:
            out.setdefault(check["target"], set())
        for finding in platform["findings"]:
            out.setdefault(finding["target"], set()).add(finding["technique"])
    return out


def all_checks_ok(report: dict[str, Any], target: str) -> bool:
    return all(c["ok"] for p in report["platforms"] for c in p["tested"] if c["target"] == target)


# --------------------------------------------------------------------------- rule 5

def server_side_capture(client: str = "198.51.100.23", seed: int = 5, start_at: float = 0.0,
                        cap: Capture | None = None, client_ttl: int = 50,
                        server_ttl: int = 64) -> Capture:
    """At the server: the client's packets arrive with TTL 50, the server's leave with 64
    (`client_ttl=64, server_ttl=50`: the same connections recorded at the client)."""
    cap = cap or Capture(seed=seed, client=client, client_ttl=client_ttl)
    reset = cap.tcp(SERVER, 80, at=start_at, server_ttl=server_ttl, rtt_ms=5)
    reset.handshake()
    reset.http_get("blocked.example")
    reset.inject("RA", at_ms=0.5, ttl=117, ip_id=4242, toward_server=True)
    reset._from_server(reset._after(0.6), "R")
    fine = cap.tcp(SERVER, 80, at=start_at + 2, server_ttl=server_ttl, rtt_ms=5)
    fine.handshake()
    fine.http_get("fine.example")
    fine.client_close(at_ms=3000)
    fine._from_server(fine._after(3001), "FA")
    return cap


def test_server_side_capture_judges_what_the_remote_client_suffered(
        tmp_path: Path, library: SignatureLibrary) -> None:
    path = server_side_capture().write(tmp_path / "server.pcapng")
    report = analyze(path, library)
    assert report["capture_point"]["end"] == "server"
    assert report["capture_point"]["source"] == "guessed"
    found = by_target(report)
    assert found["blocked.example"] == {"http.reset"}
    # The server's FIN after the client's is the server's own close, not http.fin.
    assert found["fine.example"] == set() and all_checks_ok(report, "fine.example")


def test_text_report_says_the_capture_was_taken_at_the_server(
        tmp_path: Path, library: SignatureLibrary) -> None:
    server = render_table(analyze(server_side_capture().write(tmp_path / "s.pcapng"), library))
    assert "captured at the server (guessed from the handshakes' TTLs" in server
    given = analyze(server_side_capture().write(tmp_path / "g.pcapng"), library, vantage="server")
    assert "captured at the server (given with --vantage)" in render_table(given)
    # At the client, the usual case, the text says nothing about it.
    at_client = server_side_capture(client_ttl=64, server_ttl=50).write(tmp_path / "c.pcapng")
    assert "captured at" not in render_table(analyze(at_client, library))


def test_vantage_client_overrides_the_guess(tmp_path: Path, library: SignatureLibrary) -> None:
    path = server_side_capture().write(tmp_path / "server.pcapng")
    report = analyze(path, library, vantage="client")
    assert report["capture_point"] == {"end": "client", "by_client": {"198.51.100.23": "client"},
                                       "source": "given"}
    # Read as a client capture, the server's own packets are what came back: the
    # override is honoured (and here it is wrong, which is why the guess exists).
    assert by_target(report) != by_target(analyze(path, library))


def test_vantage_option_on_the_command_line(tmp_path: Path) -> None:
    path = server_side_capture().write(tmp_path / "server.pcapng")
    proc = subprocess.run([sys.executable, "-m", "fingerprint", "analyze", str(path), "--json",
                           "--vantage", "server"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["capture_point"]["source"] == "given"
    assert report["capture_point"]["end"] == "server"
    bad = subprocess.run([sys.executable, "-m", "fingerprint", "analyze", str(path),
                          "--vantage", "middle"], capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr


def test_capture_mixing_both_ends_and_clients_is_judged_per_client(
        tmp_path: Path, library: SignatureLibrary) -> None:
    # One client seen at the server end, another client's own capture of the same server
    # (its SYN leaves with TTL 64, the SYN-ACK arrives routed): both in one file.
    cap = server_side_capture(client="198.51.100.23", seed=9)
    other = Capture(seed=10, client="192.0.2.44", client_ttl=64)
    flow = other.tcp("203.0.113.90", 443, at=20.0, server_ttl=52)
    flow.handshake()
    flow.client_hello("fine-tls.example")
    flow.server_hello()
    flow = other.tcp("203.0.113.90", 443, at=22.0, server_ttl=52)
    flow.handshake()
    flow.client_hello(None)
    flow.server_hello()
    cap._records.extend(other._records)
    path = cap.write(tmp_path / "mixed.pcapng")
    report = analyze(path, library)
    assert report["capture_point"]["end"] == "mixed"
    assert report["capture_point"]["by_client"] == {"192.0.2.44": "client",
                                                    "198.51.100.23": "server"}
    found = by_target(report)
    assert found["blocked.example"] == {"http.reset"}
    assert found["fine-tls.example"] == set() and all_checks_ok(report, "fine-tls.example")
    assert found["fine.example"] == set()


# --------------------------------------------------------------------------- rule 3

def _pki(tmp_path: Path) -> tuple[Path, dict[str, tuple[bytes, bytes]]]:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from cryptography.x509.oid import NameOID

    def key(seed: int) -> ed25519.Ed25519PrivateKey:
        return ed25519.Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)

    def cert(cn: str, issuer: str, signer: int, serial: int, until: dt.datetime,
             ca: bool = False) -> x509.Certificate:
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
                   .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
                   .public_key(key(serial + 40).public_key()).serial_number(serial)
                   .not_valid_before(dt.datetime(2021, 6, 1, tzinfo=dt.UTC)).not_valid_after(until)
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if not ca:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]),
                                            critical=False)
        return builder.sign(key(signer), None)

    far = dt.datetime(2049, 1, 1, tzinfo=dt.UTC)
    soon = dt.datetime(2021, 8, 30, tzinfo=dt.UTC)
    root = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test Root")]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test Root")]))
            .public_key(key(1).public_key()).serial_number(1)
            .not_valid_before(dt.datetime(2020, 1, 1, tzinfo=dt.UTC)).not_valid_after(far)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key(1), None))
    der = serialization.Encoding.DER
    ca = tmp_path / "ca.pem"
    ca.write_bytes(root.public_bytes(serialization.Encoding.PEM))
    rootder = root.public_bytes(der)
    return ca, {
        "control": (cert("example.com", "Test Root", 1, 3, far).public_bytes(der), rootder),
        "expired_since": (cert("news.example", "Test Root", 1, 4, soon).public_bytes(der), rootder),
        "other_name": (cert("default.example", "Test Root", 1, 5, far).public_bytes(der), rootder),
    }


def _tls_capture(start: float, chains: dict[str, tuple[bytes, bytes]]) -> Capture:
    cap = Capture(seed=31, start=start)
    for n, (sni, chain) in enumerate((("example.com", chains["control"]),
                                      ("news.example", chains["expired_since"]),
                                      ("shop.example", chains["other_name"]))):
        flow = cap.tcp("203.0.113.30", 443, at=float(n))
        flow.handshake()
        flow.client_hello(sni)
        flow.server_hello(chain, at_ms=45)
        flow.client_close(at_ms=120)
    return cap


def _analyze_with_ca(path: Path, ca: Path, library: SignatureLibrary) -> dict[str, Any]:
    catalog = load_catalog(None)
    result = analyze_files([str(path)], catalog, library, TrustStore(ca),
                           on_problem=lambda _l: None)
    return build_report(result.verdicts, catalog, "analyze")


def details(report: dict[str, Any], target: str) -> str:
    return " ".join(c["detail"] for p in report["platforms"] for c in p["tested"]
                    if c["target"] == target)


def test_certificate_judged_at_capture_time(tmp_path: Path, library: SignatureLibrary) -> None:
    ca, chains = _pki(tmp_path)
    # 2021-07-01: the 90-day certificate was valid then, has expired since.
    path = _tls_capture(1_625_097_600.0, chains).write(tmp_path / "c.pcapng")
    report = _analyze_with_ca(path, ca, library)
    found = by_target(report)
    assert found["news.example"] == set() and all_checks_ok(report, "news.example")
    # A trusted chain for another name is the server's default certificate, not tls.mitm.
    assert found["shop.example"] == set() and "not interception" in details(report, "shop.example")
    # 2022: the certificate had expired at capture time: a note, still not tls.mitm.
    later = _tls_capture(1_656_633_600.0, chains).write(tmp_path / "later.pcapng")
    report = _analyze_with_ca(later, ca, library)
    assert by_target(report)["news.example"] == set()
    assert "expired at capture time" in details(report, "news.example")


def test_no_usable_timestamps_means_validity_unknown(tmp_path: Path,
                                                     library: SignatureLibrary) -> None:
    ca, chains = _pki(tmp_path)
    path = _tls_capture(0.0, chains).write(tmp_path / "epoch.pcapng")  # 1970: a clock never set
    report = _analyze_with_ca(path, ca, library)
    assert "tls.mitm" not in by_target(report)["news.example"]
    assert "validity unknown" in details(report, "news.example")


# --------------------------------------------------------------------------- rule 2

def _late_fin_capture(fin_ip_id: int | None) -> Capture:
    """Control works; the target's ClientHello goes unanswered and a FIN with the server's
    TTL and DF arrives 10 s later, with the server's next IP ID or with `fin_ip_id`."""
    cap = Capture(seed=77)
    for at in (0.0, 0.5):
        flow = cap.tcp("203.0.113.40", 443, at=at)
        flow.handshake()
        flow.client_hello("example.com")
        flow.server_hello(at_ms=45)
    flow = cap.tcp("203.0.113.40", 443, at=1.0)
    flow.handshake()
    flow.client_hello("quiet.example")
    if fin_ip_id is None:
        flow._from_server(flow._after(10_000), "FA")
    else:
        flow.inject("FA", at_ms=10_000, ttl=flow.server_ttl, ip_id=fin_ip_id, df=True)
    return cap


def test_idle_timeout_fin_is_a_drop(tmp_path: Path, library: SignatureLibrary) -> None:
    report = analyze(_late_fin_capture(None).write(tmp_path / "idle.pcapng"), library)
    assert by_target(report)["quiet.example"] == {"tls.sni_drop"}


def test_late_fin_off_the_servers_ip_id_sequence_stays_a_fin(
        tmp_path: Path, library: SignatureLibrary) -> None:
    # Same TTL and DF, but an IP ID far from the server's own: someone else's FIN.
    report_own = analyze(_late_fin_capture(None).write(tmp_path / "own.pcapng"), library)
    forged = _late_fin_capture(1)
    report_forged = analyze(forged.write(tmp_path / "forged.pcapng"), library)
    assert by_target(report_own)["quiet.example"] == {"tls.sni_drop"}
    assert by_target(report_forged)["quiet.example"] == {"tls.sni_fin"}


# --------------------------------------------------------------------------- rule 1

def _runs(target_silent_at: set[int], target_stops_at: int | None) -> Capture:
    """Control and target traceroute-style runs to one server at hop 10; the target's
    trigger gets no ICMP at `target_silent_at`, and its run stops there when
    `target_stops_at` is given (as CenTrace stops when nothing further changes)."""
    cap = Capture(seed=88)
    t = 0.0
    for sni in ("example.com", "quiet.example"):
        for ttl in range(1, 11):
            flow = cap.tcp("203.0.113.72", 443, at=t, server_ttl=54)
            t += 2.0
            flow.handshake()
            flow.client_hello(sni, ttl=ttl)
            silent = sni != "example.com" and ttl in target_silent_at
            if ttl < 10 and not silent:
                flow.expire(f"198.51.100.{150 + ttl}", at_ms=5)
            elif ttl == 10 and not silent:
                flow.server_hello(at_ms=50)
            flow.client_close(at_ms=3000)
            if sni != "example.com" and target_stops_at == ttl:
                break
    return cap


def test_traceroute_run_like_the_controls_is_not_blocked(tmp_path: Path,
                                                          library: SignatureLibrary) -> None:
    report = analyze(_runs(set(), None).write(tmp_path / "same.pcapng"), library)
    assert by_target(report).get("quiet.example", set()) == set()


def test_traceroute_one_lost_trigger_is_not_a_drop(tmp_path: Path,
                                                   library: SignatureLibrary) -> None:
    report = analyze(_runs({5}, None).write(tmp_path / "loss.pcapng"), library)
    assert by_target(report).get("quiet.example", set()) == set()


def test_traceroute_silent_from_a_hop_on_is_a_drop_there(tmp_path: Path,
                                                         library: SignatureLibrary) -> None:
    report = analyze(_runs(set(range(6, 11)), None).write(tmp_path / "drop.pcapng"), library)
    assert by_target(report)["quiet.example"] == {"tls.sni_drop"}
    finding = next(f for p in report["platforms"] for f in p["findings"]
                   if f["target"] == "quiet.example")
    assert finding["location"]["router"] == "198.51.100.155"


# --------------------------------------------------------------------------- rule 4

def _endpoint_capture(status: int, reason: str, *, resolve_here: bool) -> Capture:
    from fingerprint.testing.craft import http_response

    cap = Capture(seed=99)
    server = "203.0.113.75"
    if resolve_here:
        cap.dns("203.0.113.53", "shop.example", at=0.0).respond([server], delay_ms=20, ttl=60)
    site = http_response(200, "OK", [], b"<p>page</p>" * 300)
    short = http_response(status, reason, [], b"<h1>no</h1>")
    for at, host, answer in ((1.0, "example.com", site), (2.0, "shop.example", short)):
        flow = cap.tcp(server, 80, at=at)
        flow.handshake()
        flow.http_get(host)
        flow.http_reply(answer, at_ms=45)
        flow.client_close(at_ms=60)
    return cap


def test_shared_servers_404_for_a_host_it_does_not_serve_is_not_blocking(
        tmp_path: Path, library: SignatureLibrary) -> None:
    report = analyze(_endpoint_capture(404, "Not Found", resolve_here=False)
                     .write(tmp_path / "404.pcapng"), library)
    assert by_target(report)["shop.example"] == set()


def test_refusal_of_a_host_that_resolves_to_the_server_is_endpoint_blocking(
        tmp_path: Path, library: SignatureLibrary) -> None:
    report = analyze(_endpoint_capture(404, "Not Found", resolve_here=True)
                     .write(tmp_path / "hosted.pcapng"), library)
    assert by_target(report)["shop.example"] == {"http.blockpage"}
    finding = next(f for p in report["platforms"] for f in p["findings"]
                   if f["target"] == "shop.example")
    assert finding["location"]["endpoint"] is True


# --------------------------------------------------------------------------- control blocked

def _control_dropped(with_open_name: bool, target_injected: bool) -> Capture:
    cap = Capture(seed=123)
    server = "203.0.113.77"
    t = 0.0
    for _ in range(2):
        flow = cap.tcp(server, 443, at=t)
        flow.handshake()
        flow.client_hello(None)
        flow.client_close(at_ms=5000)
        t += 6.0
    if with_open_name:
        flow = cap.tcp(server, 443, at=t)
        flow.handshake()
        flow.client_hello("open.example")
        flow.server_hello(at_ms=45)
        t += 1.0
    for _ in range(2):
        flow = cap.tcp(server, 443, at=t)
        flow.handshake()
        flow.client_hello("censored.example")
        if target_injected:
            flow.inject("RA", at_ms=4, ttl=54, df=False, window=0)
        else:
            flow._from_server(flow._after(4), "R")
        t += 1.0
    return cap


@pytest.mark.parametrize(("open_name", "injected", "blocked"), [
    (True, True, True),     # another name works, the target's reset is forged
    (False, True, False),   # nothing shows the address works: inconclusive
    (True, False, False),   # the server's own reset: nothing says a censor did it
])
def test_control_blocked_on_its_own(tmp_path: Path, library: SignatureLibrary, open_name: bool,
                                    injected: bool, blocked: bool) -> None:
    report = analyze(_control_dropped(open_name, injected).write(tmp_path / "c.pcapng"), library)
    found = by_target(report).get("censored.example", set())
    assert (found == {"tls.sni_reset"}) is blocked
    if not blocked:
        assert found == set()


def test_one_connection_recorded_at_both_ends_in_one_file(tmp_path: Path,
                                                          library: SignatureLibrary) -> None:
    # The same connections as the client and the server recorded them, merged: every
    # packet twice, with the TTLs of each end. No crash, one verdict per target.
    at_server = server_side_capture(client="198.51.100.23", seed=5)
    at_client = server_side_capture(client="198.51.100.23", seed=5, client_ttl=64, server_ttl=50)
    at_client._records.extend(at_server._records)
    path = at_client.write(tmp_path / "both.pcapng")
    report = analyze(path, library)
    assert set(report["capture_point"]["by_client"]) == {"198.51.100.23"}
    assert [t for p in report["platforms"] for t in p["tested"]
            if t["target"] == "blocked.example"]


def test_served_flows_are_packed_without_changing_the_output(
        tmp_path: Path, library: SignatureLibrary, monkeypatch: pytest.MonkeyPatch) -> None:
    # Many attempts seen at the server, each closed mid-capture: all but the first of
    # each outcome are packed by the flow store, which must keep `served` as it is.
    cap = Capture(seed=9, client="198.51.100.23", client_ttl=50)
    for n in range(6):
        flow = cap.tcp(SERVER, 80, at=n * 40.0, server_ttl=64, rtt_ms=5)
        flow.handshake()
        flow.http_get("fine.example")
        flow.client_close(at_ms=3000)
        flow._from_server(flow._after(3001), "FA")
    path = cap.write(tmp_path / "served.pcapng")

    def run() -> tuple[Any, str]:
        result = analyze_files([str(path)], load_catalog(None), library, TrustStore(None),
                               on_problem=lambda _l: None)
        assert result.pipeline is not None
        report = build_report(result.verdicts, load_catalog(None), "analyze")
        report.pop("generated")
        ooni = measurements_from_pipeline(result.pipeline, result.verdicts, run_id="r",
                                          test_start_time=0.0)
        return result, json.dumps([report, ooni], sort_keys=True, default=str)

    packed, packed_text = run()
    groups = packed.pipeline.index.tcp_groups.values()
    assert any(isinstance(item, PackedFlow) for group in groups for item in group.items)
    assert {f.outcome.kind for group in groups for f in group} == {Outcome.SERVED}
    assert all_checks_ok(json.loads(packed_text)[0], "fine.example")
    monkeypatch.setattr(observation_index, "EVIDENCE_FLOWS", 10**6)  # every flow whole
    _whole, whole_text = run()
    assert packed_text == whole_text


# --------------------------------------------------------------------------- capture loss

LOSS_SERVER = "203.0.113.85"


def _lost_answer_capture(*, ech: bool, acknowledged: bool = True, fin: bool = True,
                         tail_captured: bool = False, repeats: int = 1,
                         gap: float = 0.5) -> Capture:
    """Controls (example.com) answered; `lost.example` answered without ECH when the lost
    attempts carry ECH.  In each lost attempt the server acknowledges the ClientHello and
    sends a 3093-byte flight in 3 packets that the capture does not record (or only its
    last packet, `tail_captured`); its FIN past the flight is recorded (`fin`); the
    client acknowledges all of it (`acknowledged`) or nothing of it; `gap` seconds apart."""
    cap = Capture(seed=1210)
    t = 0.0
    for _ in range(2):
        flow = cap.tcp(LOSS_SERVER, 443, at=t, server_ttl=58)
        flow.handshake()
        flow.client_hello("example.com")
        flow.server_hello(at_ms=25)
        t += 0.5
    if ech:
        flow = cap.tcp(LOSS_SERVER, 443, at=t, server_ttl=58)
        flow.handshake()
        flow.client_hello("lost.example")
        flow.server_hello(at_ms=25)
        t += 0.5
    for _ in range(repeats):
        flow = cap.tcp(LOSS_SERVER, 443, at=t, server_ttl=58)
        t += gap
        flow.handshake()
        flow.client_hello("lost.example", ech=ech)
        flow._from_server(flow._after(20), "A")
        start = flow.server_seq
        if tail_captured:
            flow.server_lost_from_capture(2 * 1448, segments=2)
            flow.server_send(b"\x17\x03\x03" + bytes(194), at_ms=24)
        else:
            flow.server_lost_from_capture(3093, segments=3)
        if fin:
            flow.server_close(at_ms=25)
        if not acknowledged:
            flow.server_seq = start
        flow.client_ack(at_ms=26)
        flow.client_close(at_ms=5000)
    return cap


def _lost_checks(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for p in report["platforms"] for c in p["tested"] if c["target"] == "lost.example"]


@pytest.mark.parametrize("ech", [False, True])
@pytest.mark.parametrize("fin", [True, False])
def test_answer_lost_by_the_capture_is_no_silence(tmp_path: Path, library: SignatureLibrary,
                                                  ech: bool, fin: bool) -> None:
    # The client acknowledged a flight the capture does not hold: it was answered, the
    # capture lost the answer (before: tls.sni_drop without ECH; with ECH, "too few
    # attempts to blame the extension", inconclusive).
    cap = _lost_answer_capture(ech=ech, fin=fin)
    report = analyze(cap.write(tmp_path / "lost.pcapng"), library)
    assert by_target(report)["lost.example"] == set()
    assert all_checks_ok(report, "lost.example")
    assert any("missing from the capture" in c["detail"] for c in _lost_checks(report))


def test_answer_lost_start_with_its_tail_captured_is_no_injected_text(
        tmp_path: Path, library: SignatureLibrary) -> None:
    # Only the flight's last segment was captured, past a gap the client acknowledged:
    # no ServerHello to read, yet no injected text either (before: tls.sni_fin).
    cap = _lost_answer_capture(ech=False, tail_captured=True, repeats=2)
    report = analyze(cap.write(tmp_path / "tail.pcapng"), library)
    assert by_target(report)["lost.example"] == set()
    assert all_checks_ok(report, "lost.example")


def test_answer_never_acknowledged_by_the_client_stays_a_drop(
        tmp_path: Path, library: SignatureLibrary) -> None:
    # The server's FIN says it sent a flight, but the client acknowledges none of it:
    # lost on the way to the client, not by the capture.
    cap = _lost_answer_capture(ech=False, acknowledged=False, repeats=2)
    report = analyze(cap.write(tmp_path / "unacked.pcapng"), library)
    assert by_target(report)["lost.example"] == {"tls.sni_drop"}


def test_uncaptured_flows_are_packed_without_changing_the_output(
        tmp_path: Path, library: SignatureLibrary, monkeypatch: pytest.MonkeyPatch) -> None:
    # Closed mid-capture (TCP_IDLE_S apart), all but the first are packed by the flow store.
    path = _lost_answer_capture(ech=False, repeats=6, gap=40.0).write(tmp_path / "many.pcapng")

    def run() -> tuple[Any, str]:
        result = analyze_files([str(path)], load_catalog(None), library, TrustStore(None),
                               on_problem=lambda _l: None)
        assert result.pipeline is not None
        report = build_report(result.verdicts, load_catalog(None), "analyze")
        report.pop("generated")
        ooni = measurements_from_pipeline(result.pipeline, result.verdicts, run_id="r",
                                          test_start_time=0.0)
        return result, json.dumps([report, ooni], sort_keys=True, default=str)

    packed, packed_text = run()
    groups = packed.pipeline.index.tcp_groups.values()
    assert any(isinstance(item, PackedFlow) for group in groups for item in group.items)
    assert Outcome.UNCAPTURED in {f.outcome.kind for group in groups for f in group}
    assert all_checks_ok(json.loads(packed_text)[0], "lost.example")
    assert "the server's answer is missing from the capture" in packed_text
    monkeypatch.setattr(observation_index, "EVIDENCE_FLOWS", 10**6)  # every flow whole
    _whole, whole_text = run()
    assert packed_text == whole_text
