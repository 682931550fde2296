"""ECH and ESNI rules: is the extension the trigger, or the outer SNI?

ClientHellos carrying encrypted_client_hello (0xfe0d) or ESNI (0xffce) are
grouped apart from the same outer SNI without it (`index.ECH_KIND`).  Per
address and port, each outer SNI tried with ECH is compared:

* with the same ClientHello without the extension (same outer SNI, or for a
  control / absent outer SNI the control ClientHellos without it): ECH failing
  while that passes is `tls.ech_drop` / `tls.ech_reset` (TSPU, November 2024:
  ECH with outer SNI cloudflare-ech.com dropped, net4people/bbs#393; the GFW's
  ESNI drop, 2020);
* when the outer SNI fails without ECH too, the `tls.sni_*` finding of the
  plain attempts says the ClientHello with ECH failed as well;
* when only ECH attempts name the outer SNI, they are judged as any TLS target
  against the ECH attempts with a control or no outer SNI, and a `tls.sni_*`
  finding says the ClientHello carried ECH.

The evidence names the outer SNI and whether ECH was present (`trigger.ech`).
"""

from __future__ import annotations

from collections import Counter

from fingerprint.analysis.findings import Check, Finding, Verdicts, count_of
from fingerprint.analysis.index import ECH_KIND, ObservationIndex
from fingerprint.analysis.observe import TcpFlow
from fingerprint.analysis.outcome import (
    FAILED,
    UNCAPTURED_DETAIL,
    UNDECIDED,
    FlowOutcome,
    Outcome,
)
from fingerprint.analysis.rules import trigger
from fingerprint.capture.packet import RST
from fingerprint.model import Technique

ECH_TECHNIQUES = {Outcome.SILENCE: Technique.TLS_ECH_DROP, Outcome.RESET: Technique.TLS_ECH_RESET}
"""Majority outcome of the ECH attempts -> technique (injected text then a reset is a reset)."""
NO_OUTER_SNI = "(ECH without outer SNI)"
"""The target of an ECH finding whose ClientHellos named no outer SNI."""
NO_SNI_ESNI = "(ESNI without SNI)"
"""The same for encrypted_server_name (ESNI) ClientHellos."""


def verdicts(index: ObservationIndex, server: str, port: int,
             groups: list[tuple[str, str, list[TcpFlow]]], out: Verdicts) -> None:
    ech = [(name, flows) for kind, name, flows in groups if kind == ECH_KIND]
    if not ech:
        return
    plain = {name: flows for kind, name, flows in groups if kind == "tls"}
    plain_controls = [f for name, flows in plain.items() if is_control(index, name) for f in flows]
    ech_controls = [f for name, flows in ech if is_control(index, name) for f in flows]
    every = [f for _k, _n, flows in groups for f in flows]
    # Outer names whose ECH ClientHellos mostly worked: the ECH controls failing on their
    # own (Iran drops ECH without an outer SNI) do not hide an injected block of a name.
    ech_working = frozenset(("tls", n) for n, flows in ech
                            if n and not is_control(index, n)
                            and trigger.mostly_working(index, "tls", flows))
    for name, flows in ech:
        control_name = is_control(index, name)
        same_plain = plain_controls if control_name else plain.get(name, [])
        majority, outcomes = decide(index, flows, every)
        if majority is None:
            continue
        esni = any(f.client_hello is not None and f.client_hello.esni_present for f in flows)
        shown = name or (NO_SNI_ESNI if esni else NO_OUTER_SNI)
        # A control outer SNI (or none) tests the address, as the plain control does: its
        # result belongs to the address's platform, not to an "other" row of its own.
        platform = index.platform_of_address(server) if control_name \
            else index.platform_of_name(name)
        label = f"{shown} at {server}:{port} with ECH"
        plain_majority, plain_outcomes = decide(index, same_plain, every)
        if majority not in FAILED:
            if not control_name:  # a working control is no target of its own
                detail = f"{label}: {UNCAPTURED_DETAIL}" if majority is Outcome.UNCAPTURED \
                    else label
                out.checks.append(Check(platform, shown, "tls", True, plain_ok(plain_majority),
                                        detail))
            continue
        if plain_majority is not None and plain_majority not in FAILED:
            ech_finding(index, server, port, shown, name, platform, majority, outcomes,
                        len(plain_outcomes), label, out)
        elif plain_majority is not None and not control_name:
            # The outer SNI fails without ECH too: the plain attempts' finding says so.
            for finding in out.findings:
                if finding.address == server and finding.target == name \
                        and finding.technique.value.startswith("tls.sni_"):
                    finding.notes.append(f"with ECH too: {len(outcomes)} attempt(s), {majority}")
            out.checks.append(Check(platform, shown, "tls", False, False, label))
        elif not control_name:
            before = len(out.findings)
            trigger.target_verdict(index, server, port, "tls", name, flows, ech_controls, out,
                                   names_working=ech_working)
            for finding in out.findings[before:]:
                finding.notes.append(f"the ClientHello carried ECH (outer SNI {name}); "
                                     "compared with ECH ClientHellos with a control or no outer SNI")
                finding.context["trigger.ech"] = True
        else:
            out.checks.append(Check(platform, shown, "tls", False, None,
                                    f"{label}: {majority}, and no ClientHello without ECH with a "
                                    "control or no SNI to tell the extension from an outage"))


