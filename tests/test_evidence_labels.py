"""Evidence labels are right: a genuine answer is never called injected, and a finding
cites each packet once (issue 15, evidence).  Checked over every fixture's report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fingerprint.signature import SignatureLibrary, load_library
from fingerprint.testing.fixtures import Fixture, find_fixtures

REPO = Path(__file__).resolve().parents[1]
PCAPS = REPO / "pcaps"
FIXTURES = find_fixtures(PCAPS)


@pytest.fixture(scope="module")
def library() -> SignatureLibrary:
    return load_library(REPO / "signatures")


def _findings(fixture: Fixture, library: SignatureLibrary) -> list[dict[str, Any]]:
    _result, report = fixture.analyze(library)
    return [f for p in report["platforms"] for f in p["findings"]]


@pytest.mark.parametrize("fixture", FIXTURES, ids=[str(f.folder.relative_to(PCAPS))
                                                     for f in FIXTURES])
def test_a_finding_cites_each_packet_once(fixture: Fixture, library: SignatureLibrary) -> None:
    for finding in _findings(fixture, library):
        frames = [p["frame"] for p in finding["packets"] if p.get("frame") is not None]
        assert len(frames) == len(set(frames)), (finding["target"], finding["technique"], frames)


@pytest.mark.parametrize("fixture", FIXTURES, ids=[str(f.folder.relative_to(PCAPS))
                                                     for f in FIXTURES])
def test_a_late_genuine_dns_answer_is_not_labelled_injected(fixture: Fixture,
                                                            library: SignatureLibrary) -> None:
    for finding in _findings(fixture, library):
        genuine = {(tuple(sorted(p.get("dns_answer") or [])), p["ip_ttl"], p.get("df"))
                   for p in finding["packets"] if p["role"] == "genuine" and "dns_answer" in p}
        for packet in finding["packets"]:
            if packet["role"] == "injected" and "dns_answer" in packet:
                key = (tuple(sorted(packet["dns_answer"] or [])), packet["ip_ttl"], packet.get("df"))
                assert key not in genuine, (finding["target"], packet["frame"], packet["reasons"])


@pytest.mark.parametrize(("folder", "frame"), [("lab/gfw", 26), ("lab/gfw", 101),
                                                ("lab/turkmenistan", 27),
                                                ("lab/dns-tampering", 37)])
def test_recorded_late_answers_are_genuine(folder: str, frame: int,
                                           library: SignatureLibrary) -> None:
    roles = {p["role"] for f in _findings(Fixture(PCAPS / folder), library)
             for p in f["packets"] if p["frame"] == frame}
    assert roles == {"genuine"}


def test_kazakhstan_interception_lists_the_certificate_once(library: SignatureLibrary) -> None:
    [mitm] = [f for f in _findings(Fixture(PCAPS / "lab/kazakhstan"), library)
              if f["technique"] == "tls.mitm"]
    frames = [p["frame"] for p in mitm["packets"]]
    assert frames.count(142) == 1
