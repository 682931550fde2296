"""DNS rules: a name asked of a resolver, compared with control names on the same resolver.

Techniques: dns.injection (racing answers, answers from a non-resolver, forged IP
fields), dns.drop, dns.nxdomain, dns.error, dns.redirect.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from fingerprint.analysis import confidence
from fingerprint.analysis.addresses import is_bogon
from fingerprint.analysis.evidence import Baseline, EvidencePacket, packet_fields
from fingerprint.analysis.findings import Check, Finding, Verdicts
from fingerprint.analysis.index import ObservationIndex
from fingerprint.analysis.locate import Location, Seen, SeriesPoint, locate
from fingerprint.analysis.observe import DnsExchange, DnsResponse
from fingerprint.catalog import OTHER
from fingerprint.model import Technique
from fingerprint.protocols.dns import FLAG_TC, TYPE_A, TYPE_AAAA

MakeFinding = Callable[[Technique, float, list[str], list[EvidencePacket]], Finding]


def verdicts(index: ObservationIndex, out: Verdicts) -> None:
    """One check per (resolver, name, A/AAAA) target; a finding or candidate when it failed."""
    hints = index.hints
    for (resolver, qname, qtype), exchanges in sorted(index.dns_groups.items()):
        if index.catalog.is_control_name(qname) or qtype not in (TYPE_A, TYPE_AAAA):
            continue
        platform = index.platform_of_name(qname)
        controls, control_answered = index.dns_controls(resolver, qtype)
        top_ttl = index.max_query_ttl.get(resolver, 0)
        full = [ex for ex in exchanges if ex.query_ttl >= top_ttl]
        limited = [ex for ex in exchanges if ex.query_ttl < top_ttl]
        settled = [ex for ex in full if not index.dns_pending(ex)]
        if full and not settled:
            continue  # every query was sent just before the capture ended
        full = settled
        finding = dns_finding(index, resolver, qname, qtype, platform, full, controls,
                              control_answered)
        control_ok: bool | None = control_answered if controls else None
        if resolver in hints.no_resolver:
            control_ok = True  # silence is the expected behaviour of a non-resolver
        if finding is None:
            answered = any(ex.responses for ex in full)
            if resolver in hints.no_resolver:
                answered = True  # no answer from a non-resolver is what should happen
            detail = f"resolver {resolver}"
            failing = failing_resolver(index, resolver, full)
            if failing:
                answered = False
                detail += (f": {failing} to this name and every other name asked of it, no "
                           "name resolved; a resolver that is down or serves no one here "
                           "looks the same, so no block is claimed")
            elif not answered and not control_answered:
                detail += (": queries unanswered, and nothing else asked of this resolver was "
                           "answered; a dead resolver, or an address that runs none, looks "
                           "the same, so no drop is claimed")
            out.checks.append(Check(platform, qname, "dns", answered, control_ok, detail))
            continue
        shared = shared_with_control(finding, controls)
        if shared and not finding.context.get("candidate"):
            out.checks.append(Check(platform, qname, "dns", False, False,
                                    f"resolver {resolver}: the control name got the same answer "
                                    f"({shared}): every name is answered so (a captive portal, "
                                    "a resolver redirecting all names), not a block of this name"))
            continue
        if finding.context.get("candidate"):
            out.candidates.append(finding)
            out.checks.append(Check(platform, qname, "dns", True, control_ok, f"resolver {resolver}"))
            continue
        if limited:
            finding.location = dns_location(index, finding, limited, controls)
        out.findings.append(finding)
        out.checks.append(Check(platform, qname, "dns", False, control_ok, f"resolver {resolver}"))


def shared_with_control(finding: Finding, controls: list[DnsExchange]) -> str:
    """The addresses of a dns.redirect answer that control names asked of the same resolver
    got too, joined ("" if none, or another technique)."""
    if finding.technique is not Technique.DNS_REDIRECT:
        return ""
    control = {a for ex in controls for r in ex.responses for a in r.message.addresses}
    return ", ".join(sorted(set(finding.context.get("dns.answer", [])) & control)[:3])


def dns_finding(index: ObservationIndex, resolver: str, qname: str, qtype: int, platform: str,
                full: list[DnsExchange], controls: list[DnsExchange],
                control_answered: bool) -> Finding | None:
    """The technique the full-TTL exchanges show, checked in order of how direct the proof is."""
    # A truncated response (TC) tells the client to ask again over TCP (RFC 1035 4.2.1,
    # RFC 7766 5): its empty answer section says nothing of the name.
    full = [ex for ex in full if not ex.responses
            or not all(r.message.flags & FLAG_TC for r in ex.responses)]
    if not full:
        return None
    hints = index.hints
    baseline = index.resolver_baseline(resolver)
    has_control = bool(controls)
    conf = confidence.base(has_control)
    responses = [r for ex in full for r in ex.responses]
    context: dict[str, Any] = {"trigger.qname": qname, "dns.resolver": resolver,
                               "dns.response_count": max(len(ex.responses) for ex in full)}

    def make(technique: Technique, value: float, notes: list[str],
             evidence: list[EvidencePacket]) -> Finding:
        trig = [EvidencePacket(full[0].query, "trigger", [],
                               packet_fields(full[0].query, None))]
        return Finding(platform, qname, technique, confidence.capped(value), resolver,
                       evidence=trig + evidence, notes=notes, context=context)

    def response_evidence(role_of: Callable[[DnsResponse], tuple[str, list[str]]]
                          ) -> list[EvidencePacket]:
        items = []
        for ex in full[:4]:
            for r in ex.responses:
                role, reasons = role_of(r)
                fields = packet_fields(r.packet, ex.query)
                fields.update({"dns.answer": list(r.message.addresses),
                               "dns.cname": list(r.message.cnames),
                               "dns.rcode": r.message.rcode_name, "dns.flags": r.message.flags,
                               "dns.answer_ttl": [a.ttl for a in r.message.answers],
                               "summary": f"dns {r.message.rcode_name} flags=0x{r.message.flags:04x}"
                                          f" [{r.message.flags_text()}] answers="
                                          f"{','.join(r.message.addresses) or '-'}"
                                          f" delay={r.delay * 1000:.1f}ms"})
                items.append(EvidencePacket(r.packet, role, reasons, fields))
        return items

    no_resolver = resolver in hints.no_resolver or (has_control and not control_answered)
    if responses and no_resolver:
        # Answers from an address that runs no resolver can only come from the path.
        context["dns.no_resolver"] = True
    # 1. Several different answers to one query: an on-path injector raced the resolver.
    for ex in full:
        answer_sets = {(r.message.rcode, frozenset(r.message.addresses)) for r in ex.responses}
        if len(answer_sets) > 1 and not rotated_answers(index, platform, qname, ex):
            genuine = _pick_genuine(ex, baseline)
            genuine_answer = (genuine.message.rcode, frozenset(genuine.message.addresses))
            genuine_fields = (genuine.packet.ttl, genuine.packet.df)

            def role_of(r: DnsResponse, genuine: DnsResponse = genuine,
                        genuine_answer: Any = genuine_answer,
                        genuine_fields: Any = genuine_fields) -> tuple[str, list[str]]:
                # The genuine answer is chosen in one query; the labels cover up to four.
                # Another query's answer with the genuine one's addresses and IP fields
                # (a late genuine answer) is genuine too.
                if r is genuine:
                    return "genuine", []
                anomalies = baseline.anomalies(r.packet)
                if not anomalies and (r.message.rcode, frozenset(r.message.addresses)) \
                        == genuine_answer and (r.packet.ttl, r.packet.df) == genuine_fields:
                    return "genuine", []
                return "injected", anomalies or ["answer differs from the later response"]
            ev = response_evidence(role_of)
            context["injected.count"] = sum(1 for e in ev if e.injected)
            return make(Technique.DNS_INJECTION, conf + confidence.RACING_DNS_ANSWERS,
                        [f"{len(ex.responses)} responses with different answers to one query"], ev)
    # 2. Answers from an address that runs no resolver.
    if responses and no_resolver:
        ev = response_evidence(lambda r: ("injected", ["answer from an address that runs no resolver"]))
        context["injected.count"] = len(responses)
        why = ("the probe recorded this address as running no resolver"
               if resolver in hints.no_resolver else
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
        # Silence is compared with queries of the same type: home routers that ignore
        # every AAAA query (while answering A) are common, and say nothing of the name.
        same_type = [ex for ex in controls if ex.qtype == qtype]
        if same_type and any(ex.responses for ex in same_type):
            return make(Technique.DNS_DROP, conf,
                        [f"{sum(ex.queries for ex in full)} queries unanswered; "
                         "control names on the same resolver answered"], [])
        others = [] if same_type or resolver in hints.no_resolver \
            else index.dns_other_answered(resolver, qname, qtype)
        if others:
            # No control name was asked, but the same resolver answered other names: it
            # was alive, and this name's silence is its own.
            shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
            return make(Technique.DNS_DROP, confidence.DNS_DROP_OTHER_NAMES,
                        [f"{sum(ex.queries for ex in full)} queries unanswered; no control name "
                         f"in this capture, but the same resolver answered {shown}"], [])
        # Nothing this resolver was asked got an answer: a dead resolver, or an address
        # that runs none (a capture taken at a UDP sink), looks the same; `verdicts`
        # gives the check that reason.
        return None
    first = [ex.responses[0] for ex in full if ex.responses]
    rcodes = Counter(r.message.rcode for r in first)
    rcode, top = rcodes.most_common(1)[0]
    resolved = [r for r in first if r.message.rcode == 0 and r.message.addresses]
    if rcode != 0 and len(resolved) >= top:
        # A resolver fails now and then (SERVFAIL when its upstream timed out; the stub
        # asks again), it never resolves a name by accident: a tie is not an error.
        first, rcode = resolved, 0
    control_nxdomain = any(ex.responses for ex in controls) and all(
        r.message.rcode == 3 for ex in controls for r in ex.responses[:1])
    if (rcode in (2, 5) or (rcode == 3 and control_nxdomain)) \
            and not index.resolves_names(resolver, qname):
        # The resolver fails every name asked of it (down, refusing this client, or
        # denying every name: the control's NXDOMAIN too).
        return None
    if rcode != 0 and index.resolved_as_other_type(resolver, qname, qtype):
        # The same resolver gave the name's addresses for another query type: an error
        # for this type only is the resolver's (RFC 4074 4.2, 4.3: servers that answer
        # AAAA queries with NXDOMAIN or SERVFAIL), the name resolves.
        return None
    ev = response_evidence(lambda r: ("response", baseline.anomalies(r.packet)))
    context["dns.rcode"] = first[0].message.rcode_name
    name_exists = (platform != OTHER or bool(hints.control_answers.get(qname)))
    control_conf = conf if control_answered else conf + confidence.CONTROL_UNANSWERED
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
        if qtype == TYPE_A and (control_answered or hints.control_answers.get(qname)):
            return make(Technique.DNS_ERROR, control_conf, ["empty answer"], ev)
        return None
    context["dns.answer"] = sorted(set(addresses))
    if any(r.message.cnames for r in first):  # a blockpage host reached through CNAMEs
        context["dns.cname"] = list(dict.fromkeys(c for r in first for c in r.message.cnames))
    return redirect_check(index, qname, addresses, platform, make, ev, conf)


def rotated_answers(index: ObservationIndex, platform: str, qname: str,
                    ex: DnsExchange) -> bool:
    """Several different answers to one query that are the resolver's own, not a race.

    A stub resolver sends the same query again (same ID) when the answer is slow
    (glibc after 5 s, systemd-resolved sooner), and a resolver answering each copy
    rotates its records or asks another upstream, as CDNs' authoritative servers give
    different addresses per query.  Such answers are all resolved ones and either all
    the platform's own addresses (the catalog's networks, or the control resolver's
    answers), or as many as the copies sent, each with the same CNAME chain (an
    injector forges address records, not the CDN's chain)."""
    messages = [r.message for r in ex.responses]
    if not all(m.rcode == 0 and m.addresses for m in messages):
        return False
    plat = index.catalog.platforms.get(platform)
    control = set(index.hints.control_answers.get(qname, []))
    addresses = {a for m in messages for a in m.addresses}
    if (plat is not None and all(plat.owns_address(a) for a in addresses)) or (
            control and addresses <= control):
        return True
    chains = {tuple(m.cnames) for m in messages}
    return len(messages) <= ex.queries and len(chains) == 1 and bool(next(iter(chains)))


def failing_resolver(index: ObservationIndex, resolver: str, full: list[DnsExchange]) -> str:
    """The error codes (SERVFAIL, REFUSED, NXDOMAIN) `resolver` gave this name when it
    resolved no name in the capture; "" otherwise."""
    first = [ex.responses[0].message for ex in full if ex.responses]
    if not first or not all(m.rcode in (2, 3, 5) for m in first) or index.resolves_names(
            resolver, first[0].qname):
        return ""
    return "/".join(sorted({m.rcode_name for m in first}))


def _pick_genuine(ex: DnsExchange, baseline: Baseline) -> DnsResponse:
    if baseline.ttls:
        clean = [r for r in ex.responses if not baseline.anomalies(r.packet)]
        if clean:
            return clean[-1]
    return ex.responses[-1]


def redirect_check(index: ObservationIndex, qname: str, addresses: list[str], platform: str,
                   make: MakeFinding, ev: list[EvidencePacket], conf: float) -> Finding | None:
    """dns.redirect for an answer that is not the platform's: a bogon, or an address whose
    certificate is not valid for the name; otherwise a candidate for signatures."""
    unique = sorted(set(addresses))
    bogons = [a for a in unique if is_bogon(a)]
    if bogons:
        return make(Technique.DNS_REDIRECT, conf + confidence.BOGON_ANSWER,
                    [f"answer {', '.join(bogons)} is a private/bogon address"], ev)
    plat = index.catalog.platforms.get(platform)
    control = set(index.hints.control_answers.get(qname, []))
    if plat is not None and any(plat.owns_address(a) for a in unique):
        return None
    if control & set(unique):
        return None
    # A TLS handshake to the returned address tells a genuine answer from a redirect.
    for address in unique:
        verdict = index.certificate_at(address, qname)
        if verdict is None or verdict.incomplete:
            continue  # no certificate, or one whose issuer the capture lacks: unknown
        if verdict.trusted and verdict.valid_for_name:
            return None
        return make(Technique.DNS_REDIRECT, conf,
                    [f"the certificate at {address} is not valid for {qname}: {verdict.reason}"], ev)
    candidate = make(Technique.DNS_REDIRECT, conf + confidence.UNPROVEN_REDIRECT,
                     ["answer matches a known blockpage or sinkhole address"], ev)
    candidate.context["candidate"] = True
    return candidate


def dns_location(index: ObservationIndex, finding: Finding, limited: list[DnsExchange],
                 controls: list[DnsExchange]) -> Location | None:
    injected_ttls = {e.packet.ttl for e in finding.evidence if e.injected}
    # The genuine answer's addresses tell the injected response apart at every TTL; its
    # IP TTL does not when the injector copies the trigger's TTL.
    genuine = {frozenset(e.fields.get("dns.answer", ())) for e in finding.evidence
               if e.role == "genuine"}
    target_points = [_dns_point(ex, injected_ttls, finding.technique, genuine)
                     for ex in limited]
    control_points = [_dns_point(ex, set(), None) for ex in controls if index.dns_limited(ex)]
    kind = "drop" if finding.technique == Technique.DNS_DROP else "inject"
    return locate(target_points, control_points, kind)


def _dns_point(ex: DnsExchange, injected_ttls: set[int], technique: Technique | None,
               genuine: set[frozenset[str]] | None = None) -> SeriesPoint:
    # A router that dropped the query's expired copy, or refused it, names its hop.
    router = next((p.src for p in ex.icmp if p.is_time_exceeded or p.is_unreachable), None)
    answers = len({frozenset(r.message.addresses) for r in ex.responses})
    if technique == Technique.DNS_INJECTION and ex.responses:
        injected = ([r for r in ex.responses if frozenset(r.message.addresses) not in genuine]
                    if genuine else [])
        injected = (injected or [r for r in ex.responses if r.packet.ttl in injected_ttls]
                    or ex.responses[:1])
        genuine_too = answers > 1 or len(ex.responses) > len(injected)
        return SeriesPoint(ex.query_ttl, Seen.ANOMALY, router, genuine_too,
                           injected[0].packet.ttl)
    if ex.responses:
        return SeriesPoint(ex.query_ttl, Seen.ANOMALY if technique else Seen.RESPONSE, router, True,
                           ex.responses[0].packet.ttl)
    return SeriesPoint(ex.query_ttl, Seen.TIME_EXCEEDED if router else Seen.SILENCE, router, False)
