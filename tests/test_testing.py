"""fingerprint.testing: the helpers signature authors use in their own tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from fingerprint.errors import InputError
from fingerprint.testing import (
    assert_capture_does_not_match,
    assert_capture_matches,
    library_with,
    replay,
)
from fingerprint.testing.craft import Capture

REPO = Path(__file__).resolve().parents[1]
SERVER = "203.0.113.10"

NEW_SIGNATURE = """\
id: xx-new-censor
title: A censor not in the library yet
kind: censor
techniques: [tls.sni_reset]
status: experimental
references: [{source: a test, values: RST with IP ID 4242}]
match:
  matchers:
    - {field: ip.id, op: equals, value: 4242}
fixtures: {positive: [pcaps/none]}
"""


def reset_capture(path: Path, ip_id: int) -> Path:
    cap = Capture(seed=21)
    control = cap.tcp(SERVER, 443, at=0.0)
    control.handshake()
    control.client_hello("example.com")
    control.server_hello()
    flow = cap.tcp(SERVER, 443, at=1.0)
    flow.handshake()
    flow.client_hello("twitter.com")
    flow.inject("RA", at_ms=4, ttl=90, ip_id=ip_id, window=0)
    return cap.write(path)


def test_replay_of_a_fixture_folder_expects_technique_and_signature() -> None:
    finding = replay(REPO / "pcaps" / "uz" / "middlebox-fin").expect(
        technique="tls.sni_fin", signature="uz-middlebox-fin")
    assert finding.platform == "twitter"


def test_failed_expectation_explains_which_matchers_failed() -> None:
    with pytest.raises(AssertionError) as info:
        replay(REPO / "pcaps" / "cn" / "gfw-rst-type1").expect(signature="tm-rst")
    text = str(info.value)
    assert "cn-gfw-rst-type1" in text
    assert "FAIL ip.id equals 30000" in text
    assert "ok   tcp.flags equals R" in text


def test_unknown_signature_is_reported() -> None:
    with pytest.raises(AssertionError, match="no signature 'nope'"):
        replay(REPO / "pcaps" / "tm" / "rst").expect(signature="nope")


def test_a_new_signature_file_is_tested_with_the_shipped_library(tmp_path: Path) -> None:
    sig = tmp_path / "xx-new-censor.yaml"
    sig.write_text(NEW_SIGNATURE)
    capture = reset_capture(tmp_path / "hit.pcapng", 4242)
    finding = assert_capture_matches(capture, "xx-new-censor", technique="tls.sni_reset",
                                     signatures=sig)
    assert "xx-new-censor" in finding.signatures
    miss = reset_capture(tmp_path / "miss.pcapng", 4243)
    assert_capture_does_not_match(miss, "xx-new-censor", signatures=sig)
    with pytest.raises(AssertionError, match="no finding"):
        assert_capture_matches(miss, "xx-new-censor", signatures=sig)
    assert library_with(sig).get("tm-rst") is not None


def test_expect_no_match_fails_on_a_match() -> None:
    with pytest.raises(AssertionError, match="tm-rst matched"):
        replay(REPO / "pcaps" / "tm" / "rst").expect_no_match("tm-rst")


def test_false_positive_signature_is_expected_among_suppressed_findings() -> None:
    result = replay(REPO / "pcaps" / "false-positive" / "closed-port-rst")
    finding = result.expect(signature="fp-linux-closed-port-rst")
    assert finding.technique.value == "ip.reset"
    assert result.findings == []
    # Not ip.reset, but no TLS test could run on an address that refuses every SYN:
    # inconclusive, not accessible (issue 13 case 4).
    assert result.status("signal") == "inconclusive"


def test_expect_accessible_fails_for_a_blocked_platform() -> None:
    with pytest.raises(AssertionError, match="twitter: blocked"):
        replay(REPO / "pcaps" / "tm" / "rst").expect_accessible()
    with pytest.raises(AssertionError, match="not tested"):
        replay(REPO / "pcaps" / "tm" / "rst").expect_accessible("signal")


def test_missing_capture_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        replay(tmp_path / "absent.pcap")
