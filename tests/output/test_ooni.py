"""OONI measurements built from an analysis: envelope, template shapes, failures, privacy."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet import IP, TCP
from synthetic import CLIENT, CONTROL, START, TELEGRAM, TWITTER, CaptureBuilder, censored_network

from fingerprint.model import Failure
from fingerprint.output.ooni.envelope import DATA_FORMAT_VERSION, MeasurementError, ProbeInfo
from fingerprint.output.ooni.failures import DNS_SERVER_MISBEHAVING
from fingerprint.output.ooni.measurements import build_measurements, measurements_from_pipeline
from fingerprint.testing.fixtures import Fixture

ENVELOPE = {
    "annotations": dict, "data_format_version": str, "input": str,
    "measurement_start_time": str, "probe_asn": str, "probe_cc": str, "probe_ip": str,
    "resolver_ip": str, "software_name": str, "software_version": str, "test_keys": dict,
    "test_name": str, "test_runtime": float, "test_start_time": str, "test_version": str,
    "extensions": dict, "probe_network_name": str, "report_id": str, "resolver_asn": str,
    "resolver_network_name": str,
}
OONI_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
DF007 = {f.value for f in Failure} | {DNS_SERVER_MISBEHAVING}
PCAPS = Path(__file__).resolve().parents[2] / "pcaps"


def _measurements(result: Any, **options: Any) -> list[dict[str, Any]]:
    return measurements_from_pipeline(result.pipeline, result.verdicts, **options)


def _by_input(measurements: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {m["input"]: m for m in measurements}


def _failures(test_keys: dict[str, Any]) -> list[str | None]:
    out = [q["failure"] for q in test_keys["queries"]]
    out += [c["status"]["failure"] for c in test_keys["tcp_connect"]]
    out += [h["failure"] for h in test_keys["tls_handshakes"]]
    out += [e["failure"] for e in test_keys["network_events"]]
    out += [r["failure"] for r in test_keys["requests"]]
    return out


def _is_df007(failure: str) -> bool:
    # df-007 lets anything it has no name for be reported as "unknown_failure: <detail>".
    return failure in DF007 or failure.startswith("unknown_failure: ")


def test_one_measurement_per_platform_target(analyze: Any, censored_capture: Path) -> None:
    measurements = _measurements(analyze(censored_capture))
    got = sorted((m["test_keys"]["x_fingerprint"]["platform"], m["input"]) for m in measurements)
    assert got == [("telegram", TELEGRAM), ("telegram", "telegram.org"),
                   ("twitter", TWITTER), ("twitter", "twitter.com")]
    # Control names and addresses are never an input of their own.
    assert "example.com" not in {m["input"] for m in measurements}
    assert CONTROL not in {m["input"] for m in measurements}


def test_envelope_keys_types_and_defaults(analyze: Any, censored_capture: Path) -> None:
    for m in _measurements(analyze(censored_capture)):
        for key, kind in ENVELOPE.items():
            assert isinstance(m[key], kind), key
        assert m["data_format_version"] == DATA_FORMAT_VERSION == "0.2.0"
        assert m["extensions"] == {"dnst": 0, "httpt": 0, "netevents": 0, "tcpconnect": 0,
                                   "tlshandshake": 0}
        assert m["report_id"] == m["test_keys"]["x_fingerprint"]["run_id"]
        assert m["resolver_asn"] == "AS0"
        assert set(m["test_keys"]) >= {"agent", "requests", "queries", "tcp_connect",
                                       "tls_handshakes", "network_events"}
        assert all(isinstance(v, list) for k, v in m["test_keys"].items()
                   if k in ("requests", "queries", "tcp_connect", "tls_handshakes",
                            "network_events"))
        assert m["software_name"] == "fingerprint"
        assert m["probe_ip"] == "127.0.0.1"
        assert (m["probe_asn"], m["probe_cc"]) == ("AS0", "ZZ")
        assert OONI_TIME.match(m["measurement_start_time"])
        assert OONI_TIME.match(m["test_start_time"])
        assert m["test_start_time"] <= m["measurement_start_time"]
        assert m["test_runtime"] >= 0
        assert all(isinstance(v, str) for v in m["annotations"].values())
        json.dumps(m)  # plain JSON, nothing left that needs a custom encoder
    twitter = _by_input(_measurements(analyze(censored_capture)))["twitter.com"]
    assert twitter["measurement_start_time"] == "2023-11-14 22:13:20"
    assert twitter["resolver_ip"] == "198.51.100.53"


def test_dns_queries_follow_df002(analyze: Any, censored_capture: Path) -> None:
    keys = _by_input(_measurements(analyze(censored_capture)))["twitter.com"]["test_keys"]
    target = [q for q in keys["queries"] if q["x_role"] == "target"]
    assert len(target) == 1
    query = target[0]
    assert set(query) >= {"answers", "engine", "failure", "hostname", "query_type",
                          "raw_response", "rcode", "resolver_address", "t0", "t",
                          "transaction_id"}
    assert query["hostname"] == "twitter.com" and query["query_type"] == "A"
    assert query["engine"] == "udp" and query["resolver_address"] == "198.51.100.53:53"
    assert (query["resolver_hostname"], query["resolver_port"]) == (None, None)
    assert query["tags"] == ["target"]
    # The first answer is the forged one a stub resolver would have used ...
    assert query["answers"] == [{"answer_type": "A", "ipv4": "8.7.198.45", "ttl": 300}]
    assert query["failure"] is None and query["rcode"] == 0
    assert query["x_packet"]["ip_ttl"] == 64
    raw = base64.b64decode(query["raw_response"])
    assert raw[:2] == (0x2222).to_bytes(2, "big")
    assert 0 <= query["t0"] <= query["t"]
    # ... and the genuine late answer is kept, as OONI does, in x_dns_duplicate_responses.
    late = keys["x_dns_duplicate_responses"]
    assert [a["ipv4"] for a in late[0]["answers"]] == [TWITTER]
    assert late[0]["transaction_id"] == query["transaction_id"]
    # The control query on the same resolver rides along, marked as such.
    assert [q["hostname"] for q in keys["queries"] if q["x_role"] == "control"] == ["example.com"]


def test_tls_and_tcp_follow_df005_df006(analyze: Any, censored_capture: Path) -> None:
    keys = _by_input(_measurements(analyze(censored_capture)))["twitter.com"]["test_keys"]
    reset = next(h for h in keys["tls_handshakes"] if h["server_name"] == "twitter.com")
    assert set(reset) >= {"network", "address", "cipher_suite", "failure", "negotiated_protocol",
                          "no_tls_verify", "peer_certificates", "server_name", "t0", "t",
                          "tls_version", "transaction_id"}
    assert reset["failure"] == "connection_reset"
    assert reset["address"] == f"{TWITTER}:443" and reset["peer_certificates"] == []
    control = next(h for h in keys["tls_handshakes"] if h["server_name"] == "example.com")
    assert control["tls_version"] == "TLSv1.2"
    assert control["cipher_suite"] == "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
    cert = control["peer_certificates"][0]
    assert cert["format"] == "base64" and base64.b64decode(cert["data"])[0] == 0x30
    # Signed by the synthetic world's CA, which the analysis trusts.
    assert control["failure"] is None
    for connect in keys["tcp_connect"]:
        assert set(connect) >= {"ip", "port", "status", "t0", "t", "transaction_id"}
        assert connect["status"] == {"failure": None, "success": True}
    read = [e for e in keys["network_events"] if e["operation"] == "read"
            and e["transaction_id"] == reset["transaction_id"]]
    assert read[0]["failure"] == "connection_reset"


def test_untrusted_certificate_is_ssl_unknown_authority(catalog_file: Path, signatures_dir: Path,
                                                        censored_capture: Path) -> None:
    """Without the synthetic CA among the trust anchors, a verifying client would have
    refused the control's certificate: OONI's ssl_unknown_authority."""
    from fingerprint.analysis.pipeline import analyze_files
    from fingerprint.catalog import load_catalog
    from fingerprint.signature import load_library
    from fingerprint.trust import TrustStore

    result = analyze_files([str(censored_capture)], load_catalog(str(catalog_file)),
                           load_library(str(signatures_dir)), TrustStore(None),
                           on_problem=lambda _line: None)
    keys = _by_input(_measurements(result))["twitter.com"]["test_keys"]
    control = next(h for h in keys["tls_handshakes"] if h["server_name"] == "example.com")
    assert control["failure"] == "ssl_unknown_authority"


def test_blackholed_connect(analyze: Any, censored_capture: Path) -> None:
    m = _by_input(_measurements(analyze(censored_capture)))[TELEGRAM]
    target = [c for c in m["test_keys"]["tcp_connect"] if c["x_role"] == "target"]
    assert target[0]["status"] == {"failure": "generic_timeout_error",
                                   "success": False}
    assert target[0]["x_syn_count"] == 3
    controls = [c for c in m["test_keys"]["tcp_connect"] if c["x_role"] == "control"]
    assert controls and controls[0]["ip"] == CONTROL and controls[0]["status"]["success"]
    x_fp = m["test_keys"]["x_fingerprint"]
    assert (x_fp["status"], x_fp["techniques"]) == ("blocked", ["ip.blackhole"])


def test_every_failure_is_a_df007_string(analyze: Any, censored_capture: Path) -> None:
    seen = set()
    for m in _measurements(analyze(censored_capture)):
        for failure in _failures(m["test_keys"]):
            if failure is not None:
                assert _is_df007(failure), failure
                seen.add(failure)
    assert seen >= {"connection_reset", "generic_timeout_error"}


def test_verdicts_under_x_fingerprint(analyze: Any, censored_capture: Path) -> None:
    x_fp = _by_input(_measurements(analyze(censored_capture)))["twitter.com"]["test_keys"][
        "x_fingerprint"]
    assert x_fp["platform"] == "twitter" and x_fp["status"] == "blocked"
    assert set(x_fp["techniques"]) == {"dns.injection", "tls.sni_reset"}
    reset = next(f for f in x_fp["findings"] if f["technique"] == "tls.sni_reset")
    assert reset["signatures"] == ["test-rst-ttl64"]
    assert 0 < reset["confidence"] <= 1
    injected = [p for p in reset["packets"] if p["role"] == "injected"]
    assert injected and injected[0]["ip_ttl"] == 64 and injected[0]["tcp_flags"] == "R"
    assert any("TTL 64 vs server 47" in line for line in reset["evidence"])


def test_probe_address_stays_private_unless_shared(analyze: Any,
                                                   censored_capture: Path) -> None:
    result = analyze(censored_capture)
    private = json.dumps(_measurements(result))
    assert CLIENT not in private
    shared = _measurements(result, probe=ProbeInfo(share_ip=True))
    assert all(m["probe_ip"] == CLIENT for m in shared)
    assert CLIENT in json.dumps(shared)


def test_envelope_values_given_by_the_user(analyze: Any, censored_capture: Path) -> None:
    probe = ProbeInfo(asn="as8193", cc="uz", annotations={"vantage": "tashkent-1"})
    m = _measurements(analyze(censored_capture), probe=probe, run_id="run-1")[0]
    assert (m["probe_asn"], m["probe_cc"]) == ("AS8193", "UZ")
    assert m["annotations"]["vantage"] == "tashkent-1"
    assert m["test_keys"]["x_fingerprint"]["run_id"] == "run-1"
    with pytest.raises(MeasurementError):
        ProbeInfo(asn="Uzbektelekom")
    with pytest.raises(MeasurementError):
        ProbeInfo(cc="UZB")


def test_platform_filter_and_shared_run(analyze: Any, censored_capture: Path) -> None:
    result = analyze(censored_capture)
    first = _measurements(result, platforms=["telegram"], run_id="r", test_start_time=0.0)
    second = _measurements(result, platforms=["twitter"], run_id="r", test_start_time=0.0)
    assert {m["test_keys"]["x_fingerprint"]["platform"] for m in first} == {"telegram"}
    assert {m["test_keys"]["x_fingerprint"]["platform"] for m in second} == {"twitter"}
    assert {m["test_start_time"] for m in first + second} == {"1970-01-01 00:00:00"}


def test_accessible_platform(analyze: Any, tmp_path: Path) -> None:
    path = censored_network(twitter_blocked=False).write(tmp_path / "clean.pcapng")
    m = _by_input(_measurements(analyze(path)))["twitter.com"]
    x_fp = m["test_keys"]["x_fingerprint"]
    assert (x_fp["status"], x_fp["findings"]) == ("accessible", [])
    assert "x_dns_duplicate_responses" not in m["test_keys"]
    assert all(f is None for f in _failures(m["test_keys"]))


def test_build_measurements_of_nothing_is_empty(analyze: Any, tmp_path: Path) -> None:
    from synthetic import CaptureBuilder

    path = CaptureBuilder().write(tmp_path / "empty.pcapng")
    result = analyze(path)
    assert build_measurements(result.pipeline.index, result.verdicts,
                              result.pipeline.catalog) == []


# --------------------------------------------------------------------------- df-001 HTTP

MAYBE_BINARY = (str, dict)


def _fixture_measurements(case: str) -> dict[str, dict[str, Any]]:
    from fingerprint.signature import load_library

    library = load_library(PCAPS.parent / "signatures")
    result, _report = Fixture(PCAPS / case).analyze(library)
    assert result.pipeline is not None
    return _by_input(measurements_from_pipeline(result.pipeline, result.verdicts))


def _request(measurement: dict[str, Any], role: str) -> dict[str, Any]:
    matching = [r for r in measurement["test_keys"]["requests"] if r["tags"] == [role]]
    assert len(matching) == 1, measurement["test_keys"]["requests"]
    transaction: dict[str, Any] = matching[0]
    return transaction


def _assert_df001_shape(transaction: dict[str, Any]) -> None:
    """Key names and types of ooni/spec df-001 (and probe-cli's archival HTTP result)."""
    assert set(transaction) >= {"network", "address", "failure", "request", "response",
                                "t0", "t", "tags", "transaction_id"}
    assert transaction["failure"] is None or isinstance(transaction["failure"], str)
    assert isinstance(transaction["transaction_id"], int) and transaction["transaction_id"] > 0
    assert 0 <= transaction["t0"] <= transaction["t"]
    request, response = transaction["request"], transaction["response"]
    assert set(request) >= {"body", "body_is_truncated", "headers_list", "headers", "method",
                            "tor", "url"}
    assert set(response) >= {"body", "body_is_truncated", "code", "headers_list", "headers"}
    assert request["tor"] == {"exit_ip": None, "exit_name": None, "is_tor": False}
    assert isinstance(request["method"], str) and isinstance(request["url"], str)
    assert isinstance(response["code"], int) and not isinstance(response["code"], bool)
    for part in (request, response):
        assert isinstance(part["body"], MAYBE_BINARY)
        if isinstance(part["body"], dict):
            assert part["body"]["format"] == "base64"
            base64.b64decode(part["body"]["data"], validate=True)
        assert isinstance(part["body_is_truncated"], bool)
        assert isinstance(part["headers_list"], list) and isinstance(part["headers"], dict)
        for pair in part["headers_list"]:
            assert isinstance(pair, list) and len(pair) == 2
            assert all(isinstance(item, MAYBE_BINARY) for item in pair)
        # The map keeps the first value of each name in headers_list.
        for name, value in part["headers"].items():
            first = next(v for n, v in part["headers_list"]
                         if isinstance(n, str) and n.lower() == name.lower())
            assert value == first


def test_http_blockpage_request_and_response_df001() -> None:
    measurements = _fixture_measurements("ir/http-iframe-blockpage")
    m = measurements["www.instagram.com"]
    assert m["test_keys"]["x_fingerprint"]["techniques"] == ["http.blockpage"]
    assert m["test_keys"]["agent"] == "agent"
    blocked = _request(m, "target")
    _assert_df001_shape(blocked)
    assert blocked["failure"] is None
    assert blocked["address"] == "203.0.113.10:80" and blocked["network"] == "tcp"
    request = blocked["request"]
    assert (request["method"], request["url"]) == ("GET", "http://www.instagram.com/")
    assert request["headers_list"][0] == ["Host", "www.instagram.com"]
    assert request["headers"]["Host"] == "www.instagram.com"
    assert (request["body"], request["body_is_truncated"]) == ("", False)
    response = blocked["response"]
    assert response["code"] == 403
    # The Iranian blockpage: an iframe pointing at the filter's address 10.10.34.34.
    assert response["body"].startswith("<html>")
    assert '<iframe src="http://10.10.34.34' in response["body"]
    assert response["headers"]["Content-Length"] == str(len(response["body"]))
    assert response["body_is_truncated"] is False
    assert ["Connection", "close"] in response["headers_list"]
    # The control Host on the same address got the server's page.
    control = _request(m, "control")
    _assert_df001_shape(control)
    assert control["request"]["url"] == "http://example.com/"
    assert control["response"]["code"] == 200 and "Example Domain" in control["response"]["body"]
    assert control["transaction_id"] != blocked["transaction_id"]
    # The transaction shares its id with the flow's connect and read/write events.
    connects = {c["transaction_id"] for c in m["test_keys"]["tcp_connect"]}
    events = {e["transaction_id"] for e in m["test_keys"]["network_events"]}
    assert blocked["transaction_id"] in connects & events


def test_http_redirect_blockpage_keeps_location() -> None:
    m = _fixture_measurements("ru/dpi-http-warning-redirect")["www.linkedin.com"]
    blocked = _request(m, "target")
    _assert_df001_shape(blocked)
    assert blocked["response"]["code"] == 302
    assert blocked["response"]["headers"]["Location"].startswith("http://warning.rt.ru/")


def test_http_reset_is_connection_reset() -> None:
    m = _fixture_measurements("tm/rst-http")["twitter.com"]
    assert m["test_keys"]["x_fingerprint"]["techniques"] == ["http.reset"]
    reset = _request(m, "target")
    _assert_df001_shape(reset)
    assert reset["failure"] == "connection_reset"
    assert reset["request"]["url"] == "http://twitter.com/"
    assert reset["response"] == {"body": "", "body_is_truncated": False, "code": 0,
                                 "headers_list": [], "headers": {}}
    assert _request(m, "control")["failure"] is None


def test_http_injected_text_is_not_an_http_response() -> None:
    m = _fixture_measurements("uz/object-not-found-http")["www.skype.com"]
    fin = _request(m, "target")
    _assert_df001_shape(fin)
    assert fin["failure"] is not None and _is_df007(fin["failure"])
    assert fin["response"]["code"] == 0
    assert "Object not found" in fin["response"]["x_server_data"]


def _http_flow(cap: CaptureBuilder, ts: float, host: str, reply: bytes | None,
               sport: int) -> None:
    """A plain-HTTP GET to TWITTER:80; `reply` None means the request is never answered."""
    up, down = IP(src=CLIENT, dst=TWITTER, ttl=64), IP(src=TWITTER, dst=CLIENT, ttl=47)
    cseq, sseq = 1000, 9000
    request = (f"GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: fingerprint\r\n"
               "X-Trace: a\r\nx-trace: b\r\n\r\n").encode()
    cap.add(ts, up / TCP(sport=sport, dport=80, flags="S", seq=cseq))
    cap.add(ts + 0.01, down / TCP(sport=80, dport=sport, flags="SA", seq=sseq, ack=cseq + 1))
    cap.add(ts + 0.011, up / TCP(sport=sport, dport=80, flags="A", seq=cseq + 1, ack=sseq + 1))
    cap.add(ts + 0.012, up / TCP(sport=sport, dport=80, flags="PA", seq=cseq + 1,
                                  ack=sseq + 1) / request)
    if reply is None:
        for n in range(1, 4):  # retransmissions, then the client gives up
            cap.add(ts + 0.012 + n, up / TCP(sport=sport, dport=80, flags="PA", seq=cseq + 1,
                                              ack=sseq + 1) / request)
        cap.add(ts + 5.0, up / TCP(sport=sport, dport=80, flags="R",
                                    seq=cseq + 1 + len(request)))
        return
    cap.add(ts + 0.02, down / TCP(sport=80, dport=sport, flags="FPA", seq=sseq + 1,
                                   ack=cseq + 1 + len(request)) / reply)


def test_http_timeout_and_binary_body(analyze: Any, tmp_path: Path) -> None:
    body = b"\x89PNG\r\n\x1a\n\xff\xfe"  # not UTF-8: df-001 BinaryData
    reply = (b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 100\r\n\r\n"
             + body)
    cap = CaptureBuilder()
    _http_flow(cap, START, "example.com", reply, 41001)
    _http_flow(cap, START + 1.0, "twitter.com", None, 41002)
    path = cap.write(tmp_path / "http-drop.pcapng")
    m = _by_input(_measurements(analyze(path)))["twitter.com"]
    assert m["test_keys"]["x_fingerprint"]["techniques"] == ["http.drop"]
    dropped = _request(m, "target")
    _assert_df001_shape(dropped)
    assert dropped["failure"] == "generic_timeout_error"
    assert dropped["response"]["code"] == 0
    # Repeated header names: all in headers_list, the first one in the map.
    assert dropped["request"]["headers_list"][2:] == [["X-Trace", "a"], ["x-trace", "b"]]
    assert dropped["request"]["headers"]["X-Trace"] == "a" and "x-trace" not in dropped[
        "request"]["headers"]
    control = _request(m, "control")
    _assert_df001_shape(control)
    assert control["failure"] is None and control["response"]["code"] == 200
    assert control["response"]["body"] == {"format": "base64",
                                           "data": base64.b64encode(body).decode()}
    # Content-Length announced 100 bytes, 10 came: truncated.
    assert control["response"]["body_is_truncated"] is True
    assert control["response"]["x_body_length"] == len(body)


def test_measurements_without_http_have_empty_requests(analyze: Any,
                                                       censored_capture: Path) -> None:
    for m in _measurements(analyze(censored_capture)):
        assert m["test_keys"]["requests"] == []
        assert m["test_keys"]["agent"] == "agent"


def test_http_measurements_survive_a_jsonl_line() -> None:
    from fingerprint.output.jsonl import dumps_line

    for m in _fixture_measurements("ru/dpi-http-warning-redirect").values():
        line = dumps_line(m)
        assert line.endswith("\n") and line.count("\n") == 1
        assert json.loads(line) == m  # only JSON types: lists, not tuples; str keys
        assert OONI_TIME.match(json.loads(line)["measurement_start_time"])


def test_untrusted_target_and_control_certificates_are_inconclusive(
        catalog_file: Path, signatures_dir: Path, tmp_path: Path) -> None:
    """Both certificates untrusted (all TLS intercepted, or the trust anchors missing):
    no SNI-triggered interception to report, and no genuine path either."""
    from fingerprint.analysis.pipeline import analyze_files
    from fingerprint.catalog import load_catalog
    from fingerprint.report import build_report
    from fingerprint.signature import load_library
    from fingerprint.trust import TrustStore

    path = censored_network(twitter_blocked=False).write(tmp_path / "open.pcapng")
    catalog = load_catalog(str(catalog_file))
    result = analyze_files([str(path)], catalog, load_library(str(signatures_dir)),
                           TrustStore(None), on_problem=lambda _line: None)
    twitter = next(p for p in build_report(result.verdicts, catalog, "analyze")["platforms"]
                   if p["platform"] == "twitter")
    assert (twitter["status"], twitter["techniques"]) == ("inconclusive", [])
    tls = [t for t in twitter["tested"] if t["kind"] == "tls"]
    assert tls and not tls[0]["ok"] and "trust anchors" in tls[0]["detail"]
