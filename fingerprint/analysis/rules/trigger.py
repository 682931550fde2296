"""What TLS and HTTP rules share: a trigger (ClientHello or request) sent on an open connection.

A target is an SNI or Host on one address and port; its control is the control
SNI / Host (or none) on the same address and port.  The majority outcome of
the attempts that reached the server decides: a failure (reset, fin, injected
plaintext, silence) is one of the `FAILED_TECHNIQUES`; a working answer goes on
to the family's own checks (`tls.success_checks`, `http.response_check`).
The same plain answer the control got from the server is the server's own
(`same_answer_as_control`); a control that failed otherwise than the target does
not hide an injected block (`failed_otherwise`); runs with TTL-limited attempts
only are judged target against control at equal TTL (`traceroute_verdict`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any
from urllib.parse import urlsplit

from fingerprint.analysis import confidence
from fingerprint.analysis.coverage import ENDED_BEFORE_ANSWER
from fingerprint.analysis.evidence import flow_evidence
from fingerprint.analysis.findings import Check, Finding, Verdicts, count_of
from fingerprint.analysis.index import ECH_KIND, ObservationIndex
from fingerprint.analysis.locate import Location, Seen, SeriesPoint, locate
from fingerprint.analysis.observe import TcpFlow
from fingerprint.analysis.outcome import (
    ANSWERED_OK,
    FAILED,
    UNCAPTURED_DETAIL,
    UNDECIDED,
    WORKING,
    WORKING_TLS,
    FlowOutcome,
    Outcome,
)
from fingerprint.analysis.residual import residual, start_of
from fingerprint.analysis.rules import http, ip, tls
from fingerprint.capture.packet import FIN, RST
from fingerprint.catalog import OTHER
from fingerprint.model import Mode, Technique

FAILED_TECHNIQUES = {
    ("tls", Outcome.RESET): Technique.TLS_SNI_RESET, ("tls", Outcome.FIN): Technique.TLS_SNI_FIN,
    ("tls", Outcome.PLAINTEXT): Technique.TLS_SNI_FIN, ("tls", Outcome.SILENCE): Technique.TLS_SNI_DROP,
    ("http", Outcome.RESET): Technique.HTTP_RESET, ("http", Outcome.FIN): Technique.HTTP_FIN,
    ("http", Outcome.PLAINTEXT): Technique.HTTP_FIN, ("http", Outcome.SILENCE): Technique.HTTP_DROP,
}
"""(trigger kind, majority outcome) -> technique, for every outcome in `FAILED`."""
DROP_TECHNIQUES = (Technique.TLS_SNI_DROP, Technique.HTTP_DROP)
PORT_KINDS = {443: "tls", 80: "http"}
CONNECT_WHY = {Outcome.CONNECT_RESET: "reset (RST to the SYN)",
               Outcome.CONNECT_TIMEOUT: "unanswered",
               Outcome.CONNECT_ICMP: "refused by ICMP unreachable"}


def verdicts(index: ObservationIndex, server: str, port: int,
             groups: list[tuple[str, str, list[TcpFlow]]], out: Verdicts) -> None:
    """Every TLS/HTTP target on one address and port, against that endpoint's controls."""
    controls_by_kind: dict[str, list[TcpFlow]] = defaultdict(list)
    targets = []
    for kind, name, flows in groups:
        if not name or index.catalog.is_control_name(name):
            controls_by_kind[kind].extend(flows)
            if kind == ECH_KIND:
                # A control ClientHello with ECH still shows the address answers TLS (and
                # its certificate); if ECH alone is blocked the control fails: no verdict.
                controls_by_kind["tls"].extend(flows)
        elif kind in ("tls", "http"):
            targets.append((kind, name, flows))
    working = frozenset((kind, name) for kind, name, flows in targets
                        if mostly_working(index, kind, flows))
    for kind, name, flows in targets:
        target_verdict(index, server, port, kind, name, flows, controls_by_kind[kind], out,
                       working)
    if not targets:
        untested(index, server, port, [f for _k, _n, fs in groups for f in fs], out)


