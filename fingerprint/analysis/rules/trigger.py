"""What TLS and HTTP rules share: a trigger (ClientHello or request) sent on an open connection.

A target is an SNI or Host on one address and port; its control is the control
SNI / Host (or none) on the same address and port.  The majority outcome of
the attempts that reached the server decides: a failure (reset, fin, injected
plaintext, silence) is one of the `FAILED_TECHNIQUES`; a working answer goes on
to the family's own checks (`tls.success_checks`, `http.response_check`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from fingerprint.analysis import confidence
from fingerprint.analysis.evidence import flow_evidence
from fingerprint.analysis.findings import Check, Finding, Verdicts, count_of
from fingerprint.analysis.index import ECH_KIND, ObservationIndex
from fingerprint.analysis.locate import Location, Seen, SeriesPoint, locate
from fingerprint.analysis.observe import TcpFlow
from fingerprint.analysis.outcome import FAILED, UNDECIDED, WORKING, WORKING_TLS, FlowOutcome, Outcome
from fingerprint.analysis.rules import http, tls
from fingerprint.capture.packet import FIN, RST
from fingerprint.model import Technique

FAILED_TECHNIQUES = {
    ("tls", Outcome.RESET): Technique.TLS_SNI_RESET, ("tls", Outcome.FIN): Technique.TLS_SNI_FIN,
    ("tls", Outcome.PLAINTEXT): Technique.TLS_SNI_FIN, ("tls", Outcome.SILENCE): Technique.TLS_SNI_DROP,
    ("http", Outcome.RESET): Technique.HTTP_RESET, ("http", Outcome.FIN): Technique.HTTP_FIN,
    ("http", Outcome.PLAINTEXT): Technique.HTTP_FIN, ("http", Outcome.SILENCE): Technique.HTTP_DROP,
}
"""(trigger kind, majority outcome) -> technique, for every outcome in `FAILED`."""
DROP_TECHNIQUES = (Technique.TLS_SNI_DROP, Technique.HTTP_DROP)


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
    for kind, name, flows in targets:
        target_verdict(index, server, port, kind, name, flows, controls_by_kind[kind], out)


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
                   flows: list[TcpFlow], controls: list[TcpFlow], out: Verdicts) -> None:
    platform = index.platform_of_name(name)
    every = flows + controls
    full, limited = reaching(index, flows, every)
    cfull, _climited = reaching(index, controls, every)
    outcomes = [(f, index.outcome(f)) for f in full]
    outcomes = [(f, o) for f, o in outcomes if o.kind not in UNDECIDED]
    if not outcomes:
        return
    coutcomes = [index.outcome(f) for f in cfull]
    coutcomes = [o for o in coutcomes if o.kind not in UNDECIDED]
    working = WORKING_TLS if kind == "tls" else {Outcome.HTTP_RESPONSE}
    control_ok: bool | None = None
    if coutcomes:
        control_ok = sum(o.kind in working for o in coutcomes) * 2 >= len(coutcomes)
    counts = Counter(o.kind for _f, o in outcomes)
    majority, top = counts.most_common(1)[0]
    working_kinds = [(k, n) for k, n in counts.most_common() if k not in FAILED]
    if majority is Outcome.SILENCE and working_kinds and working_kinds[0][1] >= top:
        # Loss can make an attempt silent, never make one work: a tie is not a drop.
        majority = working_kinds[0][0]
    label = f"{name} at {server}:{port}"
    finding: Finding | None = None
    if majority in FAILED:
        finding = failed_trigger(index, kind, name, server, platform, majority, outcomes,
                                 control_ok, len(coutcomes))
    elif kind == "tls" and majority in WORKING_TLS:
        checked = tls.success_checks(index, name, server, platform, outcomes, cfull, coutcomes)
        if isinstance(checked, tls.Untrusted):
            out.checks.append(Check(platform, name, kind, False, False,
                                    f"{label}: {tls.UNTRUSTED_DETAIL}"))
            return
        finding = checked
    elif kind == "http" and majority is Outcome.HTTP_RESPONSE:
        finding = http.response_check(index, name, server, platform, outcomes, coutcomes)
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
        finding.location = tcp_location(index, finding, limited, controls)
    out.findings.append(finding)


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
