"""The probe's confirmation round, judged apart from the sweep (issue 13, item 5).

A sweep opens many connections close together, and a path that loses packets
in bursts can make an open platform's test fail.  After the sweep the probe
tests every finding again, one connection at a time, its control just before
it (`fingerprint.probes.confirm`), and names what it sent in the capture notes
(`CaptureHints.raw["confirmation"]`):

    {"start": T0, "end": T1, "tests": [
        {"platform", "technique", "family", "target", "address", "port",
         "control": {"name"|"address", "dst", "dport", "sport", "proto", "at"},
         "test": {... same keys ...}}]}

Each flow of the round is named by (proto, client port, destination, port);
every flow that starts between `start` and `end` belongs to the round.  Those
flows are kept out of the sweep's index, so they neither add attempts to a
majority nor count as controls: a finding the round does not reproduce is
`inconclusive` with both results, one it reproduces stands, noted as confirmed.

Judged: every finding of these families.  A throttle is reproduced when the round's
target transfer is again below `rules.tls.THROTTLE_RATIO` of the round's control
transfer, measured just before it under the same conditions (the round's TLS
attempts download as the sweep's do): a sweep compares transfers made seconds
apart, while other traffic (QUIC datagrams, other addresses' transfers) filled a
slow hop's queue for some and not others.  An ip.* finding is reproduced only
when the round's control address connected just before the target failed: both
failing is an outage or a block of the client's whole address, no proof about
the target.  A QUIC finding (quic.*, or ECH found on QUIC Initials) is reproduced when
the round's target Initial goes unanswered again beside an answered control (for
quic.drop, whatever the control did); with the control unanswered too, it stands only
when the sweep showed the censor's residual block of the address and port (the GFW
blocks it for about 180 s, so the round cannot escape it), else it is inconclusive.
An ECH finding on TCP is re-tested with the target's ClientHello without, then with, a
GREASE ECH extension.  A DNS finding is reproduced by the round's query of the name: no answer
again for dns.drop, the same response code for dns.nxdomain / dns.error, and for
dns.injection / dns.redirect racing answers again, an answer from the address
that runs no resolver, or an address the finding flagged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fingerprint.analysis.findings import Check, Finding, Verdicts
from fingerprint.analysis.observe import DnsExchange, TcpFlow
from fingerprint.analysis.outcome import FAILED, SILENCE_AFTER_S, WORKING_TLS, Outcome
from fingerprint.analysis.quic import QuicFlow
from fingerprint.model import Technique

if TYPE_CHECKING:
    from fingerprint.analysis.index import ObservationIndex

NOTES_KEY = "confirmation"
MAX_TESTS = 256
"""Tests read from the notes (the probe plans one per finding): bounded on a forged capture."""
JUDGED_FAMILIES = ("dns", "ip", "tls", "http", "quic")

FlowKey = tuple[str, int, str, int]
"""(proto, client port, destination, destination port)"""
Attempt = TcpFlow | DnsExchange | QuicFlow
"""One flow of the round: a connection, a DNS query, or a QUIC flow."""


@dataclass(slots=True)
class ConfirmationTest:
    """One re-tested finding: its control's flows and its own, as the capture holds them."""

    family: str
    target: str
    address: str
    control: list[Attempt] = field(default_factory=list)
    test: list[Attempt] = field(default_factory=list)


def _flow_key(note: Any) -> FlowKey | None:
    if not isinstance(note, dict):
        return None
    try:
        return (str(note["proto"]), int(note["sport"]), str(note["dst"]), int(note["dport"]))
    except (KeyError, TypeError, ValueError):
        return None


