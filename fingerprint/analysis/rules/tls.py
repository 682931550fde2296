"""TLS rules for a ClientHello that got the server's answer: interception and throttling.

Techniques: tls.mitm (a chain that leads to no trusted root while the control SNI
on the same address gets a trusted one; or, address-wide, the control SNI on the
same address intercepted too while a control name validates on a control address
of its own; validity dates judged at the capture's time, an expired certificate is
a note, never interception by itself), tls.sni_throttle (the SNI's transfer
far slower than the control's).  The failure techniques (tls.sni_reset,
tls.sni_fin, tls.sni_drop) are decided in `trigger`.
"""

from __future__ import annotations

from typing import Any

from fingerprint.analysis import confidence
from fingerprint.analysis.evidence import EvidencePacket, flow_evidence, packet_fields
from fingerprint.analysis.findings import Finding
from fingerprint.analysis.index import ObservationIndex, flow_time
from fingerprint.analysis.observe import TcpFlow
from fingerprint.analysis.outcome import FlowOutcome
from fingerprint.model import Technique

THROTTLE_RATIO = 0.1
"""A target's best transfer below this fraction of the control's best is throttled.  Published
throttles are about a hundred times slower (Russia 2021: 130-150 kbps, censoredplanet.org/
throttling); one retransmission timeout (>= 200 ms) on a lost segment only cuts a fast
64 kB transfer to about a quarter, so loss alone rarely reaches a tenth."""


class Untrusted:
    """A TLS target whose certificate cannot be judged: no verdict (`detail` says why)."""

    def __init__(self, detail: str, control_ok: bool | None) -> None:
        self.detail = detail
        self.control_ok = control_ok


UNTRUSTED_DETAIL = ("no trusted certificate for the target nor the control SNI: all TLS "
                    "intercepted, or the trust anchors are missing (--ca-file)")
UNTRUSTED_EVERYWHERE = Untrusted(UNTRUSTED_DETAIL, False)
"""Target and control certificates both untrusted."""
INCOMPLETE_DETAIL = ("the certificate chain sent lacks the certificate that signed the leaf: "
                     "a server's incomplete chain (browsers fetch the missing intermediate) "
                     "and an interceptor's lone certificate look the same")
INCOMPLETE_CHAIN = Untrusted(INCOMPLETE_DETAIL, None)
"""No chain the capture holds reaches a trust anchor, for want of the leaf's issuer."""