def untested(index: ObservationIndex, server: str, port: int, flows: list[TcpFlow],
             out: Verdicts) -> None:
    """A platform's address where no connection got far enough to test TLS or HTTP.

    The address check alone (a RST or silence to the SYN) says nothing of TLS or HTTP:
    when no connection on the port completed its handshake, that kind of test never ran,
    so the platform cannot be called accessible from it (a RST shaped like a closed
    port's, which a false-positive signature clears of ip.reset, included).
    """
    kind = PORT_KINDS.get(port)
    if kind is None or index.is_control_address(server):
        return
    platform = index.platform_of_address(server)
    if platform == OTHER:
        return
    # Attempts the client dropped for another address (Happy Eyeballs) tested nothing.
    flows = [f for f in flows if f.synack is not None or not ip.abandoned_for_another(index, f)]
    if not flows:
        return
    if any(f.synack is not None for f in flows):
        block = residual(index, server, port)
        if block is not None and block.covers(server, port) and any(
                f.synack is None and index.outcome(f).kind.is_connect_failure
                and start_of(f) > block.start for f in flows):
            out.checks.append(Check(platform, server, kind, False, None,
                                    f"no {kind.upper()} test ran: connections to "
                                    f"{server}:{port} failed during {block.describe()}"))
        return
    block = residual(index, server, port)
    starts = [start_of(f) for f in flows if index.outcome(f).kind.is_connect_failure]
    if block is not None and block.scope == "client" and starts and min(starts) > block.start:
        # Never connected, and tried only while the client's whole address was blocked.
        out.checks.append(Check(platform, server, kind, False, None,
                                f"no {kind.upper()} test ran: connections to {server}:{port} "
                                f"failed during {block.describe()}"))
        return
    outcomes = Counter(index.outcome(f).kind for f in flows)
    outcomes.pop(Outcome.PENDING, None)
    outcomes.pop(Outcome.TIME_EXCEEDED, None)
    outcomes.pop(Outcome.MIDSTREAM, None)  # what is left of connections opened earlier
    if not outcomes:
        return
    majority = outcomes.most_common(1)[0][0]
    out.checks.append(Check(platform, server, kind, False, index.control_addresses_ok(server, port),
                            f"no {kind.upper()} test ran: every connection to {server}:{port} "
                            f"was {CONNECT_WHY.get(majority, majority)}"))


def mostly_working(index: ObservationIndex, kind: str, flows: list[TcpFlow]) -> bool:
    """Most full-TTL attempts of this name got the service's normal answer."""
    working = (WORKING_TLS if kind == "tls" else {Outcome.HTTP_RESPONSE}) | ANSWERED_OK
    kinds = [index.outcome(f).kind for f in flows if f.trigger is not None
             and f.synack is not None and not (f.syn is not None and f.trigger.ttl < f.syn.ttl)]
    kinds = [k for k in kinds if k not in UNDECIDED]
    return bool(kinds) and sum(k in working for k in kinds) * 2 > len(kinds)


def reaching(index: ObservationIndex, flows: list[TcpFlow], all_flows: list[TcpFlow]
             ) -> tuple[list[TcpFlow], list[TcpFlow]]:
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
                  if f.trigger is not None and index.outcome(f).kind in WORKING
                  and not index.outcome(f).injected]
    if reach_ttls:
        floor = min(reach_ttls)
    else:
        answered = [f.trigger.ttl for f in limited
                    if f.trigger is not None
                    and index.outcome(f).kind not in (Outcome.TIME_EXCEEDED, Outcome.PENDING)]
        floor = max(answered) if answered else 256
    return [f for f in limited if f.trigger is not None and f.trigger.ttl >= floor], limited


