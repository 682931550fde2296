"""The lab brought up per scenario and checked from the client namespace with
plain tools (dig, curl, openssl, ping, tcpdump): each censor behaviour puts
exactly the configured packets on the wire, and `down` leaves nothing behind.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from fingerprint.lab import lab as lab_core
from fingerprint.lab import state, topology
from fingerprint.lab.censors.dns_injection import GFW_FORGED_ADDRESSES
from fingerprint.lab.scenarios import Rule, Scenario, load_scenario

pytestmark = [
    pytest.mark.needs_root,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root (network namespaces)"),
]

CLIENT = topology.namespace("client")


def in_client(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", CLIENT, *args], capture_output=True,
                          text=True, timeout=timeout, check=False)


@contextmanager
def running(scenario: str | Scenario) -> Iterator[lab_core.LabInfo]:
    info = lab_core.up(load_scenario(scenario) if isinstance(scenario, str) else scenario)
    try:
        yield info
    finally:
        lab_core.down()


@contextmanager
def capture(bpf: str) -> Iterator[list[Any]]:
    """Packets seen on the client's interface while the block runs."""
    from scapy.utils import rdpcap

    packets: list[Any] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.pcap"
        # --immediate-mode: without it packets still in the kernel buffer are lost at SIGTERM.
        proc = subprocess.Popen(["ip", "netns", "exec", CLIENT, "tcpdump", "-Z", "root", "-i",
                                 "to-r1", "-n", "-U", "--immediate-mode", "-w", str(path), bpf],
                                stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        proc.stderr.readline()  # "listening on ...": the capture is armed
        try:
            yield packets
        finally:
            _settle(path)
            proc.terminate()
            proc.wait()
        packets.extend(rdpcap(str(path)))


def _settle(path: Path, quiet: float = 0.2, limit: float = 3.0) -> None:
    """Wait until tcpdump has written what the kernel handed it: a loaded machine can
    leave it behind, and packets not yet read when it gets SIGTERM are lost."""
    deadline = time.monotonic() + limit
    size = -1
    while time.monotonic() < deadline:
        current = path.stat().st_size if path.exists() else 0
        if current == size:
            return
        size = current
        time.sleep(quiet)


def dig(name: str, server: str = topology.RESOLVER_ADDRESS) -> str:
    return in_client("dig", "+time=2", "+tries=1", f"@{server}", name, "A").stdout


def curl_https(info: lab_core.LabInfo, name: str, address: str, path: str = "/",
               max_time: float = 4) -> subprocess.CompletedProcess[str]:
    return in_client("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time",
                     str(max_time), "--cacert", str(info.ca_path), "--resolve",
                     f"{name}:443:{address}", f"https://{name}{path}")


def address_of(info: lab_core.LabInfo, platform: str) -> str:
    return info.catalog.platforms[platform].addresses[0]


def from_server(packets: list[Any], address: str) -> list[Any]:
    from scapy.layers.inet import IP

    return [p for p in packets if IP in p and p[IP].src == address]


def test_routers_send_time_exceeded_and_no_route_leaves_the_lab() -> None:
    from scapy.layers.inet import ICMP, IP

    send_udp = ("import socket, sys; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
                "s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, int(sys.argv[2])); "
                "s.sendto(b'probe', (sys.argv[1], 33434))")
    with running("clean") as info:
        target = address_of(info, "twitter")
        senders = []
        for ttl in range(1, 7):
            with capture("icmp") as packets:
                in_client(sys.executable, "-c", send_udp, target, str(ttl))
                time.sleep(0.3)  # let the ICMP answer arrive before the capture stops
            senders.append([(p[IP].src, p[ICMP].type) for p in packets if ICMP in p])
        hops = topology.hop_addresses()
        assert senders[:5] == [[(hop, 11)] for hop in hops]
        assert senders[5] == [(target, 3)]  # port unreachable from the server itself
        for ns in topology.all_namespaces():
            routes = subprocess.run(["ip", "-n", ns, "route", "show"], capture_output=True,
                                    text=True, check=True).stdout
            assert "default" not in routes
            for line in routes.splitlines():
                network = line.split()[0]
                assert network.startswith(("192.0.2.", "198.51.100.", "203.0.113.")), line


def test_clean_lab_serves_every_platform_with_the_lab_ca() -> None:
    with running("clean") as info:
        for platform in info.catalog.platforms.values():
            address = platform.addresses[0]
            assert f"IN\tA\t{address}" in dig(platform.domains[0]), platform.id
            assert curl_https(info, platform.domains[0], address).stdout == "200", platform.id
        plain = in_client("curl", "-s", "--max-time", "3", "--resolve",
                          f"vk.com:80:{address_of(info, 'vkontakte')}", "http://vk.com/").stdout
        assert "platform: vkontakte" in plain
        dot = in_client("kdig", "+tls", "@" + topology.CONTROL_RESOLVER_ADDRESS, "example.com")
        if dot.returncode != 0:  # kdig is optional; openssl proves the DoT endpoint instead
            dot = in_client("openssl", "s_client", "-connect",
                            f"{topology.CONTROL_RESOLVER_ADDRESS}:853", "-CAfile",
                            str(info.ca_path), "-verify_return_error", "-brief")
            assert "Verification: OK" in dot.stderr + dot.stdout


def test_lab_exec_resolves_names_through_the_lab_resolver_and_down_removes_it() -> None:
    """`fingerprint lab exec -- curl https://twitter.com/` as the README shows it: the
    namespaces read a resolv.conf naming the lab resolver, not the host's."""
    with running("clean") as info:
        for ns in topology.all_namespaces():
            assert topology.resolv_conf_path(ns).read_text().splitlines()[-1] == \
                f"nameserver {topology.RESOLVER_ADDRESS}"
        proc = subprocess.run([sys.executable, "-m", "fingerprint", "lab", "exec", "--", "curl",
                               "-s", "-o", "/dev/null", "-w", "%{http_code} %{remote_ip}",
                               "--max-time", "4", "--cacert", str(info.ca_path),
                               "https://twitter.com/"],
                              capture_output=True, text=True, timeout=30, check=False)
        assert proc.stdout == f"200 {address_of(info, 'twitter')}", proc.stderr
    for ns in topology.all_namespaces():
        assert not topology.resolv_conf_path(ns).parent.exists()


def test_uzbekistan_2021_drops_the_twitter_client_hello_but_not_example_com() -> None:
    from scapy.layers.inet import TCP

    with running("uzbekistan-2021") as info:
        twitter = address_of(info, "twitter")
        assert f"IN\tA\t{twitter}" in dig("twitter.com")  # DNS clean
        assert curl_https(info, "example.com", twitter).stdout == "200"
        with capture(f"host {twitter} and tcp port 443") as packets:
            result = curl_https(info, "twitter.com", twitter, max_time=3)
        assert result.returncode == 28  # timeout, no RST
        answers = from_server(packets, twitter)
        assert any(p[TCP].flags.S and p[TCP].flags.A for p in answers)  # handshake worked
        assert not any(p[TCP].payload and len(p[TCP].payload) for p in answers)  # no ServerHello
        assert not any(p[TCP].flags.R for p in answers)
        assert curl_https(info, "telegram.org", address_of(info, "telegram")).stdout == "200"


def test_gfw_forged_answer_arrives_first_with_flags_8580_then_the_genuine_one() -> None:
    from scapy.layers.dns import DNS
    from scapy.layers.inet import IP

    with running("gfw") as info:
        with capture("udp port 53") as packets:
            dig("www.twitter.com")
            time.sleep(0.3)  # dig stops at the first answer; the genuine one is 25 ms behind
        responses = [p for p in packets if DNS in p and p[DNS].qr == 1]
        assert len(responses) == 2
        forged, genuine = responses
        assert bytes(forged[DNS])[2:4] == b"\x85\x80"
        assert forged[DNS].an[0].rdata in GFW_FORGED_ADDRESSES
        assert genuine[DNS].an[0].rdata == address_of(info, "twitter")
        assert not forged[IP].flags.DF and genuine[IP].flags.DF
        with capture("udp port 53") as packets:
            dig("example.com")
        assert len([p for p in packets if DNS in p and p[DNS].qr == 1]) == 1


def test_gfw_ttl_copying_injector_mirrors_the_query_ttl() -> None:
    from scapy.layers.dns import DNS
    from scapy.layers.inet import IP

    with running("gfw"):
        with capture("udp port 53") as packets:
            dig("www.google.com")
        forged = next(p for p in packets if DNS in p and p[DNS].qr == 1)
        # Query leaves with TTL 64, reaches the censor (hop 3) with 62; the reply
        # leaves with 62 and crosses r2 and r1.
        assert forged[IP].ttl == 60


def test_gfw_resets_type_one_and_type_two_to_both_ends() -> None:
    from scapy.layers.inet import IP, TCP

    with running("gfw") as info:
        twitter = address_of(info, "twitter")
        with capture(f"host {twitter} and tcp port 443") as packets:
            result = curl_https(info, "twitter.com", twitter)
        assert result.returncode != 0
        resets = [p for p in from_server(packets, twitter) if p[TCP].flags.R]
        # The server's own kernel also resets (window 0, TTL 64 minus 5 hops); the
        # injected type-1 RST has a random non-zero window, type-2 its own TTLs.
        type_one = [p for p in resets if not p[TCP].flags.A and p[TCP].window != 0]
        type_two = [p for p in resets if p[TCP].flags.A and p[IP].ttl != 64 - 5]
        assert len(type_one) == 1 and type_one[0][IP].id == 0
        assert len(type_two) == 3
        base = type_two[0][TCP].seq
        assert [(p[TCP].seq - base) % 2**32 for p in type_two] == [0, 1460, 4380]
        assert [p[IP].ttl for p in type_two] == [45, 46, 47]
        events = info.engine_log.read_text()
        assert '"behaviour": "sni_reset"' in events and "twitter.com" in events
        assert curl_https(info, "example.com", twitter).stdout == "200"


def test_turkmenistan_fingerprints_on_dns_and_rst() -> None:
    from scapy.layers.dns import DNS
    from scapy.layers.inet import IP, TCP

    with running("turkmenistan") as info:
        with capture("udp port 53") as packets:
            dig("twitter.com")
        forged = next(p for p in packets if DNS in p and p[DNS].qr == 1)
        assert forged[DNS].an[0].rdata == "127.0.0.1"
        assert (forged[IP].id, forged[IP].ttl, bool(forged[IP].flags.DF)) == (30000, 126, False)
        twitter = address_of(info, "twitter")
        with capture(f"host {twitter} and tcp port 443") as packets:
            assert curl_https(info, "twitter.com", twitter, max_time=3).returncode != 0
        rst = next(p for p in from_server(packets, twitter) if p[TCP].flags.R)
        assert (rst[TCP].seq, rst[TCP].window, rst[IP].id, rst[IP].ttl) == (0, 0, 30000, 126)


def test_uzbekistan_middlebox_fin_then_rst_and_http_redirect() -> None:
    from scapy.layers.inet import TCP

    with running("uzbekistan-middlebox") as info:
        twitter = address_of(info, "twitter")
        with capture(f"host {twitter} and tcp port 443") as packets:
            curl_https(info, "twitter.com", twitter, max_time=3)
            time.sleep(1.5)  # the RST follows the FIN after rst_delay (1 s)
        answers = [p for p in from_server(packets, twitter) if not p[TCP].flags.S]
        fin = next(p for p in answers if p[TCP].flags.F)
        assert b"Middlebox v 1.0" in bytes(fin[TCP].payload)
        assert any(p[TCP].flags.R for p in answers[answers.index(fin):])
        headers = in_client("curl", "-s", "-i", "--max-time", "3", "--resolve",
                            f"twitter.com:80:{twitter}", "http://twitter.com/").stdout
        assert headers.startswith("HTTP/1.1 302") and "Location: http://reestr.mitc.uz/" in headers


def test_iran_redirects_dns_and_serves_the_iframe_blockpage() -> None:
    from scapy.layers.dns import DNS

    with running("iran") as info:
        with capture("udp port 53") as packets:
            dig("facebook.com")
        responses = [p for p in packets if DNS in p and p[DNS].qr == 1]
        assert len(responses) == 1 and responses[0][DNS].an[0].rdata == "10.10.34.34"
        page = in_client("curl", "-s", "--max-time", "3", "--resolve",
                         f"facebook.com:80:{address_of(info, 'facebook')}",
                         "http://facebook.com/").stdout
        assert 'iframe src="http://10.10.34.34' in page
        assert curl_https(info, "facebook.com", address_of(info, "facebook"),
                          max_time=3).returncode == 28


def test_dns_tampering_nxdomain_servfail_drop() -> None:
    with running("dns-tampering"):
        assert "status: NXDOMAIN" in dig("tiktok.com")
        assert "status: SERVFAIL" in dig("wechat.com")
        assert "timed out" in dig("signal.org")
        assert "status: NOERROR" in dig("example.com")


def test_russia_throttles_twitter_flows_only() -> None:
    def throttled_bytes() -> int:
        stats = subprocess.run(["ip", "netns", "exec", topology.namespace("censor"), "tc", "-s",
                                "class", "show", "dev", "to-r2"], capture_output=True, text=True,
                               check=True).stdout
        block = stats.split("class htb 1:20")[1]
        return int(block.split("Sent ")[1].split(" bytes")[0])

    with running("russia") as info:
        twitter = address_of(info, "twitter")
        before = throttled_bytes()
        assert curl_https(info, "example.com", twitter, "/bytes/50000").stdout == "200"
        assert throttled_bytes() == before
        assert curl_https(info, "twitter.com", twitter, "/bytes/50000",
                          max_time=15).stdout == "200"
        assert throttled_bytes() - before > 50000


def test_kazakhstan_intercepts_only_matching_sni_with_an_untrusted_ca() -> None:
    with running("kazakhstan") as info:
        google = address_of(info, "google")

        def handshake(name: str) -> str:
            result = subprocess.run(["ip", "netns", "exec", CLIENT, "openssl", "s_client",
                                     "-connect", f"{google}:443", "-servername", name,
                                     "-CAfile", str(info.ca_path)], input="",
                                    capture_output=True, text=True, timeout=15, check=False)
            return result.stdout

        forged = handshake("google.com")
        assert "Qaznet Trust Network" in forged  # the published root name (tls_mitm profile)
        assert "Verify return code: 0 (ok)" not in forged
        genuine = handshake("example.com")
        assert "fingerprint lab CA" in genuine and "Verify return code: 0 (ok)" in genuine
        assert curl_https(info, "example.com", google).stdout == "200"
        assert curl_https(info, "google.com", google).returncode == 60  # untrusted certificate


def test_ip_blackhole_reject_and_reset() -> None:
    from scapy.layers.inet import ICMP, IP, TCP

    with running("blackhole") as info:
        telegram, signal_, whatsapp = (address_of(info, p)
                                       for p in ("telegram", "signal", "whatsapp"))
        with capture("tcp port 443 or icmp") as packets:
            assert curl_https(info, "telegram.org", telegram, max_time=2).returncode == 28
            assert curl_https(info, "signal.org", signal_, max_time=2).returncode == 7
            assert curl_https(info, "whatsapp.com", whatsapp, max_time=2).returncode == 7
        assert not from_server(packets, telegram)
        icmp = [p for p in packets if ICMP in p and p[ICMP].type == 3]
        assert icmp and all(p[ICMP].code == 13 for p in icmp)
        resets = [p for p in from_server(packets, whatsapp) if TCP in p and p[TCP].flags.R]
        # Forged by the censor (gfw-2025 profile), unlike a Linux closed port's own RST:
        # RST+ACK, seq 0, windows 1980-1982, no DF, a non-zero IP ID, sent from hop 3.
        assert resets and all(p[TCP].flags.A and p[TCP].seq == 0 for p in resets)
        assert [p[TCP].window for p in resets[:3]] == [1980, 1981, 1982]
        assert all(not p[IP].flags.DF and p[IP].id != 0 and p[IP].ttl == 62 for p in resets)
        assert curl_https(info, "example.com", topology.CONTROL_SERVER_ADDRESS).stdout == "200"


def test_residual_block_hits_the_control_sni_after_a_trigger() -> None:
    scenario = Scenario("residual-test", "GFW resets with a 60 s residual block", (), (
        Rule("sni_reset", ("twitter",), {"profile": "gfw", "residual_seconds": 60}),))
    with running(scenario) as info:
        twitter = address_of(info, "twitter")
        assert curl_https(info, "example.com", twitter).stdout == "200"
        assert curl_https(info, "twitter.com", twitter).returncode != 0
        assert curl_https(info, "example.com", twitter, max_time=2).returncode == 28
        assert curl_https(info, "telegram.org", address_of(info, "telegram")).stdout == "200"


def test_second_up_is_refused_and_down_leaves_nothing() -> None:
    with running("clean"):
        with pytest.raises(lab_core.LabBusyError):
            lab_core.up(load_scenario("gfw"))
        pids = list(state.read().pids)  # type: ignore[union-attr]
        assert pids
    assert topology.existing_namespaces() == []
    assert not any(state.pid_alive(p) and not lab_core._zombie(p) for p in pids)
    assert [e.name for e in state.state_dir().iterdir()] == ["lock"]
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True)
    assert "to-" not in links.stdout


def test_stale_state_from_a_killed_run_is_cleaned_by_the_next_up() -> None:
    killed = subprocess.Popen(["sleep", "60"])
    lab_core.up(load_scenario("clean"), mode="run")
    recorded = state.read()
    assert recorded is not None
    recorded.owner_pid = killed.pid  # a `lab run` that is then SIGKILLed
    state.write(recorded)
    killed.kill()
    killed.wait()
    try:
        with running("uzbekistan-2021") as info:
            assert info.scenario.id == "uzbekistan-2021"
    finally:
        lab_core.down()
    assert topology.existing_namespaces() == []
