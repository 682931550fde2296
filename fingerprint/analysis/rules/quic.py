"""QUIC rules: Initials with a target SNI unanswered, against the control on the same address.

Techniques: quic.sni_drop (the target SNI's Initials unanswered while an
Initial with the control SNI, or with no SNI, to the same address and port was
answered), quic.drop (every Initial to the address unanswered whatever the
SNI, while a TCP handshake to the same address and port worked; if TCP fails
too it is an outage or IP blocking, and the target is inconclusive).

A connection is answered when the server sent an Initial, Handshake, Retry or
Version Negotiation for it (`fingerprint.analysis.quic`).  After a drop, the
residual block of the (client, server, port) three-tuple (the GFW's lasts about
180 s, Zohaib et al., USENIX Security 2025) is stated with the durations the
capture shows; TTL-limited Initials localise the censor as TTL-limited
ClientHellos do.

Captures taken at the server (`quic.capture_end_of_quic`, or `--vantage server`) are
read apart (`server_side_verdicts`): there an Initial arrived, so the path carried
it, and the server's silence says nothing about the path.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from fingerprint.analysis import confidence
from fingerprint.analysis.evidence import EvidencePacket, packet_fields
from fingerprint.analysis.findings import Check, Finding, Verdicts, count_of
from fingerprint.analysis.index import ObservationIndex
from fingerprint.analysis.locate import Location, Seen, SeriesPoint, locate
from fingerprint.analysis.outcome import SILENCE_AFTER_S
from fingerprint.analysis.quic import REPLY_WINDOW_S, QuicConnection, QuicFlow, residual_blocks
from fingerprint.capture.packet import Packet
from fingerprint.catalog import OTHER
from fingerprint.model import Technique
from fingerprint.protocols.quic import QUIC_V1, QUIC_V2

Attempt = tuple[QuicFlow, QuicConnection]


def verdicts(index: ObservationIndex, out: Verdicts) -> None:
    """Every QUIC target (address, port, SNI) against its endpoint's controls."""
    by_endpoint: dict[tuple[str, int], list[Attempt]] = defaultdict(list)
    at_server: dict[tuple[str, int], list[Attempt]] = defaultdict(list)
    flows_at: dict[tuple[str, int], list[QuicFlow]] = defaultdict(list)
    for flow in index.quic_flows:
        flows_at[(flow.server, flow.server_port)].append(flow)
        seen_at_server = index.quic_seen_at_server(flow)
        for conn in flow.connections:
            if conn.initials and conn.client_hello is not None:
                (at_server if seen_at_server else by_endpoint)[(flow.server, flow.server_port)
                                                               ].append((flow, conn))
    for (server, port), attempts in by_endpoint.items():
        endpoint_verdicts(index, server, port, attempts, flows_at[(server, port)], out)
    for (server, port), attempts in at_server.items():
        server_side_verdicts(index, server, port, attempts, out)


def server_side_verdicts(index: ObservationIndex, server: str, port: int,
                         attempts: list[Attempt], out: Verdicts) -> None:
    """Initials captured at the server: what their remote clients' flows went through.

    An Initial in such a capture reached the server, so the path did not drop it, and
    whether the server answered says nothing about the path (its reply's fate is not in
    the capture).  What a censor that drops the flow after the trigger (the GFW's QUIC
    SNI blocking) leaves is a flow whose later datagrams never arrive; but a missing
    datagram is only evidence when the capture shows the client sent it, which the
    datagrams that did arrive cannot show.  So a flow that went on after its target
    Initial worked, and one that did not is inconclusive, never blocked.
    """
    by_name: dict[str, list[Attempt]] = defaultdict(list)
    for flow, conn in attempts:
        if not is_control(index, conn.sni):
            assert conn.sni is not None
            by_name[conn.sni].append((flow, conn))
    for name, tried in sorted(by_name.items()):
        platform = index.platform_of_name(name)
        label = f"{name} at {server}:{port} (QUIC, captured at the server)"
        went_on = sum(flow_went_on(flow, conn) for flow, conn in tried)
        if went_on == len(tried):
            out.checks.append(Check(platform, name, "quic", True, None,
                                    f"{label}: {count_of(len(tried), 'Initial')} arrived and "
                                    "the flow's later datagrams arrived after each"))
            continue
        out.checks.append(Check(
            platform, name, "quic", False, None,
            f"{label}: {count_of(len(tried), 'Initial')} arrived, {len(tried) - went_on} "
            "followed by no later datagram of its flow; the capture cannot show whether the "
            "client sent any, so no drop is claimed"))


