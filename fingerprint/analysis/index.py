"""One index of every observation of a capture, read by the rules and the OONI builder.

The observer hands closed DNS exchanges and TCP flows to `ObservationIndex.add`.
They are grouped by what they tested: DNS by (resolver, name, type), TCP by
(address, port, trigger kind, SNI or Host).  Per target the index answers:
its attempts and their controls (control names on the same resolver, the
control SNI / Host / no SNI on the same address, control addresses), which
attempts are TTL-limited repeats, and in time order; the address's other
ports are its other TCP groups.  It also decides each closed flow's outcome
once, keeps whole only the flows a finding may cite (the rest are packed,
`flowstore`), and names the platform of a name or address.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from fingerprint.analysis.addresses import is_ip_address, is_v6
from fingerprint.analysis.confirm import ConfirmationRound
from fingerprint.analysis.evidence import Baseline, EvidencePacket
from fingerprint.analysis.flowstore import FlowGroup
from fingerprint.analysis.observe import CaptureHints, DnsExchange, TcpFlow, compact_flow, header_only
from fingerprint.analysis.outcome import (
    SILENCE_AFTER_S,
    UNROUTED_TTLS,
    FlowOutcome,
    capture_end_of,
    flow_outcome,
)
from fingerprint.analysis.quic import QuicFlow, capture_end_of_quic
from fingerprint.catalog import OTHER, Catalog
from fingerprint.trust import CertVerdict, TrustStore

if TYPE_CHECKING:
    from fingerprint.analysis.residual import Residual

MAX_FULL_ITEMS = 8
"""Attempts kept per target at full TTL: enough for a majority, bounded memory on big captures."""
MAX_ITEMS_PER_TTL = 2
"""TTL-limited repeats kept per target and TTL (for localisation)."""
EVIDENCE_FLOWS = 1
"""Flows kept whole per target, SYN TTL and outcome, and per target with a certificate or
HTTP response: a finding cites the first of its kind.  The other kept flows are packed
when they close (`fingerprint.analysis.flowstore`)."""

MAX_QUIC_FLOWS = 200_000
"""QUIC flows kept for the rules (a flow holds at most a few hundred bounded records)."""

ECH_KIND = "tls+ech"
"""The trigger kind of a ClientHello carrying ECH (0xfe0d) or ESNI (0xffce): grouped apart
from the same outer SNI without it, so "blocks the extension" and "blocks the outer SNI"
are told apart (`rules.tls.ech_verdicts`)."""

DnsKey = tuple[str, str, int]
"""(resolver, query name, query type)"""
TcpKey = tuple[str, int, str, str]
"""(server address, port, trigger kind: tls/http/tcp, SNI or Host or '')"""


def flow_time(flow: TcpFlow) -> float:
    """When the flow's certificate was seen, near enough: its trigger (or first packet).
    Certificates are judged at this time, not today's (`TrustStore.check`)."""
    return flow.trigger.ts if flow.trigger is not None else flow.first_ts


def dns_capture_end(exchange: DnsExchange) -> str:
    """Which end a DNS query was captured at: its own host sends it with an initial TTL;
    anywhere past the first router (the resolver's end) it arrives routed."""
    return "client" if exchange.query_ttl in UNROUTED_TTLS else "server"