def success_checks(index: ObservationIndex, name: str, server: str, platform: str,
                   outcomes: list[tuple[TcpFlow, FlowOutcome]], cfull: list[TcpFlow],
                   coutcomes: list[FlowOutcome]) -> Finding | Untrusted | None:
    # Certificates (visible up to TLS 1.2): interception shows an untrusted chain.
    incomplete = False
    for flow, outcome in outcomes:
        flight = outcome.flight
        if flight is None or not flight.certificates:
            continue
        at = flow_time(flow)
        verdict = index.trust.check(flight.certificates, name, at)
        note_key = (server, flow.server_port, name)
        if verdict.note:
            # Expired at capture time, or validity unknown: said, never tls.mitm by itself.
            index.cert_notes[note_key] = verdict.note
        if verdict.incomplete:
            # The capture lacks the certificate that signed the leaf: neither a chain to
            # a trusted root nor interception can be shown.
            index.cert_notes[note_key] = (
                f"certificate chain without the leaf's issuer ({verdict.issuer}): the "
                "server's incomplete chain or an interceptor's, not judged")
            incomplete = True
            continue
        if verdict.trusted:
            # A chain to a trusted root is not interception, even for another name:
            # that is the server's default certificate for a name it does not host.
            if not verdict.valid_for_name:
                index.cert_notes[note_key] = (
                    f"trusted certificate for another name ({verdict.subject}): the "
                    "server's own, not interception")
            break
        control_leaves = {o.flight.certificates[0] for o in coutcomes
                          if o.flight and o.flight.certificates}
        if flight.certificates[0] in control_leaves:
            # The very certificate the control SNI got from this server: the server's
            # own answer to every name (an interceptor forges one per name).
            index.cert_notes[note_key] = (
                f"untrusted certificate ({verdict.subject}), the same the control SNI got "
                "from this server: the server's own")
            break
        control_trusted = [index.trust.check(o.flight.certificates, None, at).trusted
                           for o in coutcomes if o.flight and o.flight.certificates]
        # A control name whose certificate validates on its own (control) address proves
        # the trust anchors are fine.
        anchors = index.trusted_control_address(server)
        address_wide = bool(control_trusted) and not any(control_trusted)
        if address_wide and anchors is None:
            # The control is intercepted too: nothing SNI-triggered to report, and no
            # genuine certificate either (all TLS intercepted, or trust anchors missing).
            return UNTRUSTED_EVERYWHERE
        conf = confidence.base(bool(control_trusted) or anchors is not None)
        ev = flow_evidence(flow, outcome)
        # The certificate's packets, unless the flow's evidence has them already (the
        # first data packet is its decisive one).
        cited = {id(e.packet) for e in ev}
        ev.extend(EvidencePacket(p, "response", [], packet_fields(p, flow.trigger))
                  for p in flow.server_packets[:2] if p.payload and id(p) not in cited)
        context: dict[str, Any] = {"trigger.sni": name, "tls.cert.issuer": verdict.issuer,
                                   "tls.cert.subject": verdict.subject, "outcome": "mitm",
                                   "tls.mitm.scope": "address" if address_wide else "sni"}
        notes = [f"certificate for {name}: {verdict.reason}; issuer {verdict.issuer}"]
        if verdict.note:
            notes.append(verdict.note)
        if address_wide:
            notes.append(f"every TLS connection to {server} is intercepted: the control SNI "
                         "on the same address got an untrusted certificate too")
        elif control_trusted:
            notes.append("control SNI on the same address got a trusted certificate")
        if anchors is not None:
            context["tls.control_address"] = anchors[0]
            notes.append(f"the control name {anchors[1]} validates on its own address "
                         f"{anchors[0]}: the trust anchors are fine")
        return Finding(platform, name, Technique.TLS_MITM, conf, server, evidence=ev,
                       notes=notes, context=context)
    else:
        if incomplete:
            control_trusted = [index.trust.check(o.flight.certificates, None).trusted
                               for o in coutcomes if o.flight and o.flight.certificates]
            if control_trusted and not any(control_trusted) \
                    and index.trusted_control_address(server) is None:
                return UNTRUSTED_EVERYWHERE  # the control's chain fails as well
            return INCOMPLETE_CHAIN
    # Throughput: a throttled SNI transfers far slower than the control on the same address.
    # Best against best: loss stalls some transfers, a throttle slows every one.
    target_rate = max((transfer_rate(f) for f, _o in outcomes), default=0.0)
    control_rate = max((transfer_rate(f) for f in cfull), default=0.0)
    if target_rate and control_rate and target_rate < THROTTLE_RATIO * control_rate:
        flow, outcome = outcomes[0]
        ev = flow_evidence(flow, outcome)
        return Finding(platform, name, Technique.TLS_SNI_THROTTLE, confidence.WITH_CONTROL, server,
                       evidence=ev,
                       notes=[f"{target_rate / 1000:.1f} kB/s vs {control_rate / 1000:.1f} kB/s "
                              "for the control SNI on the same address"],
                       context={"trigger.sni": name, "outcome": "throttle",
                                "throughput.ratio": target_rate / control_rate})
    return None


def transfer_rate(flow: TcpFlow) -> float:
    if flow.server_data_first_ts is None or flow.server_data_last_ts is None:
        return 0.0
    span = flow.server_data_last_ts - flow.server_data_first_ts
    if flow.server_bytes < 16384:
        return 0.0
    # A fast transfer can finish within a few ms; its rate is then at least bytes / 50 ms
    # (a lower bound, so a fast control still shows how slow a throttled target is).
    return flow.server_bytes / max(span, 0.05)