def flow_went_on(flow: QuicFlow, conn: QuicConnection) -> bool:
    """Whether a datagram other than the connection's own Initials arrived on the flow
    after them (the flow was not dropped after the trigger)."""
    own = {id(p) for p in conn.initials}
    last = conn.initials[-1].ts
    return any(d.packet.ts >= last and id(d.packet) not in own for d in flow.client_datagrams)


def is_control(index: ObservationIndex, sni: str | None) -> bool:
    return not sni or index.catalog.is_control_name(sni)


def endpoint_verdicts(index: ObservationIndex, server: str, port: int, attempts: list[Attempt],
                      flows: list[QuicFlow], out: Verdicts) -> None:
    """`flows`: every QUIC flow to the endpoint, with Initials or not (residual blocking)."""
    # A TTL-limited Initial is one sent with a lower TTL than the largest seen to the endpoint.
    full_ttl = max(conn.trigger_ttl for _f, conn in attempts)
    # A control Initial sent after a target's on the same flow (the TTL-localisation
    # follow-up) tests the residual block, not the address: only first connections count.
    controls = [a for a in attempts if is_control(index, a[1].sni) and a[1] is a[0].connections[0]
                and a[1].trigger_ttl == full_ttl and not pending(index, a[1])]
    control_ok: bool | None = None
    if controls:
        control_ok = sum(answered(c) for _f, c in controls) * 2 >= len(controls)
    # With and without ECH apart (plain first): the same outer SNI blocked only with ECH
    # (TSPU 2024, net4people/bbs#417) is the extension's doing, not the name's.
    targets: dict[tuple[str, bool], list[Attempt]] = defaultdict(list)
    for flow, conn in attempts:
        if not is_control(index, conn.sni):
            assert conn.sni is not None
            targets[(conn.sni, conn.ech_present)].append((flow, conn))
    split = {key: ([a for a in tried if a[1].trigger_ttl == full_ttl and not pending(index, a[1])],
                   [a for a in tried if a[1].trigger_ttl < full_ttl])
             for key, tried in targets.items()}
    variant_ok = {key: sum(answered(c) for _f, c in full) * 2 >= len(full)
                  for key, (full, _limited) in split.items() if full}
    for (name, ech), (full, limited) in sorted(split.items()):
        target_verdict(index, server, port, name, full, limited, controls, control_ok, flows, out,
                       ech=ech, other_variant_ok=variant_ok.get((name, not ech)))


def quic_spoken(index: ObservationIndex, server: str, name: str) -> str | None:
    """What shows that `server` (serving `name`) answers QUIC; None when nothing does.

    quic.drop rests on it: Initials unanswered whatever the SNI while TCP/443 works are
    also what a server that never listened on UDP/443 gives.  Signs, strongest first:
    an Initial to this address answered anywhere in the capture; the catalog listing
    the platform as serving QUIC (`quic: true`, with its source); another address of
    the same platform answering QUIC in the capture.
    """
    if any(answered(conn) for flow in index.quic_flows if flow.server == server
           for conn in flow.connections):
        return f"an Initial to {server} was answered in this capture"
    platform_ids = [index.platform_of_name(name), index.platform_of_address(server)]
    for pid in platform_ids:
        platform = index.catalog.platforms.get(pid)
        if platform is not None and platform.quic:
            return f"the catalog lists {platform.name} as serving QUIC"
    for flow in index.quic_flows:
        pid = index.platform_of_address(flow.server)
        if flow.server != server and pid != OTHER and pid in platform_ids \
                and any(answered(conn) for conn in flow.connections):
            return f"an Initial to {flow.server}, another address of {pid}, was answered"
    return None


def pending(index: ObservationIndex, conn: QuicConnection) -> bool:
    """Unanswered and sent too shortly before the capture ended for its silence to count."""
    return conn.first_answer is None and index.capture_end - conn.first_ts < SILENCE_AFTER_S


def answered(conn: QuicConnection) -> bool:
    return conn.first_answer is not None