def is_control(index: ObservationIndex, name: str) -> bool:
    return not name or index.catalog.is_control_name(name)


def plain_ok(majority: Outcome | None) -> bool | None:
    return None if majority is None else majority not in FAILED


def decide(index: ObservationIndex, flows: list[TcpFlow], every: list[TcpFlow]
           ) -> tuple[Outcome | None, list[tuple[TcpFlow, FlowOutcome]]]:
    """The majority outcome of the full-TTL attempts (a tie with a working kind works)."""
    full, _limited = trigger.reaching(index, flows, every)
    outcomes = [(f, index.outcome(f)) for f in full]
    outcomes = [(f, o) for f, o in outcomes if o.kind not in UNDECIDED]
    if not outcomes:
        return None, []
    counts = Counter(o.kind for _f, o in outcomes)
    majority, top = counts.most_common(1)[0]
    working = [(k, n) for k, n in counts.most_common() if k not in FAILED]
    if majority in FAILED and working and working[0][1] >= top:
        # Loss can make an attempt fail, never make one work.
        majority = working[0][0]
    return majority, outcomes


def ech_finding(index: ObservationIndex, server: str, port: int, shown: str, name: str,
                platform: str, majority: Outcome, outcomes: list[tuple[TcpFlow, FlowOutcome]],
                n_plain: int, label: str, out: Verdicts) -> None:
    technique = ECH_TECHNIQUES.get(majority)
    failing = [(f, o) for f, o in outcomes if o.kind == majority]
    if len(failing) < 2:
        # The same ClientHello without ECH worked: one failed attempt is too few to blame
        # the extension (a lost connection looks the same).
        out.checks.append(Check(platform, shown, "tls", False, True,
                                f"{label}: 1 attempt with ECH {majority}, the same without ECH "
                                "worked: too few attempts to blame the extension"))
        return
    if majority is Outcome.PLAINTEXT and any(p.tcp_flags & RST for _f, o in failing
                                             for p in o.decisive):
        technique = Technique.TLS_ECH_RESET
    if technique is None:
        out.checks.append(Check(platform, shown, "tls", False, True,
                                f"{label}: {majority} with ECH, answered without it"))
        return
    base = trigger.failed_trigger(index, "tls", name or shown, server, platform, majority,
                                  outcomes, True, n_plain)
    finding = Finding(platform, shown, technique, base.confidence, server,
                      evidence=base.evidence, context=base.context)
    outer = f"outer SNI {name}" if name else "no outer SNI"
    what = "ESNI" if shown == NO_SNI_ESNI else "ECH"
    finding.notes = [base.notes[0],
                     f"the ClientHello carried {what} ({outer}); the same without {what} "
                     f"({count_of(n_plain, 'attempt')}, same address) worked"]
    finding.notes += [n for n in base.notes[1:] if n.startswith("injected")]
    finding.context["trigger.ech"] = True
    finding.context["trigger.esni"] = any(
        f.client_hello is not None and f.client_hello.esni_present for f, _o in failing)
    if not name:
        finding.context.pop("trigger.sni", None)
    out.checks.append(Check(platform, shown, "tls", False, True, label))
    out.findings.append(finding)