def target_verdict(index: ObservationIndex, server: str, port: int, kind: str, name: str,
                   flows: list[TcpFlow], controls: list[TcpFlow], out: Verdicts,
                   names_working: frozenset[tuple[str, str]] = frozenset()) -> None:
    """One target against its controls.  `names_working`: (kind, name) on this address
    and port whose attempts mostly worked (`failed_otherwise`)."""
    platform = index.platform_of_name(name)
    every = flows + controls
    full, limited = reaching(index, flows, every)
    cfull, _climited = reaching(index, controls, every)
    outcomes = [(f, index.outcome(f)) for f in full]
    pending = sum(o.kind is Outcome.PENDING for _f, o in outcomes)
    outcomes = [(f, o) for f, o in outcomes if o.kind not in UNDECIDED]
    label = f"{name} at {server}:{port}"
    if not outcomes:
        if pending:
            # The capture ended before any answer to this test was due: not tested.
            out.checks.append(Check(platform, name, kind, False, None,
                                    f"{label}: {ENDED_BEFORE_ANSWER}"))
        elif not full and limited:
            traceroute_verdict(index, server, port, kind, name, platform, limited, controls, out)
        return
    cpairs = [(f, index.outcome(f)) for f in cfull]
    cpairs = [(f, o) for f, o in cpairs if o.kind not in UNDECIDED]
    coutcomes = [o for _f, o in cpairs]
    working = (WORKING_TLS if kind == "tls" else {Outcome.HTTP_RESPONSE}) | ANSWERED_OK
    # Only a failure (of the target or of a control) can be a residual block's.
    block = residual(index, server, port) if any(
        o.kind not in working for _f, o in [*outcomes, *cpairs]) else None
    residual_notes: list[str] = []
    if block is not None and block.covers(server, port):
        # Order of events: a control that failed only after the trigger, while the
        # client was under residual blocking, says nothing about this address.
        late_failed = [o for f, o in cpairs if start_of(f) > block.start and o.kind not in working]
        if late_failed:
            coutcomes = [o for f, o in cpairs if start_of(f) <= block.start or o.kind in working]
            residual_notes.append(f"{len(late_failed)} control attempt(s) that failed after "
                                  "the trigger, during residual blocking, are not counted")
        failing_starts = [f.trigger.ts for f, o in outcomes
                          if o.kind in FAILED and f.trigger is not None]
        if not block.is_trigger(name, server, port) and (server, port) in block.failed_at \
                and failing_starts and min(failing_starts) > block.start:
            # This target failed only after another trigger had the client blocked, and
            # other connections to its address failed in that time too.
            out.checks.append(Check(platform, name, kind, False, None,
                                    f"{label}: failed only during {block.describe()}"))
            return
    control_ok: bool | None = None
    if coutcomes:
        control_ok = sum(o.kind in working for o in coutcomes) * 2 >= len(coutcomes)
    counts = Counter(o.kind for _f, o in outcomes)
    majority, top = counts.most_common(1)[0]
    working_kinds = [(k, n) for k, n in counts.most_common() if k not in FAILED]
    if majority is Outcome.SILENCE and working_kinds and working_kinds[0][1] >= top:
        # Loss can make an attempt silent, never make one work: a tie is not a drop.
        majority = working_kinds[0][0]
    if same_answer_as_control(majority, outcomes, coutcomes):
        # The server answers every name so (a non-TLS or closing server): its own
        # behaviour, not a censor's.
        out.checks.append(Check(platform, name, kind, True, True,
                                f"{label}: the same {majority} answer the control got "
                                "from this server: the server's own"))
        return
    alike = answered_alike(majority, outcomes, coutcomes)
    if alike:
        out.checks.append(Check(platform, name, kind, False, False, f"{label}: {alike}"))
        return
    finding: Finding | None = None
    if majority in FAILED:
        finding = failed_trigger(index, kind, name, server, platform, majority, outcomes,
                                 control_ok, len(coutcomes))
    elif kind == "tls" and majority in WORKING_TLS:
        checked = tls.success_checks(index, name, server, platform, outcomes, cfull, coutcomes)
        if isinstance(checked, tls.Untrusted):
            out.checks.append(Check(platform, name, kind, False, checked.control_ok,
                                    f"{label}: {checked.detail}"))
            return
        finding = checked
    elif kind == "http" and majority is Outcome.HTTP_RESPONSE:
        finding = http.response_check(index, name, server, platform, outcomes, coutcomes)
    if finding is not None and finding.context.get("candidate"):
        out.candidates.append(finding)
        finding = None
    ok = finding is None and majority not in FAILED
    note = index.cert_notes.get((server, port, name))
    if majority is Outcome.UNCAPTURED:
        note = UNCAPTURED_DETAIL
    out.checks.append(Check(platform, name, kind, ok, control_ok,
                            f"{label}: {note}" if note else label))
    if finding is None:
        return
    if control_ok is None and unproven_close(majority, outcomes):
        out.checks[-1].ok = False
        out.checks[-1].detail = (f"{label}: {majority} with the server's own TTL, DF and IP "
                                 "IDs, and no control on this address: the server refusing "
                                 "the name and a box beside it look the same")
        return
    if control_ok is False and not failed_otherwise(kind, name, finding, coutcomes,
                                                    names_working):
        # Target and control fail alike: an outage or a blocked address, not SNI/Host filtering.
        out.checks[-1].ok = False
        return
    if limited and finding.location is None:
        finding.location = tcp_location(index, finding, limited, controls)
    if block is not None and block.is_trigger(name, server, port):
        finding.notes.append(block.describe())
        finding.context["residual.scope"] = block.scope
        finding.context["residual.seconds"] = block.seconds
    finding.notes.extend(residual_notes)
    out.findings.append(finding)