def target_verdict(index: ObservationIndex, server: str, port: int, name: str,
                   full: list[Attempt], limited: list[Attempt], controls: list[Attempt],
                   control_ok: bool | None, flows: list[QuicFlow], out: Verdicts, *,
                   ech: bool = False, other_variant_ok: bool | None = None) -> None:
    """`other_variant_ok`: whether the same SNI with ECH (for plain attempts) or without it
    (for ECH attempts) was mostly answered; None when not tried."""
    platform = index.platform_of_name(name)
    label = f"{name} at {server}:{port} (QUIC)"
    if not full:
        return
    unanswered = [a for a in full if not answered(a[1])]
    # Loss can make an attempt unanswered, never make one answered: a tie is not a drop.
    if len(unanswered) * 2 <= len(full):
        out.checks.append(Check(platform, name, "quic", True, control_ok, label))
        return
    variant = "with ECH" if ech else "without ECH"
    other = "without ECH" if ech else "with ECH"
    if other_variant_ok and len(unanswered) < 2:
        # One unanswered attempt against the same outer SNI answered in the other form: a
        # lost datagram explains it as well as a block does, and a block must be the likelier.
        out.checks.append(Check(platform, name, "quic", True, control_ok,
                                f"{label}: 1 Initial {variant} unanswered, taken as loss: the same "
                                f"SNI {other} answered"))
        return
    technique: Technique | None = None
    notes = [f"{len(unanswered)} of {count_of(len(full), 'Initial')} unanswered"]
    conf = 0.0
    plain_answered = other_variant_ok if ech else None
    if plain_answered is False:
        # The SNI fails without ECH too: the plain attempts' finding stands for both.
        for finding in out.findings:
            if finding.address == server and finding.target == name \
                    and finding.technique is Technique.QUIC_SNI_DROP:
                finding.notes.append(f"with ECH too: {len(unanswered)} of "
                                     f"{count_of(len(full), 'Initial')} unanswered")
        out.checks.append(Check(platform, name, "quic", False, control_ok, label + " with ECH"))
        return
    if plain_answered:
        technique = Technique.TLS_ECH_DROP
        conf = confidence.WITH_CONTROL
        notes.append("the same Initials without ECH (same SNI and address) answered: the ECH "
                     "extension with this outer SNI triggers the drop")
    elif control_ok:
        technique = Technique.QUIC_SNI_DROP
        conf = confidence.WITH_CONTROL
        notes.append(f"control ({count_of(len(controls), 'Initial')} with the control SNI or "
                     "no SNI, same address and port) answered")
    else:
        tcp = index.tcp_reachable(server, 443)
        # Only this case needs the sign; it scans every QUIC flow of the capture.
        spoken = quic_spoken(index, server, name) if control_ok is False and tcp else None
        if spoken is not None:
            technique = Technique.QUIC_DROP
            conf = confidence.QUIC_TCP_CONTROL
            notes.append("Initials with the control SNI unanswered too, while TCP/443 to the "
                         "same address answered: UDP to the address is dropped, whatever the SNI")
            notes.append(f"the server speaks QUIC: {spoken}")
        else:
            why = ("no Initial with a control SNI (or none) to the same address and port"
                   if control_ok is None else "the control SNI's Initials unanswered too")
            tcp_note = {True: "", False: "; TCP/443 unanswered too",
                        None: "; no TCP/443 attempt to tell UDP dropping from an outage"}[tcp]
            untested = control_ok is False and tcp is True
            if untested:
                # Many servers answer TCP/443 and not QUIC: without a sign that this one
                # speaks QUIC, silence on UDP/443 is no evidence of dropping, and says
                # nothing of the platform either (its TCP tests do).
                tcp_note = ("; nothing shows the server speaks QUIC (no Initial to it answered "
                            "in this capture, and the catalog does not list the platform as "
                            "serving QUIC): not judged")
            out.checks.append(Check(platform, name, "quic", False, control_ok,
                                    f"{label}: unanswered, {why}{tcp_note}",
                                    applicable=not untested))
            return
    if len(unanswered) >= 2:
        conf += confidence.REPEATED_FAILURE
    _flow, conn = unanswered[0]
    context: dict[str, Any] = {
        "trigger.sni": name, "outcome": "silence", "quic.version": conn.version,
        "trigger.ech": conn.ech_present, "quic.initials": len(conn.initials),
    }
    # Under quic.drop every datagram to the address goes unanswered, trigger or not:
    # there is no residual block to tell apart.
    residual = residual_note(flows, unanswered) if technique is not Technique.QUIC_DROP else None
    later: list[Packet] = []
    if residual is not None:
        note, seconds, later = residual
        notes.append(note)
        context["quic.residual_s"] = seconds
    if conn.ech_present:
        notes.append(f"the ClientHello carried ECH (outer SNI {name})")
    version = "v2" if conn.version == QUIC_V2 else ("v1" if conn.version == QUIC_V1 else
                                                    f"0x{conn.version:08x}")
    what = f"QUIC {version} Initial, SNI {name}" + (" with ECH" if conn.ech_present else "")
    evidence = [EvidencePacket(p, "trigger", [f"{what}: no server Initial or Handshake"],
                               packet_fields(p, None)) for p in conn.initials[:2]]
    answer = next((c.first_answer for _f, c in controls if c.first_answer is not None), None)
    if answer is not None and technique is Technique.QUIC_SNI_DROP:
        evidence.append(EvidencePacket(answer.packet, "genuine",
                                       [f"server's {answer.kind} to the control SNI"],
                                       packet_fields(answer.packet, None)))
    first = conn.first_ts
    # The first and the last datagram the residual block swallowed.
    picks = later[:1] + (later[-1:] if len(later) > 1 else [])
    evidence += [EvidencePacket(p, "residual", [f"unanswered, {p.ts - first:.0f} s after the "
                                               "trigger (residual block)"], packet_fields(p, None))
                 for p in picks]
    finding = Finding(platform, name, technique, confidence.capped(conf), server,
                      evidence=evidence, notes=notes, context=context)
    if limited:
        finding.location = quic_location(limited, flows)
    out.checks.append(Check(platform, name, "quic", False, control_ok, label))
    out.findings.append(finding)


