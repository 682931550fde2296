"""IP rules: an address that does not complete the TCP handshake while control addresses do.

Techniques: ip.blackhole (SYNs unanswered), ip.reset (RST to the SYN), ip.reject
(ICMP/ICMPv6 destination unreachable; with some SYNs unanswered too, or only on
another port of the address, it is still ip.reject alone: routers rate-limit ICMP).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from fingerprint.analysis import confidence
from fingerprint.analysis.addresses import is_v6
from fingerprint.analysis.evidence import EvidencePacket, packet_fields
from fingerprint.analysis.findings import Check, Finding, Verdicts, count_of
from fingerprint.analysis.index import ObservationIndex
from fingerprint.analysis.locate import Seen, SeriesPoint, locate
from fingerprint.analysis.observe import TcpFlow
from fingerprint.analysis.outcome import FlowOutcome, Outcome
from fingerprint.analysis.residual import residual, start_of
from fingerprint.catalog import OTHER
from fingerprint.model import Technique

CONNECT_TECHNIQUES = {Outcome.CONNECT_TIMEOUT: Technique.IP_BLACKHOLE,
                      Outcome.CONNECT_RESET: Technique.IP_RESET,
                      Outcome.CONNECT_ICMP: Technique.IP_REJECT}
"""Majority connect failure -> technique."""


def verdict(index: ObservationIndex, server: str, port: int,
            groups: list[tuple[str, str, list[TcpFlow]]], out: Verdicts) -> None:
    """The address's connection attempts on one port, against control addresses on that port."""
    flows = [f for _k, _n, fs in groups for f in fs]
    top_syn_ttl = max((g.syn.ttl for g in flows if g.syn is not None), default=0)
    full = [f for f in flows if f.syn is None or f.syn.ttl >= top_syn_ttl]
    connected = [f for f in full if f.synack is not None]
    # Only a flow without a SYN-ACK can have a connect_* outcome.
    unanswered = [(f, index.outcome(f)) for f in full if f.synack is None]
    failed = [(f, o) for f, o in unanswered if o.kind.is_connect_failure]
    if index.is_control_address(server):
        return
    platform = index.platform_of_address(server)
    block = residual(index, server, port) if failed else None
    during_block = 0
    if block is not None and block.covers(server, port) and (connected or block.scope == "client"):
        # Attempts that failed after a trigger had the client blocked are the residual
        # block's, not the address's: on an address that connected before it, and under
        # a block of the client's whole address on any address (one first tried during
        # the block cannot show it is blocked for its own sake).
        kept = [(f, o) for f, o in failed if start_of(f) <= block.start]
        during_block = len(failed) - len(kept)
        failed = kept
    failed = [(f, o) for f, o in failed if not abandoned_for_another(index, f)]
    if not failed:
        if during_block and not connected and platform != OTHER:
            out.checks.append(Check(platform, server, "ip", False, None,
                                    f"{server}:{port}: every connection began during "
                                    f"{block.describe() if block else 'residual blocking'}"))
            return
        if connected and platform != OTHER:
            out.checks.append(Check(platform, server, "ip", True, None, f"{server}:{port}"))
        return
    if connected and len(connected) >= len(failed):
        return  # mostly reachable: transient loss, not a block
    kinds = Counter(o.kind for _f, o in failed)
    majority, _ = kinds.most_common(1)[0]
    rate_limited = False
    if set(kinds) == {Outcome.CONNECT_TIMEOUT} and rejected_elsewhere(index, server, port):
        # Silent here, ICMP unreachable on another port of the same address.
        rate_limited = True
        majority = Outcome.CONNECT_ICMP
    elif kinds[Outcome.CONNECT_ICMP] and set(kinds) <= {Outcome.CONNECT_ICMP,
                                                        Outcome.CONNECT_TIMEOUT}:
        # Some SYNs drew ICMP unreachable and the others nothing: routers rate-limit
        # the ICMP they send (RFC 1812 4.3.2.8), so the silent ones were rejected too:
        # ip.reject alone, never ip.reject plus ip.blackhole.
        rate_limited = majority is not Outcome.CONNECT_ICMP
        majority = Outcome.CONNECT_ICMP
    control_ok = index.control_addresses_ok(server, port)
    technique = CONNECT_TECHNIQUES[majority]
    flow, outcome = next(((f, o) for f, o in failed if o.kind == majority), failed[0])
    if control_ok is False:
        out.checks.append(Check(platform, server, "ip", False, False, f"{server}:{port}"))
        return
    if control_ok is None:
        other = other_version_connected(index, server, port)
        if other is not None:
            version, mine = ("IPv6", "IPv4") if is_v6(server) else ("IPv4", "IPv6")
            out.checks.append(Check(
                platform, server, "ip", False, None,
                f"{server}:{port}: {len(failed)} {majority} over {version}, with no {version} "
                f"control address; the same site connected over {mine} ({other}): a broken "
                f"{version} path looks the same, so no block is claimed"))
            return
        if majority is Outcome.CONNECT_TIMEOUT and not connected_elsewhere(index, server):
            # Silence only: an RST or an ICMP error is an answer, a shutdown gives none.
            out.checks.append(Check(
                platform, server, "ip", False, None,
                f"{server}:{port}: {len(failed)} unanswered, with no control address, and no "
                "connection to any other address in the capture completed either: a shutdown "
                "or an outage looks the same, so no block is claimed"))
            return
    conf = confidence.base(control_ok)
    ev: list[EvidencePacket] = []
    if flow.syn is not None:
        ev.append(EvidencePacket(flow.syn, "trigger", [f"{flow.syn_count} SYNs sent"],
                                 packet_fields(flow.syn, None)))
    for pkt in outcome.decisive:
        fields = packet_fields(pkt, flow.syn)
        summary = ""
        if pkt.is_icmp:
            summary = f"(ICMP unreachable code {pkt.icmp_code})"
        fields["summary"] = summary
        ev.append(EvidencePacket(pkt, "response", [], fields))
    notes = [f"{len(failed)} of {count_of(len(full), 'connection attempt')} to {server}:{port}: "
             f"{majority}"]
    if rate_limited or (majority is Outcome.CONNECT_ICMP and kinds[Outcome.CONNECT_TIMEOUT]):
        notes.append(f"{kinds[Outcome.CONNECT_ICMP]} drew ICMP unreachable (here or on another "
                     f"port), {kinds[Outcome.CONNECT_TIMEOUT]} nothing: ICMP rate limiting")
    if control_ok:
        notes.append("control addresses answered on the same port")
    elif control_ok is None:
        notes.append("no control address in the capture")
    context: dict[str, Any] = {"outcome": majority, "tcp.handshake": majority}
    if outcome.decisive and outcome.decisive[0].is_icmp:
        context["icmp.type"] = outcome.decisive[0].icmp_type
        context["icmp.code"] = outcome.decisive[0].icmp_code
    finding = Finding(platform, server, technique, conf, server, evidence=ev, notes=notes,
                      context=context)
    limited = [f for f in flows if f not in full]
    if limited:
        pts = [syn_point(index, f) for f in limited if f.syn is not None]
        finding.location = locate(pts, [], "drop" if technique == Technique.IP_BLACKHOLE else "inject")
        if technique == Technique.IP_RESET:
            reset_before_server(index, finding, limited, [o for _f, o in failed])
    out.findings.append(finding)
    out.checks.append(Check(platform, server, "ip", False, control_ok, f"{server}:{port}"))