def unproven_close(majority: Outcome, outcomes: list[tuple[TcpFlow, FlowOutcome]]) -> bool:
    """A reset or FIN after the trigger that nothing marks as forged (the server's TTL,
    DF and IP IDs): without a control on the address, the server's own refusal of the
    name (an RST for a name it does not serve) cannot be told from a censor's."""
    if majority not in (Outcome.RESET, Outcome.FIN):
        return False
    return not any(o.injected for _f, o in outcomes if o.kind is majority)


def failed_otherwise(kind: str, name: str, finding: Finding, coutcomes: list[FlowOutcome],
                     names_working: frozenset[tuple[str, str]]) -> bool:
    """The control failed, but not as the target did, and the address works.

    The target's failure carries injected packets, no control attempt drew one of the
    same kind, and another name on the same address and port mostly worked: the
    control met a block of its own (e.g. ECH without an outer SNI, blocked by itself),
    not an outage, so the target's injected answer is SNI (Host) filtering.  Said in
    the finding's notes, its confidence capped (`confidence.CONTROL_FAILED_OTHERWISE`).
    """
    outcome_kind = finding.context.get("outcome")
    injected = finding.context.get("injected.count", 0) and any(
        e.injected for e in finding.evidence)
    if not injected or any(o.kind == outcome_kind and o.injected for o in coutcomes):
        return False
    others = sorted(n for k, n in names_working if k == kind and n != name)
    if not others:
        return False
    control_kinds = ", ".join(sorted({o.kind for o in coutcomes}))
    finding.notes.append(f"the control failed differently ({control_kinds}); other names "
                         f"on this address worked ({', '.join(others[:3])})")
    finding.confidence = confidence.capped(min(finding.confidence,
                                               confidence.CONTROL_FAILED_OTHERWISE))
    return True


def answered_alike(majority: Outcome, outcomes: list[tuple[TcpFlow, FlowOutcome]],
                   coutcomes: list[FlowOutcome]) -> str:
    """Why the target's forged HTTP answer says nothing of this Host ("" if it does): the
    control Host on the same address mostly drew a forged answer of the same status that
    leads to the same place (the same Location host, or a body of the same length).  A
    captive portal, or a proxy answering every Host, answers so; the control is not
    reached either, so nothing tells a block of this Host."""
    if majority is not Outcome.HTTP_RESPONSE or not coutcomes:
        return ""

    def shape(o: FlowOutcome) -> tuple[int, str, int] | None:
        r = o.response
        if r is None or not o.injected:
            return None
        try:
            target = urlsplit(r.location).hostname or "" if r.location else ""
        except ValueError:  # a Location that is no URL: compare the rest
            target = ""
        return (r.status, target, 0 if target else len(r.body))

    forged = {shape(o) for _f, o in outcomes if o.kind is majority} - {None}
    alike = [o for o in coutcomes if shape(o) in forged]
    if not forged or len(alike) * 2 <= len(coutcomes):
        return ""
    return (f"the control Host got the same forged answer ({len(alike)} of "
            f"{count_of(len(coutcomes), 'attempt')}): every Host is answered so (a captive "
            "portal, or a proxy in front of all HTTP), not a block of this Host")


