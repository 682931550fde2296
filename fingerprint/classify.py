"""Observations + controls -> findings, in the closed technique vocabulary.

Every target (a name asked of a resolver, an SNI or Host sent to an address,
an address itself) is compared with its control: control names on the same
resolver, the control SNI / Host / no SNI on the same address, control
addresses.  The control decides between censorship and an outage; without a
control a finding is still reported, with a lower confidence.
"""

from __future__ import annotations

import ipaddress
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from fingerprint.capture.packet import FIN, RST, Packet
from fingerprint.catalog import OTHER, Catalog
from fingerprint.evidence import Baseline, EvidencePacket, packet_fields
from fingerprint.flowstore import FlowGroup, FlowOutcome
from fingerprint.locate import Location, SeriesPoint, locate
from fingerprint.model import Technique
from fingerprint.observe import CaptureHints, DnsExchange, TcpFlow, compact_flow, header_only
from fingerprint.protocols.dns import TYPE_A, TYPE_AAAA
from fingerprint.trust import TrustStore

MAX_FULL_ITEMS = 8
"""Attempts kept per target at full TTL: enough for a majority, bounded memory on big captures."""
MAX_ITEMS_PER_TTL = 2
"""TTL-limited repeats kept per target and TTL (for localisation)."""
EVIDENCE_FLOWS = 1
"""Flows kept whole per target, SYN TTL and outcome, and per target with a certificate or
HTTP response: a finding cites the first of its kind.  The other kept flows are packed
when they close (`fingerprint.flowstore`)."""
SILENCE_AFTER_S = 2.0
"""Seconds of silence after a trigger before it counts as dropped (when the client did not give up)."""
THROTTLE_RATIO = 0.1
"""A target's best transfer below this fraction of the control's best is throttled.  Published
throttles are about a hundred times slower (Russia 2021: 130-150 kbps, censoredplanet.org/
throttling); one retransmission timeout (>= 200 ms) on a lost segment only cuts a fast
64 kB transfer to about a quarter, so loss alone rarely reaches a tenth."""

CONFIDENCE_WITH_CONTROL = 0.9
CONFIDENCE_NO_CONTROL = 0.6


@dataclass(slots=True)
class Finding:
    platform: str
    target: str
    technique: Technique
    confidence: float
    address: str | None = None
    signatures: list[str] = field(default_factory=list)
    location: Location | None = None
    evidence: list[EvidencePacket] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)
    """Finding-level fields signatures match on."""
    signature_confidence: float = 0.0


@dataclass(slots=True)
class Check:
    """One tested target and whether it (and its control) worked."""

    platform: str
    target: str
    kind: str
    ok: bool
    control_ok: bool | None
    """None when the capture holds no control for this target."""
    detail: str = ""


@dataclass(slots=True)
class Verdicts:
    findings: list[Finding] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    candidates: list[Finding] = field(default_factory=list)
    """Answers the control logic cannot call (a public address, a plain response); a
    matching censor signature (a known blockpage address or page) promotes them."""
    suppressed: list[Finding] = field(default_factory=list)
    """Findings a false-positive signature removed (its id in `signatures`), kept so
    `signatures test` and curious users can see what was suppressed and why."""

    def by_platform(self) -> tuple[dict[str, list[Finding]], dict[str, list[Check]]]:
        """Findings and checks grouped by platform id (the report's and the JSONL's rows)."""
        findings: dict[str, list[Finding]] = defaultdict(list)
        checks: dict[str, list[Check]] = defaultdict(list)
        for finding in self.findings:
            findings[finding.platform].append(finding)
        for check in self.checks:
            checks[check.platform].append(check)
        return findings, checks


class _Untrusted:
    """A TLS target whose certificate and whose control's are both untrusted: no verdict."""


UNTRUSTED_EVERYWHERE = _Untrusted()
UNTRUSTED_DETAIL = ("no trusted certificate for the target nor the control SNI: all TLS "
                    "intercepted, or the trust anchors are missing (--ca-file)")