def _time(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class ConfirmationRound:
    """The round's tests from the notes, and which observations belong to it."""

    def __init__(self, notes: dict[str, Any]) -> None:
        self.start = _time(notes.get("start"))
        self.end = _time(notes.get("end"))
        self.tests: list[ConfirmationTest] = []
        self._flows: dict[FlowKey, tuple[ConfirmationTest, str]] = {}
        tests = notes.get("tests")
        for item in tests[:MAX_TESTS] if isinstance(tests, list) else []:
            if not isinstance(item, dict):
                continue
            test = ConfirmationTest(str(item.get("family", "")), str(item.get("target", "")),
                                    str(item.get("address", "")))
            self.tests.append(test)
            for role in ("control", "test"):
                key = _flow_key(item.get(role))
                if key is not None:
                    self._flows[key] = (test, role)

    @classmethod
    def from_hints(cls, raw: dict[str, Any]) -> ConfirmationRound | None:
        notes = raw.get(NOTES_KEY)
        return cls(notes) if isinstance(notes, dict) else None

    def claims(self, item: Attempt) -> bool:
        """Whether `item` is one of the round's (kept here when a test names it)."""
        if isinstance(item, DnsExchange):
            key: FlowKey = ("udp", item.client_port, item.resolver, item.query.dport)
            start = item.query.ts
        elif isinstance(item, QuicFlow):
            key = ("udp", item.client_port, item.server, item.server_port)
            start = item.first_ts
        else:
            key = ("tcp", item.client_port, item.server, item.server_port)
            start = item.syn.ts if item.syn is not None else item.first_ts
        named = self._flows.get(key)
        if named is not None:
            test, role = named
            flows = test.control if role == "control" else test.test
            if all(flow is not item for flow in flows):
                flows.append(item)
            return True
        # Unnamed flows inside the round's window are its too (a retry on a new port).
        return self.start is not None and self.end is not None and self.start <= start <= self.end


def judge(index: ObservationIndex, out: Verdicts) -> None:
    """Findings the round re-tested: kept when reproduced, else inconclusive with both results."""
    round_ = index.confirmation_round()
    if round_ is None or not round_.tests:
        return
    kept: list[Finding] = []
    for finding in out.findings:
        family = finding.technique.value.split(".", 1)[0]
        tests = [t for t in round_.tests if t.family == family and t.target == finding.target
                 and t.address == (finding.address or finding.target)]
        targets = [f for t in tests for f in t.test]
        if family not in JUDGED_FAMILIES or not targets:
            kept.append(finding)
            continue
        controls = [f for t in tests for f in t.control]
        target_results = [result_of(index, f) for f in targets]
        control_results = [result_of(index, f) for f in controls]
        both = (f"sweep: {finding.technique.value} ({finding.notes[0] if finding.notes else ''}); "
                f"confirmation round: target {', '.join(target_results)}, control "
                f"{', '.join(control_results) or 'not run'}")
        quic_round = all(isinstance(f, QuicFlow) for f in targets)
        control_worked = any(works(index, f) for f in controls)
        if finding.technique == Technique.TLS_SNI_THROTTLE:
            reproduced = throttle_reproduces(targets, controls)
        elif family == "ip" and controls and not control_worked:
            reproduced = False
        elif quic_round and finding.technique != Technique.QUIC_DROP and not control_worked:
            # Silence is all a QUIC drop leaves, and an outage leaves it too: the target's
            # silence counts only beside an answered control (quic.drop expects both silent).
            reproduced = False
            if any(reproduces(index, finding, f) for f in targets) and controls \
                    and "quic.residual_s" in finding.context:
                finding.notes.append(
                    "the confirmation round met the residual block the sweep showed: target "
                    f"and control both unanswered on the blocked address and port ({both})")
                kept.append(finding)
                continue
        else:
            reproduced = any(reproduces(index, finding, f) for f in targets)
        if reproduced:
            finding.notes.append(f"confirmed by the confirmation round ({both})")
            kept.append(finding)
            continue
        sweep_control_ok = any(c.control_ok for c in out.checks
                               if (c.platform, c.target, c.kind) == (finding.platform, finding.target,
                                                                     family))
        if sweep_control_ok and residual_block_met(index, finding, targets, controls):
            finding.notes.append("the confirmation round met the censor's residual blocking: "
                                 "target and control both reset at the SYN, on an address whose "
                                 f"control worked before the trigger ({both})")
            kept.append(finding)
            continue
        for check in out.checks:
            if (check.platform, check.target) == (finding.platform, finding.target):
                check.ok = False
        control_ok = None if not controls else control_worked
        out.checks.append(Check(finding.platform, finding.target, family, False, control_ok,
                                f"not reproduced: {both}"))
    out.findings = kept


def residual_block_met(index: ObservationIndex, finding: Finding, targets: list[Any],
                       controls: list[Any]) -> bool:
    """Whether the round's attempts all met a residual block rather than contradicting the
    finding: a TLS/HTTP trigger finding whose sweep control worked (checked by the caller),
    and in the round the
    target and its control alike reset at the SYN.  An outage drops packets; RSTs to the
    SYNs of a control that connected before the trigger are a censor punishing the client
    (the GFW resets the 3-tuple for about 90 s, simpler censors the client's address)."""
    if finding.technique.value.split(".", 1)[0] not in ("tls", "http") or not controls:
        return False
    return all(isinstance(f, TcpFlow) and f.synack is None
               and index.outcome(f).kind is Outcome.CONNECT_RESET for f in (*targets, *controls))


def throttle_reproduces(targets: list[Any], controls: list[Any]) -> bool:
    """Whether the round's target transfer was again far slower than its control's,
    best against best as the sweep's rule compares them; no measured transfer on either
    side reproduces nothing."""
    # Deferred: the rules import the index, which imports this module.
    from fingerprint.analysis.rules.tls import THROTTLE_RATIO, transfer_rate

    target = max((transfer_rate(f) for f in targets if isinstance(f, TcpFlow)), default=0.0)
    control = max((transfer_rate(f) for f in controls if isinstance(f, TcpFlow)), default=0.0)
    return bool(target and control and target < THROTTLE_RATIO * control)


def quic_answered(flow: QuicFlow) -> bool:
    # Deferred: the rules import the index, which imports this module.
    from fingerprint.analysis.rules.quic import answered

    return any(answered(conn) for conn in flow.connections)


def quic_pending(index: ObservationIndex, flow: QuicFlow) -> bool:
    """Unanswered and begun too shortly before the capture ended for silence to count."""
    return not quic_answered(flow) and index.capture_end - flow.first_ts < SILENCE_AFTER_S


def result_of(index: ObservationIndex, item: Attempt) -> str:
    """What one attempt of the round came to, for the check's detail."""
    if isinstance(item, QuicFlow):
        if quic_answered(item):
            return "QUIC answered"
        return "QUIC not yet due" if quic_pending(index, item) else "QUIC unanswered"
    if isinstance(item, TcpFlow):
        from fingerprint.analysis.rules.tls import transfer_rate

        rate = transfer_rate(item)
        kind = str(index.outcome(item).kind)
        return f"{kind} at {rate / 1000:.1f} kB/s" if rate else kind
    if not item.responses:
        return "no answer"
    return "/".join(f"{r.message.rcode_name} {','.join(r.message.addresses) or '-'}"
                    for r in item.responses[:3])


def works(index: ObservationIndex, item: Attempt) -> bool:
    if isinstance(item, DnsExchange):
        return bool(item.responses)
    if isinstance(item, QuicFlow):
        return quic_answered(item)
    working = WORKING_TLS | {Outcome.HTTP_RESPONSE, Outcome.NO_TRIGGER}
    return index.outcome(item).kind in working


def reproduces(index: ObservationIndex, finding: Finding, item: Attempt) -> bool:
    """Whether a confirmation attempt of the target failed again the way the finding says:
    no connection for ip.*, an untrusted certificate for tls.mitm, a response with the
    same status for http.blockpage, silence due for a QUIC Initial, a failed outcome
    (reset, FIN, drop) otherwise."""
    if isinstance(item, DnsExchange):
        return dns_reproduces(index, finding, item)
    if isinstance(item, QuicFlow):
        return not quic_answered(item) and not quic_pending(index, item)
    outcome = index.outcome(item)
    technique = finding.technique
    if technique.value.startswith("ip."):
        return item.synack is None and outcome.kind.is_connect_failure
    if technique.value.startswith("dns."):
        return False
    if technique == Technique.TLS_MITM:
        flight = outcome.flight
        return bool(flight is not None and flight.certificates and not index.trust.check(
            flight.certificates, finding.target).trusted)
    if technique == Technique.HTTP_BLOCKPAGE:
        status = finding.context.get("http.status")
        return outcome.response is not None and outcome.response.status == status
    return outcome.kind in FAILED


def dns_reproduces(index: ObservationIndex, finding: Finding, ex: DnsExchange) -> bool:
    technique = finding.technique
    if technique == Technique.DNS_DROP:
        # A query whose answer was not due yet when the capture ended proves nothing.
        return not ex.responses and not index.dns_pending(ex)
    if not ex.responses:
        return False
    if technique in (Technique.DNS_NXDOMAIN, Technique.DNS_ERROR):
        rcode = finding.context.get("dns.rcode")
        return any(r.message.rcode_name == rcode and (rcode != "NOERROR" or not r.message.addresses)
                   for r in ex.responses)
    if finding.context.get("dns.no_resolver"):
        return True
    answer_sets = {(r.message.rcode, frozenset(r.message.addresses)) for r in ex.responses}
    flagged = {a for e in finding.evidence if e.role != "genuine"
               for a in e.fields.get("dns.answer", []) or []}
    flagged |= set(finding.context.get("dns.answer", []) or [])
    return len(answer_sets) > 1 or any(set(r.message.addresses) & flagged for r in ex.responses)
