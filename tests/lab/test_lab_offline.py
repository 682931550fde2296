"""Lab pieces that need no root: parsing, scenarios, behaviour options, CLI guard."""

from __future__ import annotations

import ssl

import pytest
from click.testing import CliRunner

from fingerprint.lab._system import LabError
from fingerprint.lab.censors import BEHAVIOURS, build_behaviour
from fingerprint.lab.censors._wire import http_host, name_matches, parse, tls_sni
from fingerprint.lab.cli import lab
from fingerprint.lab.scenarios import load_scenario, scenario_ids


def client_hello(server_name: str) -> bytes:
    context = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def test_sni_is_read_from_a_real_client_hello() -> None:
    assert tls_sni(client_hello("www.twitter.com")) == "www.twitter.com"


def test_truncated_client_hello_gives_no_sni_rather_than_garbage() -> None:
    assert tls_sni(client_hello("twitter.com")[:60]) is None


def test_http_host_and_name_matching() -> None:
    assert http_host(b"GET / HTTP/1.1\r\nHost: VK.com:80\r\n\r\n") == "vk.com"
    assert http_host(b"\x16\x03\x01") is None
    assert name_matches("m.vk.com.", ("vk.com",))
    assert not name_matches("notvk.com", ("vk.com",))


def test_parse_reads_tcp_fields() -> None:
    from scapy.layers.inet import IP, TCP

    raw = bytes(IP(src="192.0.2.10", dst="203.0.113.20", ttl=61, id=7) /
                TCP(sport=1234, dport=443, seq=10, ack=20, flags="PA", window=99) / b"hi")
    packet = parse(raw)
    assert packet is not None
    assert (packet.ttl, packet.ip_id, packet.seq, packet.ack, packet.window, packet.payload) == (
        61, 7, 10, 20, 99, b"hi")


def test_every_scenario_loads_and_names_known_behaviours() -> None:
    ids = scenario_ids()
    for required in ("uzbekistan-2021", "uzbekistan-nov-2021", "gfw", "iran", "russia",
                     "turkmenistan", "kazakhstan", "blackhole", "clean"):
        assert required in ids
    for scenario_id in ids:
        scenario = load_scenario(scenario_id)
        assert scenario.title
        assert scenario_id == "clean" or scenario.sources
        for rule in scenario.rules:
            build_behaviour(rule.behaviour, rule.options, ("example.org",), ("203.0.113.9",))


def test_uzbekistan_2021_expects_sni_drop_for_the_july_set_only() -> None:
    expected = load_scenario("uzbekistan-2021").expected(["twitter", "telegram"])
    assert expected["twitter"] == ["tls.sni_drop"]
    assert expected["telegram"] == []
    assert {p for p, t in expected.items() if t} == {"twitter", "tiktok", "vkontakte", "skype",
                                                      "wechat"}


def test_behaviour_options_are_checked() -> None:
    with pytest.raises(LabError, match="unknown option"):
        build_behaviour("sni_drop", {"colour": "red"}, ("x.org",), ())
    with pytest.raises(LabError, match="unknown profile"):
        build_behaviour("dns_injection", {"profile": "atlantis"}, ("x.org",), ())
    assert all(cls.__module__.startswith("fingerprint.lab.censors.") for cls in BEHAVIOURS.values())