def same_answer_as_control(majority: Outcome, outcomes: list[tuple[TcpFlow, FlowOutcome]],
                           coutcomes: list[FlowOutcome]) -> bool:
    """Target and control drew the same uninjected plain answer from one server (e.g.
    a custom server answering every ClientHello with a few non-TLS bytes)."""
    if majority is not Outcome.PLAINTEXT or not coutcomes:
        # A bare FIN for every name could as well be a censor blocking the address.
        return False
    failing = [o for _f, o in outcomes if o.kind == majority]
    if any(o.injected for o in failing) or any(o.injected for o in coutcomes):
        return False
    control_kind, _n = Counter(o.kind for o in coutcomes).most_common(1)[0]
    if control_kind != majority:
        return False

    def answer(o: FlowOutcome) -> bytes:
        return b"".join(p.payload for p in o.decisive)

    # The same bytes or at least the same length (a counter or nonce may vary).
    return {len(answer(o)) for o in failing} <= {len(answer(o)) for o in coutcomes
                                                 if o.kind == majority}


def failed_trigger(index: ObservationIndex, kind: str, name: str, server: str, platform: str,
                   majority: Outcome, outcomes: list[tuple[TcpFlow, FlowOutcome]],
                   control_ok: bool | None, n_controls: int) -> Finding:
    technique = FAILED_TECHNIQUES[(kind, majority)]
    failing = [(f, o) for f, o in outcomes if o.kind == majority]
    if kind == "tls" and majority is Outcome.PLAINTEXT:
        # Injected text followed by a reset is the reset technique.
        if any(p.tcp_flags & RST for _f, o in failing for p in o.decisive) and not any(
                p.tcp_flags & FIN for _f, o in failing for p in o.decisive):
            technique = Technique.TLS_SNI_RESET
    conf = confidence.base(control_ok)
    if len(failing) >= 2:
        conf += confidence.REPEATED_FAILURE
    if any(o.injected for _f, o in failing):
        conf += confidence.INJECTED_PACKETS
    flow, outcome = failing[0]
    evidence = flow_evidence(flow, outcome)
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
    notes = [f"{len(failing)} of {count_of(len(outcomes), 'attempt')}: {majority}"]
    if control_ok:
        notes.append(f"control ({count_of(n_controls, 'attempt')}, same address) worked")
    elif control_ok is None:
        notes.append("no control for this address in the capture")
    if outcome.injected:
        notes.append("injected: " + "; ".join(outcome.injected[0].reasons))
    if index.seen_at_server(flow):
        notes.append(f"seen at the server: the remote client {flow.client}'s connection was "
                     "torn down by packets forged in its name")
    return Finding(platform, name, technique, confidence.capped(conf), server,
                   evidence=evidence, notes=notes, context=context)


def tcp_location(index: ObservationIndex, finding: Finding, limited: list[TcpFlow],
                 controls: list[TcpFlow]) -> Location | None:
    """Where on the path: the TTL-limited repeats of the trigger, target against control."""
    def point(flow: TcpFlow) -> SeriesPoint:
        assert flow.trigger is not None
        outcome = index.outcome(flow)
        router = next((p.src for p in flow.icmp if p.is_time_exceeded), None)
        if outcome.injected:
            return SeriesPoint(flow.trigger.ttl, Seen.ANOMALY, router, router is not None,
                               outcome.injected[0].packet.ttl)
        if outcome.kind in WORKING:
            return SeriesPoint(flow.trigger.ttl, Seen.RESPONSE, router, True)
        if router is not None:
            return SeriesPoint(flow.trigger.ttl, Seen.TIME_EXCEEDED, router, True)
        return SeriesPoint(flow.trigger.ttl, Seen.SILENCE, None, False)

    kind = "drop" if finding.technique in DROP_TECHNIQUES else "inject"
    climited = [f for f in controls if f.trigger is not None and f.syn is not None
                and f.trigger.ttl < f.syn.ttl]
    return locate([point(f) for f in limited], [point(f) for f in climited], kind)


TRACEROUTE_REPLIES = WORKING | {Outcome.RESET, Outcome.FIN, Outcome.PLAINTEXT}
"""What a TTL-limited trigger can draw besides ICMP time exceeded or nothing."""
TRACEROUTE_SILENT = frozenset({Outcome.SILENCE, Outcome.PENDING})