class ObservationIndex:
    """Collects closed exchanges/flows (as the observer's sink) and indexes them by target."""

    def __init__(self, catalog: Catalog, trust: TrustStore, hints: CaptureHints | None = None) -> None:
        self.catalog = catalog
        self.trust = trust
        self.hints = hints or CaptureHints()
        self.dns_groups: dict[DnsKey, list[DnsExchange]] = defaultdict(list)
        self.tcp_groups: dict[TcpKey, FlowGroup] = {}
        self.name_addresses: dict[str, set[str]] = defaultdict(set)
        self.max_query_ttl: dict[str, int] = {}
        self.capture_end = 0.0
        self.dropped_items = 0
        self._kept: dict[tuple[Any, ...], Counter[int]] = defaultdict(Counter)
        self._whole: Counter[tuple[Any, ...]] = Counter()
        self._seen_answers: dict[str, tuple[Any, ...]] = {}
        self.capture_ends: dict[str, Counter[str]] = defaultdict(Counter)
        """Per client address, how many of its handshakes say the capture was taken at
        the client or at the server (`capture_end_of`)."""
        self.dns_capture_ends: dict[str, Counter[str]] = defaultdict(Counter)
        """The same read from DNS queries (`dns_capture_end`): used only for a client with
        no handshake to read, a capture of DNS alone."""
        self.cert_notes: dict[tuple[str, int, str], str] = {}
        """Certificate notes per (server, port, SNI) for the tested entry's detail: validity
        at capture time, or why an untrusted-looking certificate is the server's own."""
        self.pack_closed = True
        """Pack closed flows no finding cites (off for the flows the capture's end closes)."""
        self._shared: dict[Any, Any] = {}
        # Indexes built once, when verdicts are computed (after every flow was added).
        self._dns_controls: dict[str, list[tuple[int, list[DnsExchange]]]] | None = None
        self._dns_replies: dict[str, dict[tuple[str, int], tuple[bool, bool]]] | None = None
        self._baselines: dict[str, Baseline] = {}
        self._tls_index: dict[tuple[str, str], list[FlowGroup]] | None = None
        self._control_addresses: set[str] | None = None
        self._control_ports: dict[int, list[tuple[str, bool]]] | None = None
        self._connected: dict[int, list[tuple[float, str, str]]] | None = None
        self._address_platforms: dict[str, str] = {}
        self._max_syn_ttl: dict[str, int] | None = None
        self._top_syn_ttl: dict[str, int] = {}
        """Highest SYN TTL seen so far per address, as flows are added (`add`)."""
        self.quic_flows: list[QuicFlow] = []
        """Closed QUIC flows (`fingerprint.analysis.quic`), read by `rules.quic`."""
        self.quic_dropped = 0
        self._anchor_proof: list[tuple[str, str]] | None = None
        self._confirmation: tuple[object, ConfirmationRound | None] = (None, None)
        self.residuals: dict[tuple[str, int] | None, Residual] | None = None
        """Residual blocks by address and port (None: the client's whole address), found
        once by `fingerprint.analysis.residual`."""

    # -- collection -----------------------------------------------------------
    def add_quic(self, flow: QuicFlow) -> None:
        """The QUIC observer's sink: every closed flow is kept (each is bounded), up to
        `MAX_QUIC_FLOWS`; past it they are counted only."""
        end = capture_end_of_quic(flow)
        if end is not None:
            self.capture_ends[flow.client][end] += 1
        round_ = self.confirmation_round()
        if round_ is not None and round_.claims(flow):
            return  # the confirmation round's, judged apart (`analysis.confirm`)
        if len(self.quic_flows) < MAX_QUIC_FLOWS:
            self.quic_flows.append(flow)
        else:
            self.quic_dropped += 1

    def tcp_reachable(self, server: str, port: int) -> bool | None:
        """Whether a TCP handshake to `server`:`port` got a SYN-ACK; None when none was tried."""
        tried = False
        for (addr, p, _k, _n), flows in self.tcp_groups.items():
            if addr != server or p != port:
                continue
            for flow in flows:
                tried = True
                if flow.synack is not None:
                    return True
        return False if tried else None

    def add(self, item: DnsExchange | TcpFlow) -> None:
        round_ = self.confirmation_round()
        if round_ is not None and round_.claims(item):
            # The confirmation round re-tests findings after the sweep: judged apart.
            return
        key: tuple[Any, ...]
        if isinstance(item, DnsExchange):
            key = (item.resolver, item.qname, item.qtype)
            group: list[Any] | FlowGroup = self.dns_groups[key]  # type: ignore[index]
            top = self.max_query_ttl.get(item.resolver, 0)
            self.max_query_ttl[item.resolver] = max(top, item.query_ttl)
            seen = self._seen_answers
            for response in item.responses:
                answers = response.message.answers
                # Repeated answers share one tuple (the observer parses a message once):
                # the same tuple adds no new address.
                if seen.get(item.qname) is answers:
                    continue
                seen[item.qname] = answers
                if len(self.name_addresses[item.qname]) < 64:
                    self.name_addresses[item.qname].update(response.message.addresses)
            limited = item.query_ttl < top
            slot = item.query_ttl if limited else -1
            self.dns_capture_ends[item.client][dns_capture_end(item)] += 1
        else:
            kind = item.trigger_kind or "tcp"
            if kind == "tls" and item.client_hello is not None and (
                    item.client_hello.ech_present or item.client_hello.esni_present):
                kind = ECH_KIND
            key = (item.server, item.server_port, kind, item.trigger_name or "")
            flows = self.tcp_groups.get(key)  # type: ignore[arg-type]
            if flows is None:
                flows = self.tcp_groups[key] = FlowGroup(item.server)  # type: ignore[index]
            group = flows
            end = capture_end_of(item)
            if end is not None:
                self.capture_ends[item.client][end] += 1
            syn_ttl = item.syn.ttl if item.syn is not None else 0
            top_syn = self._top_syn_ttl.get(item.server, 0)
            if syn_ttl > top_syn:
                self._top_syn_ttl[item.server] = syn_ttl
            if item.trigger is not None or item.syn is None:
                limited = item.trigger is not None and item.trigger.ttl < syn_ttl
                slot = item.trigger.ttl if item.trigger is not None and limited else -1
            else:
                # A bare SYN (the ip.* series) is TTL-limited by its SYN: below the highest
                # SYN TTL the address has seen so far.  Counted per SYN TTL: in the full-TTL
                # count the series would fill the cap, and which of its hops (the decisive
                # one among them) were kept would depend on the order they closed in.
                limited = syn_ttl < top_syn
                slot = syn_ttl
        counts = self._kept[key]
        if counts[slot] < (MAX_ITEMS_PER_TTL if limited else MAX_FULL_ITEMS):
            counts[slot] += 1
            if isinstance(group, FlowGroup):
                assert isinstance(item, TcpFlow)
                group.append(item)
                if item.closed_ts:
                    self._settle(key, group, item, limited)
            else:
                group.append(item)
        else:
            self.dropped_items += 1

    def _settle(self, key: tuple[Any, ...], group: FlowGroup, flow: TcpFlow, limited: bool) -> None:
        """Decide a closed flow's outcome now and keep it whole only if a finding may cite it.

        Findings cite the first flow of each outcome (per SYN TTL), the first flows
        that brought certificates or an HTTP response, and TTL-limited repeats; the
        rest only count, so they are reduced to header facts: memory per target
        stays small whatever the capture's length.
        """
        outcome = flow.outcome = flow_outcome(flow, flow.closed_ts, self.given_vantage())
        self._share_parsed(flow, outcome)
        if limited:
            return
        syn_ttl = flow.syn.ttl if flow.syn is not None else -1
        whole = self._whole
        by_kind = (key, syn_ttl, outcome.kind)
        keep = whole[by_kind] < EVIDENCE_FLOWS
        whole[by_kind] += 1
        if (outcome.flight is not None and outcome.flight.certificates) or flow.response is not None:
            by_content = (key, "content")
            keep = keep or whole[by_content] < EVIDENCE_FLOWS
            whole[by_content] += 1
        if keep or not self.pack_closed or group.pack_last(outcome):
            return
        compact_flow(flow)
        outcome.decisive = [header_only(p) for p in outcome.decisive]
        # Only whether anything was injected is read of a flow no finding cites.
        outcome.injected = [EvidencePacket(header_only(e.packet), e.role, e.reasons, {})
                            for e in outcome.injected[:1]]

    def _share_parsed(self, flow: TcpFlow, outcome: FlowOutcome) -> None:
        """One object for equal parsed hellos and flights: many flows carry the same."""
        shared = self._shared
        if len(shared) > 65536:
            shared.clear()
        hello = flow.client_hello
        if hello is not None:
            flow.client_hello = shared.setdefault(("hello", hello.sni, hello.offers_tls13, hello.alpn,
                                                   hello.ech_present, hello.esni_present),
                                                  hello)
        flight = flow.flight
        if flight is not None and not flight.certificates:
            flight = shared.setdefault(("flight", flight.is_tls, flight.server_hello, flight.version,
                                        flight.cipher_suite, flight.alpn, flight.alert,
                                        flight.app_data, flight.plaintext_prefix), flight)
            flow.flight = flight
            if outcome.flight is not None:
                outcome.flight = flight
        if flow.server_data:
            flow.server_data = shared.setdefault(flow.server_data, flow.server_data)

    def confirmation_round(self) -> ConfirmationRound | None:
        """The probe's confirmation round named in the hints (read again if they change)."""
        notes = self.hints.raw.get("confirmation")
        seen, round_ = self._confirmation
        if notes is not seen:
            round_ = ConfirmationRound.from_hints(self.hints.raw)
            self._confirmation = (notes, round_)
        return round_

    # -- per observation ------------------------------------------------------
    def dns_pending(self, exchange: DnsExchange) -> bool:
        """An unanswered query sent less than `SILENCE_AFTER_S` before the capture ended:
        its answer was not due yet, so its silence is no evidence of a drop."""
        if exchange.responses:
            return False
        closed = exchange.closed_ts or self.capture_end
        return closed - exchange.query.ts < SILENCE_AFTER_S

    def outcome(self, flow: TcpFlow) -> FlowOutcome:
        """`flow_outcome`, computed once per flow."""
        cached = flow.outcome
        if cached is None:
            cached = flow.outcome = flow_outcome(flow, self.capture_end, self.given_vantage())
        return cached

    # -- capture point --------------------------------------------------------
    def given_vantage(self) -> str | None:
        """The capture end the user gave (`--vantage`), if any."""
        given = self.hints.raw.get("capture_point")
        return given if given in ("client", "server") else None

    def seen_at_server(self, flow: TcpFlow) -> bool:
        """Whether this flow was captured at its server (given, or guessed from its handshake)."""
        return (self.given_vantage() or capture_end_of(flow)) == "server"

    def quic_seen_at_server(self, flow: QuicFlow) -> bool:
        """Whether this UDP flow was captured at its server (given, or guessed from its TTLs)."""
        return (self.given_vantage() or capture_end_of_quic(flow)) == "server"

    def capture_point(self) -> dict[str, Any]:
        """Which end the capture was taken at, per client address (the report's
        `capture_point`): a capture may mix clients, or both ends of one."""
        given = self.given_vantage()
        by_client = {client: (given or ends.most_common(1)[0][0])
                     for client, ends in sorted(self.capture_ends.items())}
        for client, dns_ends in self.dns_capture_ends.items():
            if client not in by_client and (given or not dns_ends["client"]):
                # No handshake to read: the queries' TTLs.  A client none of whose queries
                # left with an initial TTL was captured at the far end (the resolver, or a
                # sink); a client's own capture of DNS alone is left unstated, as before.
                by_client[client] = given or "server"
        by_client = dict(sorted(by_client.items()))
        if not by_client:
            return {}
        ends = set(by_client.values())
        return {"end": ends.pop() if len(ends) == 1 else "mixed", "by_client": by_client,
                "source": "given" if given else "guessed"}

    # -- naming ---------------------------------------------------------------
    def platform_of_name(self, name: str) -> str:
        platform = self.catalog.platform_for_name(name)
        return platform.id if platform else OTHER

    def platform_of_address(self, address: str) -> str:
        cached = self._address_platforms.get(address)
        if cached is None:
            cached = self._address_platforms[address] = self._platform_of_address(address)
        return cached

    def _platform_of_address(self, address: str) -> str:
        if address in self.hints.address_platform:
            return self.hints.address_platform[address]
        platform = self.catalog.platform_for_address(address)
        if platform is not None:
            return platform.id
        for (server, _port, _kind, name), _flows in self.tcp_groups.items():
            if server == address and name and not self.catalog.is_control_name(name):
                return self.platform_of_name(name)
        for name, addresses in self.name_addresses.items():
            if address in addresses and not self.catalog.is_control_name(name):
                return self.platform_of_name(name)
        return OTHER

    def is_control_address(self, address: str) -> bool:
        if self._control_addresses is None:
            self._control_addresses = set(self.catalog.control_addresses)
            for name, addrs in self.name_addresses.items():
                if self.catalog.is_control_name(name):
                    self._control_addresses |= addrs
        return address in self._control_addresses

    # -- DNS targets and controls ---------------------------------------------
    def dns_control_groups(self) -> dict[str, list[tuple[int, list[DnsExchange]]]]:
        """Control-name exchanges by resolver (built once: groups can number thousands)."""
        if self._dns_controls is None:
            self._dns_controls = defaultdict(list)
            for (res, qname, qtype), exchanges in self.dns_groups.items():
                if self.catalog.is_control_name(qname):
                    self._dns_controls[res].append((qtype, exchanges))
        return self._dns_controls

    def dns_replies(self, resolver: str) -> dict[tuple[str, int], tuple[bool, bool]]:
        """Per (name, query type) asked of `resolver`: (any response, any response with
        addresses).  Built once for every resolver: the DNS rules ask it of each name
        that failed, and a capture can hold thousands."""
        if self._dns_replies is None:
            self._dns_replies = defaultdict(dict)
            for (res, name, qtype), exchanges in self.dns_groups.items():
                responses = [r for ex in exchanges for r in ex.responses]
                self._dns_replies[res][(name, qtype)] = (
                    bool(responses),
                    any(r.message.rcode == 0 and r.message.addresses for r in responses))
        return self._dns_replies.get(resolver, {})

    def dns_other_answered(self, resolver: str, qname: str, qtype: int | None = None
                           ) -> list[str]:
        """Names other than `qname` (control names aside) this resolver answered in the
        capture, for queries of `qtype` if given: in a capture without control names
        they show the resolver was alive."""
        return sorted({name for (name, qt), (answered, _resolved) in self.dns_replies(resolver).items()
                       if answered and name != qname and qtype in (None, qt)
                       and not self.catalog.is_control_name(name)})

    def resolves_names(self, resolver: str, qname: str) -> bool:
        """Whether `resolver` gave addresses for any other name in the capture (a control
        name or not): it was resolving then."""
        return any(resolved for (name, _qt), (_answered, resolved)
                   in self.dns_replies(resolver).items() if name != qname)

    def resolved_as_other_type(self, resolver: str, qname: str, qtype: int) -> bool:
        """Whether `resolver` answered `qname` with addresses for another query type."""
        return any(resolved for (name, qt), (_answered, resolved)
                   in self.dns_replies(resolver).items() if name == qname and qt != qtype)

    def resolver_baseline(self, resolver: str) -> Baseline:
        """IP header facts of the resolver's own answers (to control names)."""
        baseline = self._baselines.get(resolver)
        if baseline is None:
            baseline = self._baselines[resolver] = Baseline()
            for _qtype, exchanges in self.dns_control_groups().get(resolver, []):
                for ex in exchanges:
                    for response in ex.responses[:1]:
                        baseline.add(response.packet)
        return baseline

    def dns_controls(self, resolver: str, qtype: int) -> tuple[list[DnsExchange], bool]:
        """Control exchanges on the same resolver (same query type if any), and whether any
        got an answer."""
        groups = self.dns_control_groups().get(resolver, [])
        controls = [ex for qt, exs in groups if qt == qtype for ex in exs]
        if not controls:
            controls = [ex for _qt, exs in groups for ex in exs]
        answered = any(ex.responses for ex in controls)
        return controls, answered

    def dns_limited(self, ex: DnsExchange) -> bool:
        """A TTL-limited repeat: sent with a lower TTL than the resolver's full-TTL queries."""
        return ex.query_ttl < self.max_query_ttl.get(ex.resolver, 0)

    def dns_attempts(self, target: str) -> tuple[list[DnsExchange], list[DnsExchange]]:
        """(every exchange asking `target`, control exchanges on the same resolvers)."""
        mine = [ex for (_r, qname, _qt), exs in sorted(self.dns_groups.items())
                if qname == target for ex in exs]
        resolvers = {ex.resolver for ex in mine}
        controls = [ex for (res, qname, _qt), exs in sorted(self.dns_groups.items())
                    if res in resolvers and self.catalog.is_control_name(qname) for ex in exs]
        return mine, controls

    # -- TCP targets and controls ---------------------------------------------
    def servers(self) -> Iterator[tuple[tuple[str, int], list[tuple[str, str, list[TcpFlow]]]]]:
        """Per (address, port) in order, its groups (kind, name, flows), packed flows rebuilt.

        Unpacked one server at a time: the rebuilt flows live only as long as the caller
        holds them.
        """
        by_server: dict[tuple[str, int], list[tuple[str, str, FlowGroup]]] = defaultdict(list)
        for (server, port, kind, name), stored in self.tcp_groups.items():
            by_server[(server, port)].append((kind, name, stored))
        for endpoint, packed in sorted(by_server.items()):
            yield endpoint, [(kind, name, list(stored)) for kind, name, stored in packed]

    def tcp_attempts(self, target: str) -> tuple[list[TcpFlow], list[TcpFlow]]:
        """(flows testing `target`, their controls), each in time order.

        For an address: its flows on every port, and flows to control addresses.  For
        a name (SNI or Host): its flows, and the control / no-name flows on the same
        address and port.
        """
        groups = sorted(self.tcp_groups.items())
        if is_ip_address(target):
            mine = [f for (server, _p, _k, _n), fs in groups if server == target for f in fs]
            controls = [f for (server, _p, _k, _n), fs in groups
                        if server != target and self.is_control_address(server)
                        for f in fs]
        else:
            mine = [f for (_s, _p, _k, name), fs in groups if name == target for f in fs]
            endpoints = {(f.server, f.server_port) for f in mine}
            controls = [f for (server, port, kind, name), fs in groups
                        if (server, port) in endpoints and kind in ("tls", "http")
                        and (not name or self.catalog.is_control_name(name)) for f in fs]
        return sorted(mine, key=lambda f: f.first_ts), sorted(controls, key=lambda f: f.first_ts)

    def tcp_limited(self, flow: TcpFlow) -> bool:
        """A TTL-limited repeat: its SYN below the address's highest SYN TTL, or its trigger
        below its own SYN's TTL."""
        if self._max_syn_ttl is None:
            self._max_syn_ttl = defaultdict(int)
            for (server, _port, _kind, _name), flows in self.tcp_groups.items():
                for each in flows:
                    if each.syn is not None:
                        self._max_syn_ttl[server] = max(self._max_syn_ttl[server], each.syn.ttl)
        if flow.syn is not None and flow.syn.ttl < self._max_syn_ttl.get(flow.server, 0):
            return True
        return flow.syn is not None and flow.trigger is not None and flow.trigger.ttl < flow.syn.ttl

    def clients(self) -> set[str]:
        """Every client address seen (the probe's own addresses)."""
        found = {ex.client for exs in self.dns_groups.values() for ex in exs}
        found |= {f.client for fs in self.tcp_groups.values() for f in fs}
        return found

    def certificate_at(self, address: str, name: str) -> CertVerdict | None:
        """The check of the first certificate `address` sent for SNI `name`, if any."""
        if self._tls_index is None:
            self._tls_index = defaultdict(list)
            for (server, _port, kind, sni), group in self.tcp_groups.items():
                if kind == "tls":
                    self._tls_index[(server, sni)].append(group)
        for flow in (f for group in self._tls_index.get((address, name), []) for f in group):
            outcome = self.outcome(flow)
            if outcome.flight is not None and outcome.flight.certificates:
                return self.trust.check(outcome.flight.certificates, name, flow_time(flow))
        return None

    def trusted_control_address(self, server: str) -> tuple[str, str] | None:
        """(address, name) of a control address, other than `server`, whose certificate
        for the name sent validates: proof that the trust store is complete."""
        if self._anchor_proof is None:
            proofs: list[tuple[str, str]] = []
            for (address, _port, kind, sni), group in sorted(self.tcp_groups.items()):
                if kind != "tls" or not sni or not self.is_control_address(address):
                    continue
                for flow in group:
                    flight = self.outcome(flow).flight
                    if flight is None or not flight.certificates:
                        continue
                    verdict = self.trust.check(flight.certificates, sni)
                    if verdict.trusted and verdict.valid_for_name:
                        proofs.append((address, sni))
                        break
            self._anchor_proof = proofs
        return next(((a, n) for a, n in self._anchor_proof if a != server), None)

    def control_addresses_ok(self, server: str, port: int) -> bool | None:
        """Whether any control address (other than `server`) of the same IP version
        answered a SYN on `port`; None when the capture holds none.

        IPv4 and IPv6 take separate routes, and many networks' IPv6 is broken while
        their IPv4 works (which is why clients race the two, RFC 8305): a control
        reached over one version says nothing of the path the other takes."""
        if self._control_ports is None:
            self._control_ports = defaultdict(list)
            for (addr, p, _k, _n), flows in self.tcp_groups.items():
                if self.is_control_address(addr):
                    self._control_ports[p].extend((addr, f.synack is not None) for f in flows)
        v6 = is_v6(server)
        results = [ok for addr, ok in self._control_ports.get(port, [])
                   if addr != server and is_v6(addr) == v6]
        if not results:
            return None
        return any(results)

    def connected_on(self, port: int) -> list[tuple[float, str, str]]:
        """(SYN time, client, server) of every connection on `port` that completed its
        handshake, in time order (to see what a client did instead of a failed attempt)."""
        if self._connected is None:
            self._connected = defaultdict(list)
            for (addr, p, _k, _n), flows in self.tcp_groups.items():
                for f in flows:
                    if f.synack is not None and f.syn is not None:
                        self._connected[p].append((f.syn.ts, f.client, addr))
            for starts in self._connected.values():
                starts.sort()
        return self._connected.get(port, [])

    def same_site(self, one: str, other: str) -> bool:
        """Whether two addresses serve the same names: one DNS name answered both, or
        both belong to one catalog platform."""
        if any(one in addrs and other in addrs for addrs in self.name_addresses.values()):
            return True
        platform = self.platform_of_address(one)
        return platform != OTHER and platform == self.platform_of_address(other)