INITIAL_RTO_S = 1.0
"""The initial SYN retransmission timeout (RFC 6298 section 2.1; Linux and Windows use it)."""


def abandoned_for_another(index: ObservationIndex, flow: TcpFlow) -> bool:
    """A SYN the client gave up on before its first retransmission was due, because it
    connected to another address of the same site instead.

    Happy Eyeballs (RFC 8305 section 5: 250 ms recommended; Chrome and Firefox wait 300
    ms, says curl's CURLOPT_HAPPY_EYEBALLS_TIMEOUT_MS page) starts the next address that
    long after the first SYN when no SYN-ACK came yet, and drops the attempt that loses
    the race: a slow or lost SYN then looks like an unanswered one in the capture,
    though the client never waited for its answer.  The winner may leave from the
    host's address of the other IP version."""
    syn = flow.syn
    if syn is None or flow.syn_count != 1 or flow.synack is not None:
        return False
    if index.outcome(flow).kind is not Outcome.CONNECT_TIMEOUT:
        return False  # a RST or ICMP error to the SYN is an answer, not an abandoned wait
    for ts, client, server in index.connected_on(flow.server_port):
        if ts > syn.ts + INITIAL_RTO_S:
            break
        if ts >= syn.ts and server != flow.server and (
                client == flow.client or is_v6(client) != is_v6(flow.client)) \
                and index.same_site(flow.server, server):
            return True
    return False