def residual_note(flows: list[QuicFlow], unanswered: list[Attempt]
                  ) -> tuple[str, float, list[Packet]] | None:
    """The residual block after the first unanswered Initial, when later datagrams show it."""
    triggers = {id(c) for _f, c in unanswered[:1]}
    tuples = {f.three_tuple for f, _c in unanswered[:1]}
    blocks = [b for b in residual_blocks(f for f in flows if f.three_tuple in tuples)
              if id(b.trigger) in triggers]
    if not blocks:
        return None
    block = blocks[0]
    # Initials naming the same SNI are attempts of their own (each could trigger the block):
    # only the other datagrams show a block that outlasts the trigger.
    sni = block.trigger.sni
    attempts = {id(p) for f in flows if f.three_tuple == block.three_tuple
                for c in f.connections if c.sni == sni for p in c.initials}
    later = [p for p in block.unanswered if id(p) not in attempts]
    if not later:
        return None
    blocked_for = later[-1].ts - block.trigger.first_ts
    client, server, port = block.three_tuple
    text = (f"residual block: {count_of(len(later), 'later datagram')} from {client} "
            f"to {server}:{port} (any source port) unanswered for at least "
            f"{blocked_for:.0f} s after the trigger")
    if block.lifted_within is not None:
        text += f"; answered again {block.lifted_within:.0f} s after it"
    return text, round(blocked_for, 1), later


def quic_location(limited: list[Attempt], flows: list[QuicFlow]) -> Location | None:
    """TTL-limited Initials, each followed by full-TTL datagrams on its flow (as gfw.report
    localised the GFW): answered later datagrams mean the Initial did not reach the censor."""
    points: list[SeriesPoint] = []
    for flow, conn in limited:
        router = next((p.src for p in flow.icmp if p.is_time_exceeded
                       and p.ts >= conn.first_ts), None)
        later = flow.client_datagrams_after(conn.first_ts)
        if conn.first_answer is not None or any(
                any(d.packet.ts < s.packet.ts <= d.packet.ts + REPLY_WINDOW_S
                    for s in flow.server_datagrams) for d in later):
            points.append(SeriesPoint(conn.trigger_ttl, Seen.RESPONSE, router, True))
        elif router is not None:
            points.append(SeriesPoint(conn.trigger_ttl, Seen.TIME_EXCEEDED, router, True))
        else:
            points.append(SeriesPoint(conn.trigger_ttl, Seen.SILENCE, None, False))
    return locate(points, [], "drop")
