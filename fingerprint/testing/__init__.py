"""Helpers for contributors' tests: craft a capture, replay it, check fixture folders.

    from fingerprint.testing import Capture, replay

    cap = Capture(seed=3)
    flow = cap.tcp("203.0.113.10", 443, at=0.0)
    flow.handshake()
    flow.client_hello("twitter.com")
    flow.inject("RA", at_ms=12, ttl=101, ip_id=0)
    replay(cap.write(tmp_path / "capture.pcapng")).expect(technique="tls.sni_reset")

* `craft`: the packets a probe run would record, built with scapy and written
  as pcapng (the one builder behind the crafted fixtures, the importer's
  fixtures, the output tests' captures and the benchmark);
* `replay`: run a capture or fixture folder through the pipeline and assert
  on its findings and signatures, with an explanation when it fails;
* `fixtures`: fixture folders under `pcaps/` (one capture, expected.json, README).
* `scenes`: pieces several tests share (a one-platform catalog, a TLS attempt answered
  or silent, the confirmation round's note for an attempt).
"""

from fingerprint.testing.craft import Capture, DnsQuery, TcpFlow, client_hello, http_request, http_response
from fingerprint.testing.fixtures import Fixture, find_fixtures, resolve_fixture, verdict_summary
from fingerprint.testing.replay import (
    Replay,
    assert_capture_does_not_match,
    assert_capture_matches,
    library_with,
    replay,
)

__all__ = ["Capture", "DnsQuery", "Fixture", "Replay", "TcpFlow", "assert_capture_does_not_match",
           "assert_capture_matches", "client_hello", "find_fixtures", "http_request", "http_response",
           "library_with", "replay", "resolve_fixture", "verdict_summary"]
