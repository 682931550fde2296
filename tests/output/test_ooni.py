"""OONI measurements built from an analysis: envelope, template shapes, failures, privacy."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
from synthetic import CLIENT, CONTROL, TELEGRAM, TWITTER, censored_network

from fingerprint.model import Failure
from fingerprint.output.ooni import (
    DNS_SERVER_MISBEHAVING,
    MeasurementError,
    ProbeInfo,
    build_measurements,
    measurements_from_pipeline,
)

ENVELOPE = {
    "annotations": dict, "data_format_version": str, "input": str,
    "measurement_start_time": str, "probe_asn": str, "probe_cc": str, "probe_ip": str,
    "resolver_ip": str, "software_name": str, "software_version": str, "test_keys": dict,
    "test_name": str, "test_runtime": float, "test_start_time": str, "test_version": str,
}
OONI_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
DF007 = {f.value for f in Failure} | {DNS_SERVER_MISBEHAVING}


def _measurements(result: Any, **options: Any) -> list[dict[str, Any]]:
    return measurements_from_pipeline(result.pipeline, result.verdicts, **options)


def _by_input(measurements: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {m["input"]: m for m in measurements}


def _failures(test_keys: dict[str, Any]) -> list[str | None]:
    out = [q["failure"] for q in test_keys["queries"]]
    out += [c["status"]["failure"] for c in test_keys["tcp_connect"]]
    out += [h["failure"] for h in test_keys["tls_handshakes"]]
    out += [e["failure"] for e in test_keys["network_events"]]
    return out


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
        assert m["data_format_version"] == "0.2.0"
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
    # Self-signed: a verifying client would have refused it.
    assert control["failure"] == "ssl_unknown_authority"
    for connect in keys["tcp_connect"]:
        assert set(connect) >= {"ip", "port", "status", "t0", "t", "transaction_id"}
        assert connect["status"] == {"blocked": False, "failure": None, "success": True}
    read = [e for e in keys["network_events"] if e["operation"] == "read"
            and e["transaction_id"] == reset["transaction_id"]]
    assert read[0]["failure"] == "connection_reset"


def test_blackholed_connect(analyze: Any, censored_capture: Path) -> None:
    m = _by_input(_measurements(analyze(censored_capture)))[TELEGRAM]
    target = [c for c in m["test_keys"]["tcp_connect"] if c["x_role"] == "target"]
    assert target[0]["status"] == {"blocked": True, "failure": "generic_timeout_error",
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
                assert failure in DF007
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
    assert all(f is None or f == "ssl_unknown_authority" for f in _failures(m["test_keys"]))


def test_build_measurements_of_nothing_is_empty(analyze: Any, tmp_path: Path) -> None:
    from synthetic import CaptureBuilder

    path = CaptureBuilder().write(tmp_path / "empty.pcapng")
    result = analyze(path)
    assert build_measurements(result.pipeline.analysis, result.verdicts,
                              result.pipeline.catalog) == []