def _attempts(count: int, noun: str = "attempt") -> str:
    """'1 attempt', '3 attempts' (evidence notes reach the report as written)."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def is_ip_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def is_bogon(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return bool(ip.is_private or ip.is_loopback or ip.is_unspecified or ip.is_reserved
                or ip.is_link_local or ip.is_multicast) and not _is_documentation(ip)


_DOC_NETS = tuple(ipaddress.ip_network(n) for n in
                  ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"))


def _is_documentation(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    # The lab (and fixtures) use documentation ranges for real servers.
    return any(ip in net for net in _DOC_NETS if net.version == ip.version)


# --------------------------------------------------------------------------- flows

def _server_baseline(flow: TcpFlow) -> Baseline:
    baseline = Baseline()
    if flow.synack is not None:
        baseline.add(flow.synack, with_window=True)
    return baseline


def flow_outcome(flow: TcpFlow, capture_end: float) -> FlowOutcome:
    if flow.synack is None:
        unreachable = [p for p in flow.icmp if p.icmp_type in (3, 1)]
        if unreachable:
            return FlowOutcome("connect_icmp", unreachable[:1])
        if flow.handshake_rst is not None:
            return FlowOutcome("connect_reset", [flow.handshake_rst])
        if flow.trigger is None:
            exceeded = [p for p in flow.icmp if p.icmp_type == 11]
            if exceeded:
                return FlowOutcome("time_exceeded", exceeded[:1])
            sent = flow.syn.ts if flow.syn is not None else flow.first_ts
            if capture_end - sent < SILENCE_AFTER_S:
                # The capture ended before an answer was due (an interrupted capture).
                return FlowOutcome("pending")
            return FlowOutcome("connect_timeout")
    if flow.trigger is None:
        return FlowOutcome("no_trigger")
    trigger = flow.trigger
    exceeded = [p for p in flow.icmp if p.icmp_type == 11 and p.quoted is not None
                and p.quoted.seq == trigger.seq]
    baseline = _server_baseline(flow)
    decisive: list[Packet] = []
    injected: list[EvidencePacket] = []
    first_kind: str | None = None
    flight = flow.flight
    response = flow.response
    for pkt in flow.server_packets:
        if pkt.ts < trigger.ts:
            continue
        reasons = baseline.anomalies(pkt)
        is_close = bool(pkt.tcp_flags & (RST | FIN))
        if reasons and (is_close or pkt.payload):
            fields = packet_fields(pkt, trigger)
            injected.append(EvidencePacket(pkt, "injected", reasons, fields))
        if first_kind is None and (is_close or pkt.payload):
            if pkt.tcp_flags & FIN and not pkt.tcp_flags & RST and not pkt.payload \
                    and _overtook_lost_data(pkt, flow.server_packets):
                continue
            decisive.append(pkt)
            if pkt.tcp_flags & RST:
                first_kind = "reset"
            elif pkt.payload:
                first_kind = "data"
            else:
                first_kind = "fin"
        elif first_kind is not None and is_close and len(decisive) < 8:
            decisive.append(pkt)
    if first_kind == "data":
        if flight is not None and flight.is_tls:
            kind = "tls_ok" if flight.server_hello else ("alert" if flight.alert else "tls_other")
            if kind != "tls_ok" and injected:
                kind = "plaintext"
        elif response is not None:
            kind = "http_response"
        else:
            kind = "plaintext"
        injected_resets = [e.packet for e in injected if e.packet.tcp_flags & RST]
        if kind in ("tls_ok", "alert", "tls_other", "http_response") and injected_resets:
            # An on-path injector near a fast server can lose the race: the genuine
            # answer arrives first, the forged RSTs still tear the connection down.
            return FlowOutcome("reset", injected_resets[:8], injected, flight, response)
        return FlowOutcome(kind, decisive, injected, flight, response)
    if first_kind is not None:
        return FlowOutcome(first_kind, decisive, injected, flight, response)
    if exceeded:
        return FlowOutcome("time_exceeded", exceeded[:1])
    waited = (flow.client_closed_ts or capture_end) - trigger.ts
    if flow.client_closed_ts is not None or waited >= SILENCE_AFTER_S:
        return FlowOutcome("silence")
    return FlowOutcome("pending")


def _overtook_lost_data(fin: Packet, server_packets: list[Packet]) -> bool:
    """A server FIN that arrived before data it follows: that data was lost and comes
    later, retransmitted, with a lower sequence number.  An injected FIN takes the next
    expected sequence number, so no later data sits below it."""
    return any(q.payload and q.ts > fin.ts and 0 < (fin.seq - q.seq) & 0xFFFFFFFF < 1 << 31
               for q in server_packets)


WORKING_TLS = {"tls_ok", "alert", "tls_other"}
FAILED = {"reset", "fin", "plaintext", "silence"}


# --------------------------------------------------------------------------- analysis

class Analysis:
    """Collects closed exchanges/flows (as a sink) and turns them into verdicts."""

    def __init__(self, catalog: Catalog, trust: TrustStore, hints: CaptureHints | None = None) -> None:
        self.catalog = catalog
        self.trust = trust
        self.hints = hints or CaptureHints()
        self.dns_groups: dict[tuple[str, str, int], list[DnsExchange]] = defaultdict(list)
        self.tcp_groups: dict[tuple[str, int, str, str], FlowGroup] = {}
        self.name_addresses: dict[str, set[str]] = defaultdict(set)
        self.max_query_ttl: dict[str, int] = {}
        self.capture_end = 0.0
        self.dropped_items = 0
        self._kept: dict[tuple[Any, ...], Counter[int]] = defaultdict(Counter)
        self._whole: Counter[tuple[Any, ...]] = Counter()
        self._seen_answers: dict[str, tuple[Any, ...]] = {}
        self.pack_closed = True
        """Pack closed flows no finding cites (off for the flows the capture's end closes)."""
        self._shared: dict[Any, Any] = {}
        # Indexes built once, when verdicts are computed (after every flow was added).
        self._dns_controls: dict[str, list[tuple[int, list[DnsExchange]]]] | None = None
        self._baselines: dict[str, Baseline] = {}
        self._tls_index: dict[tuple[str, str], list[FlowGroup]] | None = None
        self._control_addresses: set[str] | None = None
        self._control_ports: dict[int, list[tuple[str, bool]]] | None = None
        self._address_platforms: dict[str, str] = {}

    # -- collection -----------------------------------------------------------
    def add(self, item: DnsExchange | TcpFlow) -> None:
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
            ttl, limited = item.query_ttl, item.query_ttl < top
        else:
            key = (item.server, item.server_port, item.trigger_kind or "tcp", item.trigger_name or "")
            flows = self.tcp_groups.get(key)  # type: ignore[arg-type]
            if flows is None:
                flows = self.tcp_groups[key] = FlowGroup(item.server)  # type: ignore[index]
            group = flows
            probe_ttl = item.trigger.ttl if item.trigger is not None else 0
            ttl = probe_ttl if item.trigger is not None else (item.syn.ttl if item.syn else 0)
            limited = (item.syn is not None and item.trigger is not None and probe_ttl < item.syn.ttl)
        counts = self._kept[key]
        slot = ttl if limited else -1
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
        outcome = flow.outcome = flow_outcome(flow, flow.closed_ts)
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
            flow.client_hello = shared.setdefault(("hello", hello.sni, hello.offers_tls13, hello.alpn),
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
            cached = flow.outcome = flow_outcome(flow, self.capture_end)
        return cached

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

    # -- results --------------------------------------------------------------
    def verdicts(self) -> Verdicts:
        out = Verdicts()
        self._dns_verdicts(out)
        self._tcp_verdicts(out)
        vantage = self.vantage_context()
        for finding in (*out.findings, *out.candidates):
            finding.context.update(vantage)
        return out

    def vantage_context(self) -> dict[str, Any]:
        """Where the capture was taken, when the probe recorded it (`probe_cc`, `probe_asn`
        in its hints, OONI's names): censors whose packets look alike (a silent drop)
        are told apart by it."""
        context: dict[str, Any] = {}
        cc = self.hints.raw.get("probe_cc")
        # OONI writes ZZ and AS0 when the vantage point is not shared.
        if isinstance(cc, str) and len(cc) == 2 and cc.isalpha() and cc.upper() != "ZZ":
            context["probe.cc"] = cc.upper()
        asn = self.hints.raw.get("probe_asn")
        if isinstance(asn, str) and asn.upper().startswith("AS"):
            asn = asn[2:]
        # isdigit() alone takes '²' and digit strings too long for int(); an ASN is ASCII
        # and fits in 32 bits.
        if isinstance(asn, int | str) and not isinstance(asn, bool) and str(asn).isascii() \
                and str(asn).isdigit() and len(str(asn)) <= 10 and int(asn) > 0:
            context["probe.asn"] = int(asn)
        return context

    # ======================================================================= DNS
    def _control_groups(self) -> dict[str, list[tuple[int, list[DnsExchange]]]]:
        """Control-name exchanges by resolver (built once: groups can number thousands)."""
        if self._dns_controls is None:
            self._dns_controls = defaultdict(list)
            for (res, qname, qtype), exchanges in self.dns_groups.items():
                if self.catalog.is_control_name(qname):
                    self._dns_controls[res].append((qtype, exchanges))
        return self._dns_controls

    def _resolver_baseline(self, resolver: str) -> Baseline:
        baseline = self._baselines.get(resolver)
        if baseline is None:
            baseline = self._baselines[resolver] = Baseline()
            for _qtype, exchanges in self._control_groups().get(resolver, []):
                for ex in exchanges:
                    for response in ex.responses[:1]:
                        baseline.add(response.packet)
        return baseline

    def _control_dns(self, resolver: str, qtype: int) -> tuple[list[DnsExchange], bool]:
        """Control exchanges on the same resolver, and whether any got an answer."""
        groups = self._control_groups().get(resolver, [])
        controls = [ex for qt, exs in groups if qt == qtype for ex in exs]
        if not controls:
            controls = [ex for _qt, exs in groups for ex in exs]
        answered = any(ex.responses for ex in controls)
        return controls, answered

    def _dns_verdicts(self, out: Verdicts) -> None:
        for (resolver, qname, qtype), exchanges in sorted(self.dns_groups.items()):
            if self.catalog.is_control_name(qname) or qtype not in (TYPE_A, TYPE_AAAA):
                continue
            platform = self.platform_of_name(qname)
            controls, control_answered = self._control_dns(resolver, qtype)
            top_ttl = self.max_query_ttl.get(resolver, 0)
            full = [ex for ex in exchanges if ex.query_ttl >= top_ttl]
            limited = [ex for ex in exchanges if ex.query_ttl < top_ttl]
            settled = [ex for ex in full if not self.dns_pending(ex)]
            if full and not settled:
                continue  # every query was sent just before the capture ended
            full = settled
            finding = self._dns_finding(resolver, qname, qtype, platform, full, controls,
                                        control_answered)
            control_ok: bool | None = control_answered if controls else None
            if resolver in self.hints.no_resolver:
                control_ok = True  # silence is the expected behaviour of a non-resolver
            if finding is None:
                answered = any(ex.responses for ex in full)
                if resolver in self.hints.no_resolver:
                    answered = True  # no answer from a non-resolver is what should happen
                out.checks.append(Check(platform, qname, "dns", answered, control_ok,
                                        f"resolver {resolver}"))
                continue
            if finding.context.get("candidate"):
                out.candidates.append(finding)
                out.checks.append(Check(platform, qname, "dns", True, control_ok, f"resolver {resolver}"))
                continue
            if limited:
                finding.location = self._dns_location(finding, limited, controls)
            out.findings.append(finding)
            out.checks.append(Check(platform, qname, "dns", False, control_ok, f"resolver {resolver}"))

    def _dns_finding(self, resolver: str, qname: str, qtype: int, platform: str,
                     full: list[DnsExchange], controls: list[DnsExchange],
                     control_answered: bool) -> Finding | None:
        if not full:
            return None
        baseline = self._resolver_baseline(resolver)
        has_control = bool(controls)
        conf = CONFIDENCE_WITH_CONTROL if has_control else CONFIDENCE_NO_CONTROL
        responses = [r for ex in full for r in ex.responses]
        context: dict[str, Any] = {"trigger.qname": qname, "dns.resolver": resolver,
                                   "dns.response_count": max(len(ex.responses) for ex in full)}

        def make(technique: Technique, confidence: float, notes: list[str],
                 evidence: list[EvidencePacket]) -> Finding:
            trig = [EvidencePacket(full[0].query, "trigger", [],
                                   packet_fields(full[0].query, None))]
            return Finding(platform, qname, technique, round(min(confidence, 0.99), 2), resolver,
                           evidence=trig + evidence, notes=notes, context=context)

        def response_evidence(role_of: Any) -> list[EvidencePacket]:
            items = []
            for ex in full[:4]:
                for r in ex.responses:
                    role, reasons = role_of(r)
                    fields = packet_fields(r.packet, ex.query)
                    fields.update({"dns.answer": list(r.message.addresses),
                                   "dns.rcode": r.message.rcode_name, "dns.flags": r.message.flags,
                                   "dns.answer_ttl": [a.ttl for a in r.message.answers],
                                   "summary": f"dns {r.message.rcode_name} flags=0x{r.message.flags:04x}"
                                              f" [{r.message.flags_text()}] answers="
                                              f"{','.join(r.message.addresses) or '-'}"
                                              f" delay={r.delay * 1000:.1f}ms"})
                    items.append(EvidencePacket(r.packet, role, reasons, fields))
            return items

        if responses and (resolver in self.hints.no_resolver or (has_control and not control_answered)):
            # Answers from an address that runs no resolver can only come from the path.
            context["dns.no_resolver"] = True
        # 1. Several different answers to one query: an on-path injector raced the resolver.
        for ex in full:
            answer_sets = {(r.message.rcode, frozenset(r.message.addresses)) for r in ex.responses}
            if len(answer_sets) > 1:
                genuine = self._pick_genuine(ex, baseline)

                def role_of(r: Any, genuine: Any = genuine) -> tuple[str, list[str]]:
                    if r is genuine:
                        return "genuine", []
                    return "injected", baseline.anomalies(r.packet) or ["answer differs from the later response"]
                ev = response_evidence(role_of)
                context["injected.count"] = sum(1 for e in ev if e.injected)
                return make(Technique.DNS_INJECTION, conf + 0.05,
                            [f"{len(ex.responses)} responses with different answers to one query"], ev)
        # 2. Answers from an address that runs no resolver.
        if responses and (resolver in self.hints.no_resolver or (has_control and not control_answered)):
            ev = response_evidence(lambda r: ("injected", ["answer from an address that runs no resolver"]))
            context["injected.count"] = len(responses)
            why = ("the probe recorded this address as running no resolver"
                   if resolver in self.hints.no_resolver else
                   "control names sent to the same address got no answer")
            return make(Technique.DNS_INJECTION, conf, [why], ev)
        # 3. Forged packet features: the response does not look like the resolver's own.
        if responses and baseline.ttls:
            odd = [r for r in responses if baseline.anomalies(r.packet)]
            if odd and len(odd) == len(responses):
                ev = response_evidence(lambda r: ("injected", baseline.anomalies(r.packet)))
                context["injected.count"] = len(odd)
                return make(Technique.DNS_INJECTION, conf,
                            ["response IP fields differ from the resolver's answers to control names"], ev)
        if not responses:
            if has_control and control_answered:
                return make(Technique.DNS_DROP, conf,
                            [f"{sum(ex.queries for ex in full)} queries unanswered; "
                             "control names on the same resolver answered"], [])
            if not has_control and resolver not in self.hints.no_resolver:
                return make(Technique.DNS_DROP, 0.4, ["queries unanswered; no control in this capture"], [])
            return None
        first = [ex.responses[0] for ex in full if ex.responses]
        rcodes = Counter(r.message.rcode for r in first)
        rcode, _n = rcodes.most_common(1)[0]
        ev = response_evidence(lambda r: ("response", baseline.anomalies(r.packet)))
        context["dns.rcode"] = first[0].message.rcode_name
        name_exists = (platform != OTHER or bool(self.hints.control_answers.get(qname)))
        control_conf = conf if control_answered else conf - 0.2
        if rcode == 3:
            if name_exists:
                return make(Technique.DNS_NXDOMAIN, control_conf,
                            ["NXDOMAIN for a name that exists (catalog / control resolver)"], ev)
            return None
        if rcode in (2, 5):
            return make(Technique.DNS_ERROR, control_conf,
                        [f"{first[0].message.rcode_name} while the control resolves"], ev)
        addresses = [a for r in first for a in r.message.addresses]
        if not addresses:
            if qtype == TYPE_A and (control_answered or self.hints.control_answers.get(qname)):
                return make(Technique.DNS_ERROR, control_conf, ["empty answer"], ev)
            return None
        context["dns.answer"] = sorted(set(addresses))
        return self._redirect_check(qname, addresses, platform, make, ev, conf)

    def _pick_genuine(self, ex: DnsExchange, baseline: Baseline) -> Any:
        if baseline.ttls:
            clean = [r for r in ex.responses if not baseline.anomalies(r.packet)]
            if clean:
                return clean[-1]
        return ex.responses[-1]

    def _redirect_check(self, qname: str, addresses: list[str], platform: str,
                        make: Callable[[Technique, float, list[str], list[EvidencePacket]], Finding],
                        ev: list[EvidencePacket], conf: float) -> Finding | None:
        unique = sorted(set(addresses))
        bogons = [a for a in unique if is_bogon(a)]
        if bogons:
            return make(Technique.DNS_REDIRECT, conf + 0.05,
                        [f"answer {', '.join(bogons)} is a private/bogon address"], ev)
        plat = self.catalog.platforms.get(platform)
        control = set(self.hints.control_answers.get(qname, []))
        if plat is not None and any(plat.owns_address(a) for a in unique):
            return None
        if control & set(unique):
            return None
        # A TLS handshake to the returned address tells a genuine answer from a redirect.
        for address in unique:
            verdict = self._certificate_at(address, qname)
            if verdict is None:
                continue
            if verdict.trusted and verdict.valid_for_name:
                return None
            return make(Technique.DNS_REDIRECT, conf,
                        [f"the certificate at {address} is not valid for {qname}: {verdict.reason}"], ev)
        candidate = make(Technique.DNS_REDIRECT, conf - 0.1,
                         ["answer matches a known blockpage or sinkhole address"], ev)
        candidate.context["candidate"] = True
        return candidate

    def _certificate_at(self, address: str, name: str) -> Any:
        if self._tls_index is None:
            self._tls_index = defaultdict(list)
            for (server, _port, kind, sni), group in self.tcp_groups.items():
                if kind == "tls":
                    self._tls_index[(server, sni)].append(group)
        for flow in (f for group in self._tls_index.get((address, name), []) for f in group):
            outcome = self.outcome(flow)
            if outcome.flight is not None and outcome.flight.certificates:
                return self.trust.check(outcome.flight.certificates, name)
        return None

    def _dns_location(self, finding: Finding, limited: list[DnsExchange],
                      controls: list[DnsExchange]) -> Location | None:
        injected_ttls = {e.packet.ttl for e in finding.evidence if e.injected}
        # The genuine answer's addresses tell the injected response apart at every TTL; its
        # IP TTL does not when the injector copies the trigger's TTL.
        genuine = {frozenset(e.fields.get("dns.answer", ())) for e in finding.evidence
                   if e.role == "genuine"}
        target_points = [self._dns_point(ex, injected_ttls, finding.technique, genuine)
                         for ex in limited]
        control_points = [self._dns_point(ex, set(), None) for ex in controls
                          if ex.query_ttl < self.max_query_ttl.get(ex.resolver, 0)]
        kind = "drop" if finding.technique == Technique.DNS_DROP else "inject"
        return locate(target_points, control_points, kind)

    def _dns_point(self, ex: DnsExchange, injected_ttls: set[int],
                   technique: Technique | None,
                   genuine: set[frozenset[str]] | None = None) -> SeriesPoint:
        router = next((p.src for p in ex.icmp if p.icmp_type in (11, 3)), None)
        answers = len({frozenset(r.message.addresses) for r in ex.responses})
        if technique == Technique.DNS_INJECTION and ex.responses:
            injected = ([r for r in ex.responses if frozenset(r.message.addresses) not in genuine]
                        if genuine else [])
            injected = (injected or [r for r in ex.responses if r.packet.ttl in injected_ttls]
                        or ex.responses[:1])
            genuine_too = answers > 1 or len(ex.responses) > len(injected)
            return SeriesPoint(ex.query_ttl, "anomaly", router, genuine_too,
                               injected[0].packet.ttl)
        if ex.responses:
            return SeriesPoint(ex.query_ttl, "anomaly" if technique else "response", router, True,
                               ex.responses[0].packet.ttl)
        return SeriesPoint(ex.query_ttl, "time_exceeded" if router else "silence", router, False)

    # ======================================================================= TCP
    def _tcp_verdicts(self, out: Verdicts) -> None:
        by_server: dict[tuple[str, int], list[tuple[str, str, FlowGroup]]] = defaultdict(list)
        for (server, port, kind, name), stored in self.tcp_groups.items():
            by_server[(server, port)].append((kind, name, stored))
        for (server, port), packed in sorted(by_server.items()):
            # Unpacked one server at a time: the rebuilt flows live only this long.
            groups = [(kind, name, list(stored)) for kind, name, stored in packed]
            self._ip_verdict(server, port, groups, out)
            controls_by_kind: dict[str, list[TcpFlow]] = defaultdict(list)
            targets = []
            for kind, name, flows in groups:
                if not name or self.catalog.is_control_name(name):
                    controls_by_kind[kind].extend(flows)
                elif kind in ("tls", "http"):
                    targets.append((kind, name, flows))
            for kind, name, flows in targets:
                self._trigger_verdict(server, port, kind, name, flows, controls_by_kind[kind], out)

    def _reaching(self, flows: list[TcpFlow], all_flows: list[TcpFlow]) -> tuple[list[TcpFlow], list[TcpFlow]]:
        """Split into flows whose trigger went all the way, and TTL-limited repeats."""
        full: list[TcpFlow] = []
        limited: list[TcpFlow] = []
        for f in flows:
            if f.trigger is None or f.synack is None:
                continue
            if f.syn is not None and f.trigger.ttl < f.syn.ttl:
                limited.append(f)
            else:
                full.append(f)
        if full or not limited:
            return full, limited
        # Only TTL-limited repeats (e.g. a CenTrace run): those at or above the smallest
        # TTL that drew a genuine server answer on this address reached the server.
        reach_ttls = [f.trigger.ttl for f in all_flows
                      if f.trigger is not None and self.outcome(f).kind in WORKING_TLS | {"http_response"}
                      and not self.outcome(f).injected]
        if reach_ttls:
            floor = min(reach_ttls)
        else:
            answered = [f.trigger.ttl for f in limited
                        if f.trigger is not None and self.outcome(f).kind not in ("time_exceeded", "pending")]
            floor = max(answered) if answered else 256
        return [f for f in limited if f.trigger is not None and f.trigger.ttl >= floor], limited

    def _trigger_verdict(self, server: str, port: int, kind: str, name: str,
                         flows: list[TcpFlow], controls: list[TcpFlow], out: Verdicts) -> None:
        platform = self.platform_of_name(name)
        every = flows + controls
        full, limited = self._reaching(flows, every)
        cfull, _climited = self._reaching(controls, every)
        outcomes = [(f, self.outcome(f)) for f in full]
        outcomes = [(f, o) for f, o in outcomes if o.kind not in ("pending", "no_trigger", "time_exceeded")]
        if not outcomes:
            return
        coutcomes = [self.outcome(f) for f in cfull]
        coutcomes = [o for o in coutcomes if o.kind not in ("pending", "no_trigger", "time_exceeded")]
        working = WORKING_TLS if kind == "tls" else {"http_response"}
        control_ok: bool | None = None
        if coutcomes:
            control_ok = sum(o.kind in working for o in coutcomes) * 2 >= len(coutcomes)
        counts = Counter(o.kind for _f, o in outcomes)
        majority, top = counts.most_common(1)[0]
        working_kinds = [(k, n) for k, n in counts.most_common() if k not in FAILED]
        if majority == "silence" and working_kinds and working_kinds[0][1] >= top:
            # Loss can make an attempt silent, never make one work: a tie is not a drop.
            majority = working_kinds[0][0]
        label = f"{name} at {server}:{port}"
        finding: Finding | None = None
        if majority in FAILED:
            finding = self._failed_trigger(kind, name, server, port, platform, majority, outcomes,
                                           control_ok, len(coutcomes))
        elif kind == "tls" and majority in WORKING_TLS:
            checked = self._tls_success_checks(name, server, port, platform, outcomes, cfull,
                                               coutcomes)
            if isinstance(checked, _Untrusted):
                out.checks.append(Check(platform, name, kind, False, False,
                                        f"{label}: {UNTRUSTED_DETAIL}"))
                return
            finding = checked
        elif kind == "http" and majority == "http_response":
            finding = self._http_response_check(name, server, port, platform, outcomes, coutcomes)
        if finding is not None and finding.context.get("candidate"):
            out.candidates.append(finding)
            finding = None
        ok = finding is None and majority not in FAILED
        out.checks.append(Check(platform, name, kind, ok, control_ok, label))
        if finding is None:
            return
        if control_ok is False:
            # Target and control fail alike: an outage or a blocked address, not SNI/Host filtering.
            out.checks[-1].ok = False
            return
        if limited:
            finding.location = self._tcp_location(finding, limited, controls)
        out.findings.append(finding)

    def _failed_trigger(self, kind: str, name: str, server: str, port: int, platform: str,
                        majority: str, outcomes: list[tuple[TcpFlow, FlowOutcome]],
                        control_ok: bool | None, n_controls: int) -> Finding:
        technique = {
            ("tls", "reset"): Technique.TLS_SNI_RESET, ("tls", "fin"): Technique.TLS_SNI_FIN,
            ("tls", "plaintext"): Technique.TLS_SNI_FIN, ("tls", "silence"): Technique.TLS_SNI_DROP,
            ("http", "reset"): Technique.HTTP_RESET, ("http", "fin"): Technique.HTTP_FIN,
            ("http", "plaintext"): Technique.HTTP_FIN, ("http", "silence"): Technique.HTTP_DROP,
        }[(kind, majority)]
        failing = [(f, o) for f, o in outcomes if o.kind == majority]
        if kind == "tls" and majority == "plaintext":
            # Injected text followed by a reset is the reset technique.
            if any(p.tcp_flags & RST for _f, o in failing for p in o.decisive) and not any(
                    p.tcp_flags & FIN for _f, o in failing for p in o.decisive):
                technique = Technique.TLS_SNI_RESET
        conf = CONFIDENCE_WITH_CONTROL if control_ok else CONFIDENCE_NO_CONTROL
        if len(failing) >= 2:
            conf += 0.03
        if any(o.injected for _f, o in failing):
            conf += 0.05
        flow, outcome = failing[0]
        evidence = self._flow_evidence(flow, outcome)
        injected_all = [e for _f, o in failing[:1] for e in o.injected]
        context: dict[str, Any] = {
            f"trigger.{'sni' if kind == 'tls' else 'host'}": name,
            "injected.count": len(injected_all) if injected_all else len(outcome.decisive),
            "outcome": majority,
            "tcp.handshake": "ok",
            # Attempts on which two SYN-ACKs with different sequence numbers came back.
            "tcp.synack_conflicts": sum(1 for f, _o in outcomes if f.synack_conflicts),
        }
        if outcome.decisive:
            context["response.payload"] = b"".join(p.payload for p in outcome.decisive)
        notes = [f"{len(failing)} of {_attempts(len(outcomes))}: {majority}"]
        if control_ok:
            notes.append(f"control ({_attempts(n_controls)}, same address) worked")
        elif control_ok is None:
            notes.append("no control for this address in the capture")
        if outcome.injected:
            notes.append("injected: " + "; ".join(outcome.injected[0].reasons))
        return Finding(platform, name, technique, round(min(conf, 0.99), 2), server,
                       evidence=evidence, notes=notes, context=context)

    def _flow_evidence(self, flow: TcpFlow, outcome: FlowOutcome) -> list[EvidencePacket]:
        ev: list[EvidencePacket] = []
        if flow.synack is not None:
            ev.append(EvidencePacket(flow.synack, "genuine", ["server's SYN-ACK (baseline)"],
                                     packet_fields(flow.synack, None)))
        if flow.trigger is not None:
            ev.append(EvidencePacket(flow.trigger, "trigger", [], packet_fields(flow.trigger, None)))
        injected_ids = {id(e.packet) for e in outcome.injected}
        ev.extend(outcome.injected)
        for pkt in outcome.decisive:
            if id(pkt) not in injected_ids:
                ev.append(EvidencePacket(pkt, "response", [], packet_fields(pkt, flow.trigger)))
        return ev

    def _tls_success_checks(self, name: str, server: str, port: int, platform: str,
                            outcomes: list[tuple[TcpFlow, FlowOutcome]], cfull: list[TcpFlow],
                            coutcomes: list[FlowOutcome]) -> Finding | _Untrusted | None:
        # Certificates (visible up to TLS 1.2): interception shows an untrusted chain.
        for flow, outcome in outcomes:
            flight = outcome.flight
            if flight is None or not flight.certificates:
                continue
            verdict = self.trust.check(flight.certificates, name)
            if verdict.trusted and verdict.valid_for_name:
                break
            control_trusted = [self.trust.check(o.flight.certificates, None).trusted
                               for o in coutcomes if o.flight and o.flight.certificates]
            if control_trusted and not any(control_trusted):
                # The control is intercepted too: nothing SNI-triggered to report, and no
                # genuine certificate either (all TLS intercepted, or trust anchors missing).
                return UNTRUSTED_EVERYWHERE
            conf = CONFIDENCE_WITH_CONTROL if control_trusted else CONFIDENCE_NO_CONTROL
            ev = self._flow_evidence(flow, outcome)
            ev.extend(EvidencePacket(p, "response", [], packet_fields(p, flow.trigger))
                      for p in flow.server_packets[:2] if p.payload)
            context = {"trigger.sni": name, "tls.cert.issuer": verdict.issuer,
                       "tls.cert.subject": verdict.subject, "outcome": "mitm"}
            notes = [f"certificate for {name}: {verdict.reason}; issuer {verdict.issuer}"]
            if control_trusted:
                notes.append("control SNI on the same address got a trusted certificate")
            return Finding(platform, name, Technique.TLS_MITM, conf, server, evidence=ev,
                           notes=notes, context=context)
        # Throughput: a throttled SNI transfers far slower than the control on the same address.
        # Best against best: loss stalls some transfers, a throttle slows every one.
        target_rate = max((_rate(f) for f, _o in outcomes), default=0.0)
        control_rate = max((_rate(f) for f in cfull), default=0.0)
        if target_rate and control_rate and target_rate < THROTTLE_RATIO * control_rate:
            flow, outcome = outcomes[0]
            ev = self._flow_evidence(flow, outcome)
            return Finding(platform, name, Technique.TLS_SNI_THROTTLE, CONFIDENCE_WITH_CONTROL, server,
                           evidence=ev,
                           notes=[f"{target_rate / 1000:.1f} kB/s vs {control_rate / 1000:.1f} kB/s "
                                  "for the control SNI on the same address"],
                           context={"trigger.sni": name, "outcome": "throttle",
                                    "throughput.ratio": target_rate / control_rate})
        return None

    def _http_response_check(self, host: str, server: str, port: int, platform: str,
                             outcomes: list[tuple[TcpFlow, FlowOutcome]],
                             coutcomes: list[FlowOutcome]) -> Finding | None:
        for flow, outcome in outcomes:
            response = outcome.response
            if response is None:
                continue
            location = response.location or ""
            injected = bool(outcome.injected)
            control_status = {o.response.status for o in coutcomes if o.response}
            redirect_away = 300 <= response.status < 400 and _redirects_away(host, location)
            conf = CONFIDENCE_WITH_CONTROL if coutcomes else CONFIDENCE_NO_CONTROL
            notes = []
            if injected:
                notes.append("response injected: " + "; ".join(outcome.injected[0].reasons))
            if redirect_away:
                notes.append(f"redirect to {location}")
                conf -= 0.1
            if control_status:
                notes.append(f"control Host got status {sorted(control_status)}")
            ev = self._flow_evidence(flow, outcome)
            context = {"trigger.host": host, "http.status": response.status,
                       "http.body": response.body, "outcome": "blockpage"}
            for hname, value in response.headers.items():
                context[f"http.header.{hname}"] = value
            if not injected and not redirect_away:
                context["candidate"] = True
                notes.append("response matches a known blockpage")
            return Finding(platform, host, Technique.HTTP_BLOCKPAGE, round(conf, 2), server,
                           evidence=ev, notes=notes, context=context)
        return None

    def _tcp_location(self, finding: Finding, limited: list[TcpFlow],
                      controls: list[TcpFlow]) -> Location | None:
        def point(flow: TcpFlow) -> SeriesPoint:
            assert flow.trigger is not None
            outcome = self.outcome(flow)
            router = next((p.src for p in flow.icmp if p.icmp_type == 11), None)
            if outcome.injected:
                return SeriesPoint(flow.trigger.ttl, "anomaly", router, router is not None,
                                   outcome.injected[0].packet.ttl)
            if outcome.kind in WORKING_TLS | {"http_response"}:
                return SeriesPoint(flow.trigger.ttl, "response", router, True)
            if router is not None:
                return SeriesPoint(flow.trigger.ttl, "time_exceeded", router, True)
            return SeriesPoint(flow.trigger.ttl, "silence", None, False)

        kind = "drop" if finding.technique in (Technique.TLS_SNI_DROP, Technique.HTTP_DROP) else "inject"
        climited = [f for f in controls if f.trigger is not None and f.syn is not None
                    and f.trigger.ttl < f.syn.ttl]
        return locate([point(f) for f in limited], [point(f) for f in climited], kind)

    # ======================================================================= IP
    def _ip_verdict(self, server: str, port: int, groups: list[tuple[str, str, list[TcpFlow]]],
                    out: Verdicts) -> None:
        flows = [f for _k, _n, fs in groups for f in fs]
        top_syn_ttl = max((g.syn.ttl for g in flows if g.syn is not None), default=0)
        full = [f for f in flows if f.syn is None or f.syn.ttl >= top_syn_ttl]
        connected = [f for f in full if f.synack is not None]
        # Only a flow without a SYN-ACK can have a connect_* outcome.
        unanswered = [(f, self.outcome(f)) for f in full if f.synack is None]
        failed = [(f, o) for f, o in unanswered if o.kind.startswith("connect_")]
        if self.is_control_address(server):
            return
        platform = self.platform_of_address(server)
        if not failed:
            if connected and platform != OTHER:
                out.checks.append(Check(platform, server, "ip", True, None, f"{server}:{port}"))
            return
        if connected and len(connected) >= len(failed):
            return  # mostly reachable: transient loss, not a block
        kinds = Counter(o.kind for _f, o in failed)
        majority, _ = kinds.most_common(1)[0]
        control_ok = self._control_addresses_ok(server, port)
        technique = {"connect_timeout": Technique.IP_BLACKHOLE, "connect_reset": Technique.IP_RESET,
                     "connect_icmp": Technique.IP_REJECT}[majority]
        flow, outcome = next((f, o) for f, o in failed if o.kind == majority)
        if control_ok is False:
            out.checks.append(Check(platform, server, "ip", False, False, f"{server}:{port}"))
            return
        conf = CONFIDENCE_WITH_CONTROL if control_ok else CONFIDENCE_NO_CONTROL
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
        notes = [f"{len(failed)} of {_attempts(len(full), 'connection attempt')} to {server}:{port}: "
                 f"{majority}"]
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
            pts = [SeriesPoint(f.syn.ttl, "time_exceeded" if f.icmp else "silence",
                               next((p.src for p in f.icmp if p.icmp_type == 11), None), bool(f.icmp))
                   for f in limited if f.syn is not None]
            finding.location = locate(pts, [], "drop" if technique == Technique.IP_BLACKHOLE else "inject")
        out.findings.append(finding)
        out.checks.append(Check(platform, server, "ip", False, control_ok, f"{server}:{port}"))

    def _control_addresses_ok(self, server: str, port: int) -> bool | None:
        if self._control_ports is None:
            self._control_ports = defaultdict(list)
            for (addr, p, _k, _n), flows in self.tcp_groups.items():
                if self.is_control_address(addr):
                    self._control_ports[p].extend((addr, f.synack is not None) for f in flows)
        results = [ok for addr, ok in self._control_ports.get(port, []) if addr != server]
        if not results:
            return None
        return any(results)


def _redirects_away(host: str, location: str) -> bool:
    """A redirect to another site (a blockpage host), not within the requested one."""
    if not location or location.startswith("/"):
        return False
    target = urlsplit(location).hostname or ""
    return target != host and not target.endswith("." + host) and not host.endswith("." + target)


def _rate(flow: TcpFlow) -> float:
    if flow.server_data_first_ts is None or flow.server_data_last_ts is None:
        return 0.0
    span = flow.server_data_last_ts - flow.server_data_first_ts
    if flow.server_bytes < 16384:
        return 0.0
    # A fast transfer can finish within a few ms; its rate is then at least bytes / 50 ms
    # (a lower bound, so a fast control still shows how slow a throttled target is).
    return flow.server_bytes / max(span, 0.05)