def connected_elsewhere(index: ObservationIndex, server: str) -> bool:
    """Whether a TCP handshake to any address but `server`, on any port, completed: the
    network carried traffic then.  Without one, an address that does not answer is as
    likely a shutdown (Belarus 2020: without controls a shutdown looks like site
    blocking, Raman et al.) as a block of this address."""
    return any(flow.synack is not None
               for (addr, _p, _k, _n), flows in index.tcp_groups.items() if addr != server
               for flow in flows)


def other_version_connected(index: ObservationIndex, server: str, port: int) -> str | None:
    """An address of the same site, of the other IP version, that a connection on `port`
    reached (None if none)."""
    v6 = is_v6(server)
    for _ts, _client, other in index.connected_on(port):
        if is_v6(other) != v6 and index.same_site(server, other):
            return other
    return None


def syn_point(index: ObservationIndex, flow: TcpFlow) -> SeriesPoint:
    """A TTL-limited SYN: expired at a router, answered by a RST (the reaction), or lost."""
    assert flow.syn is not None
    outcome = index.outcome(flow)
    router = next((p.src for p in flow.icmp if p.is_time_exceeded), None)
    if outcome.kind is Outcome.CONNECT_RESET and outcome.decisive:
        return SeriesPoint(flow.syn.ttl, Seen.ANOMALY, router, router is not None,
                           outcome.decisive[0].ttl)
    return SeriesPoint(flow.syn.ttl, Seen.TIME_EXCEEDED if router else Seen.SILENCE, router,
                       router is not None)


def reset_before_server(index: ObservationIndex, finding: Finding, limited: list[TcpFlow],
                        failed: list[FlowOutcome]) -> None:
    """Mark an ip.reset whose RST leaves a box on the path, not the server
    (`reset.before_server`).

    A RST to the SYN shaped like the kernel's (seq 0, window 0, DF, IP ID 0) is what a
    closed port sends, and also what a Linux firewall's REJECT --reject-with tcp-reset
    builds.  TTL-limited SYNs tell them apart: the first TTL k that draws the RST, and
    the router that expired TTL k-1.  A server's RST crosses one router more than that
    router's time exceeded, so it arrives with a lower IP TTL (same initial TTL); a RST
    arriving with exactly the IP TTL of that time exceeded left the same distance: the
    box at that hop resets SYNs it should have forwarded.  Every RST (limited and full)
    must agree, and no router may answer at or beyond k.
    """
    resets: dict[int, int] = {}
    exceeded: dict[int, tuple[str, int]] = {}
    for flow in limited:
        if flow.syn is None:
            continue
        outcome = index.outcome(flow)
        icmp = next((p for p in flow.icmp if p.is_time_exceeded), None)
        if outcome.kind is Outcome.CONNECT_RESET and outcome.decisive:
            resets[flow.syn.ttl] = outcome.decisive[0].ttl
        elif icmp is not None:
            exceeded[flow.syn.ttl] = (icmp.src, icmp.ttl)
    if not resets:
        return
    first = min(resets)
    before = exceeded.get(first - 1)
    if before is None or any(ttl >= first for ttl in exceeded):
        return
    router, router_ttl = before
    rst_ttls = set(resets.values()) | {o.decisive[0].ttl for o in failed
                                       if o.kind is Outcome.CONNECT_RESET and o.decisive}
    if rst_ttls != {router_ttl}:
        return
    finding.context["reset.before_server"] = True
    finding.notes.append(
        f"the RSTs arrive with IP TTL {router_ttl}, as the time exceeded of {router} "
        f"(SYN TTL {first - 1}) does, and first answer SYN TTL {first}: they leave that "
        "box on the path, not the server behind it (a server's RST crosses one router more)")


def rejected_elsewhere(index: ObservationIndex, server: str, port: int) -> bool:
    """Whether a SYN to another port of `server` drew ICMP unreachable."""
    for (addr, p, _k, _n), flows in index.tcp_groups.items():
        if addr == server and p != port and any(
                f.synack is None and index.outcome(f).kind is Outcome.CONNECT_ICMP
                for f in flows):
            return True
    return False