def traceroute_verdict(index: ObservationIndex, server: str, port: int, kind: str, name: str,
                       platform: str, limited: list[TcpFlow], controls: list[TcpFlow],
                       out: Verdicts) -> None:
    """Runs with no full-TTL attempt (CenTrace's shape: the trigger's TTL rises until
    something other than ICMP time exceeded comes back, then the run stops).

    The target is judged against the control at equal TTL: blocked from the first
    TTL where the target draws a reply (RST, FIN, data) the control at that TTL does
    not, or from where the target goes silent at two or more TTLs at which the
    control got past (an ICMP from a router further on, or an answer).  The
    technique follows from what came back; the hop is that TTL; the router is the
    source of the last ICMP time exceeded before it (CenTrace names it).
    """
    climited = [f for f in controls if f.trigger is not None and f.syn is not None
                and f.trigger.ttl < f.syn.ttl]
    if not climited:
        return  # nothing to compare with at equal TTL
    censor_replies = {Outcome.RESET, Outcome.FIN, Outcome.PLAINTEXT}
    if kind == "tls":
        censor_replies.add(Outcome.HTTP_RESPONSE)
    got_past = TRACEROUTE_REPLIES | {Outcome.TIME_EXCEEDED}
    target_at: dict[int, list[tuple[TcpFlow, FlowOutcome]]] = defaultdict(list)
    control_at: dict[int, set[Outcome]] = defaultdict(set)
    for f in limited:
        assert f.trigger is not None
        target_at[f.trigger.ttl].append((f, index.outcome(f)))
    for f in climited:
        assert f.trigger is not None
        control_at[f.trigger.ttl].add(index.outcome(f).kind)
    paired = [t for t in sorted(target_at) if t in control_at]
    first: int | None = None
    failing: list[tuple[TcpFlow, FlowOutcome]] = []
    for ttl in paired:
        got = target_at[ttl]
        reply = [(f, o) for f, o in got if o.kind in censor_replies
                 or (kind == "http" and o.kind is Outcome.HTTP_RESPONSE and o.injected)]
        if reply and not control_at[ttl] & TRACEROUTE_REPLIES:
            first, failing = ttl, reply
            break
        silent = all(o.kind in TRACEROUTE_SILENT for _f, o in got)
        if silent and control_at[ttl] & got_past:
            # Silent from here on, at two TTLs at least (one lost trigger is not a drop).
            later = [t for t in paired if t >= ttl]
            if len(later) >= 2 and all(
                    all(o.kind in TRACEROUTE_SILENT for _f, o in target_at[t])
                    and control_at[t] & got_past for t in later):
                first, failing = ttl, [(f, FlowOutcome(Outcome.SILENCE)) for f, _o in got]
            break
    if first is None:
        return
    got_kind = Counter(o.kind for _f, o in failing).most_common(1)[0][0]
    finding: Finding | None
    if kind == "http" and got_kind is Outcome.HTTP_RESPONSE:
        finding = http.response_check(index, name, server, platform, failing, [])
    else:
        majority = Outcome.PLAINTEXT if got_kind is Outcome.HTTP_RESPONSE else got_kind
        failing = [(f, FlowOutcome(majority, o.decisive, o.injected, o.flight, o.response))
                   for f, o in failing]
        finding = failed_trigger(index, kind, name, server, platform, majority, failing,
                                 True, len(climited))
    if finding is None or finding.context.get("candidate"):
        return
    finding.notes.insert(0, f"TTL-limited runs only: the target drew {got_kind} at TTL "
                            f"{first}, where the control at the same TTL did not")
    finding.location = tcp_location(index, finding, limited, controls)
    router = None
    for ttl in sorted(set(target_at) | set(control_at)):
        if ttl >= first:
            break
        for f in (*[g for g, _o in target_at.get(ttl, [])],
                  *[c for c in climited if c.trigger is not None and c.trigger.ttl == ttl]):
            router = next((p.src for p in f.icmp if p.is_time_exceeded), router)
    if finding.location is None:
        finding.location = Location(first, router, Mode.UNKNOWN, None,
                                    f"first TTL where the target's run differs from the "
                                    f"control's: {first}")
    else:
        finding.location.hop = finding.location.hop or first
        finding.location.router = finding.location.router or router
    out.findings.append(finding)
    out.checks.append(Check(platform, name, kind, False, True, f"{name} at {server}:{port}"))