def test_without_root_one_line_and_exit_77(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    for args in (["up", "clean"], ["down"], ["run", "clean"], ["exec", "--", "true"]):
        result = CliRunner().invoke(lab, args)
        assert result.exit_code == 77, args
        assert len(result.output.strip().splitlines()) == 1
        assert "root" in result.output


def test_list_names_every_scenario() -> None:
    result = CliRunner().invoke(lab, ["list"])
    assert result.exit_code == 0
    assert {line.split()[0] for line in result.output.splitlines()} == set(scenario_ids())


def test_scenario_signatures_exist_and_cover_their_behaviours_countries() -> None:
    """A scenario names signatures of the shipped library, and a scenario that emulates
    a country's network gives the probe that vantage point."""
    from fingerprint.signature.library import load_library

    library_ids = {signature.id for signature in load_library(None).signatures}
    for scenario_id in scenario_ids():
        scenario = load_scenario(scenario_id)
        assert set(scenario.signatures) <= library_ids, scenario_id
        if scenario.vantage_cc is not None:
            assert len(scenario.vantage_cc) == 2 and scenario.vantage_cc.isupper()
    assert load_scenario("uzbekistan-2021").vantage_cc == "UZ"
    assert "uz-sni-drop-2021" in load_scenario("uzbekistan-2021").signatures


@pytest.mark.parametrize("vantage", [{"cc": "Uzbekistan"}, {"asn": "8193x"}, {"city": "Tashkent"},
                                     ["UZ"]])
def test_bad_vantage_is_refused(vantage: object) -> None:
    from fingerprint.lab.scenarios import scenario_from_data

    data = {"title": "t", "vantage": vantage,
            "rules": [{"behaviour": "sni_drop", "platforms": ["twitter"]}]}
    with pytest.raises(LabError, match="vantage"):
        scenario_from_data("bad", data)


def test_lab_table_sets_found_against_expected_with_signature_location_and_proof() -> None:
    from fingerprint.lab.cli import _table

    finding = {"target": "twitter.com", "address": "203.0.113.20", "technique": "tls.sni_drop",
               "signatures": ["uz-sni-drop-2021"], "confidence": 0.99,
               "location": {"hop": 3, "mode": "in-path", "router": "198.51.100.2"},
               "evidence": ["3 of 3 attempts: silence"]}
    report = {"scenario": "uzbekistan-2021", "vantage": {"cc": "UZ", "asn": "AS8193"},
              "expected": {"twitter": ["tls.sni_drop"], "telegram": []},
              "platforms": [
                  {"platform": "twitter", "name": "Twitter / X", "status": "blocked",
                   "techniques": ["tls.sni_drop"], "findings": [finding]},
                  {"platform": "telegram", "name": "Telegram", "status": "accessible",
                   "techniques": [], "findings": []}]}
    lines = _table(report).splitlines()
    assert lines[0] == "scenario uzbekistan-2021 (probed as a vantage point in UZ AS8193)"
    assert lines[2].split() == ["twitter", "blocked", "tls.sni_drop", "uz-sni-drop-2021", "hop", "3",
                                "tls.sni_drop"]
    assert lines[3].split() == ["telegram", "accessible", "-", "-", "-", "(accessible)"]
    assert "  location: hop 3, in-path, after router 198.51.100.2" in lines
    assert "  3 of 3 attempts: silence" in lines


def test_lab_run_keeps_catalog_and_ca_beside_the_capture() -> None:
    from pathlib import Path

    from fingerprint.lab.lab import replay_files

    assert replay_files(Path("out/evidence.pcapng")) == (Path("out/evidence.catalog.yaml"),
                                                         Path("out/evidence.ca.pem"))
    assert replay_files(Path("run.pcapng.gz")) == (Path("run.catalog.yaml"), Path("run.ca.pem"))
    assert replay_files(Path("capture")) == (Path("capture.catalog.yaml"), Path("capture.ca.pem"))


def test_lab_probes_with_quic_unless_the_scenario_or_the_user_says_not() -> None:
    """Issue 14: QUIC Initials and ECH ClientHellos are the probe's default; a scenario
    may say `probe_quic: false`, and `lab run --quic/--no-quic` overrides either."""
    from fingerprint.lab.cli import _probe_args
    from fingerprint.lab.scenarios import scenario_from_data

    rules = [{"behaviour": "sni_drop", "platforms": ["twitter"]}]
    default = scenario_from_data("on", {"title": "t", "rules": rules})
    off = scenario_from_data("off", {"title": "t", "rules": rules, "probe_quic": False})
    assert default.probe_quic and not off.probe_quic
    assert "--no-quic" not in _probe_args(default)
    assert "--no-quic" in _probe_args(off)
    assert "--no-quic" in _probe_args(default, False)
    assert "--no-quic" not in _probe_args(off, True)
    with pytest.raises(LabError, match="probe_quic"):
        scenario_from_data("bad", {"title": "t", "rules": rules, "probe_quic": "yes"})
