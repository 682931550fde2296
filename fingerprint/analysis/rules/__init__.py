"""The technique rules: one module per protocol family, reading the observation index.

* `dns`: dns.injection, dns.drop, dns.nxdomain, dns.error, dns.redirect
* `trigger`: what TLS and HTTP share (a trigger sent on an open connection: which
  attempts reached the server, the majority outcome, the failed-trigger techniques)
* `tls`: tls.mitm, tls.sni_throttle (and the tls.sni_* failure techniques via `trigger`)
* `http`: http.blockpage (and http.reset/fin/drop via `trigger`)
* `ip`: ip.blackhole, ip.reset, ip.reject
* `ech`: tls.ech_drop, tls.ech_reset (ClientHellos with ECH/ESNI against the same without)
* `quic`: quic.sni_drop, quic.drop (QUIC flows, `fingerprint.analysis.quic`)

`decide` runs them all, then `confirm.judge` (the probe's confirmation round) and
`coverage` (a capture cut short).  Confidence values come from `fingerprint.analysis.confidence`.
"""

from __future__ import annotations

from typing import Any

from fingerprint.analysis import confirm
from fingerprint.analysis.coverage import coverage
from fingerprint.analysis.findings import Verdicts
from fingerprint.analysis.index import ObservationIndex
from fingerprint.analysis.rules import dns, ech, ip, trigger
from fingerprint.analysis.rules import quic as quic_rules


def decide(index: ObservationIndex) -> Verdicts:
    """Every rule over a finished index: findings, candidates and checks."""
    out = Verdicts()
    out.capture_point = index.capture_point()
    dns.verdicts(index, out)
    for (server, port), groups in index.servers():
        ip.verdict(index, server, port, groups, out)
        trigger.verdicts(index, server, port, groups, out)
        ech.verdicts(index, server, port, groups, out)
    quic_rules.verdicts(index, out)
    # After every rule: the confirmation round judges the findings it re-tested, and a
    # capture cut short leaves the planned tests it does not hold failed.
    confirm.judge(index, out)
    coverage(index, out)
    vantage = vantage_context(index)
    for finding in (*out.findings, *out.candidates):
        finding.context.update(vantage)
    return out


def vantage_context(index: ObservationIndex) -> dict[str, Any]:
    """Where the capture was taken, when the probe recorded it (`probe_cc`, `probe_asn`
    in its hints, OONI's names): censors whose packets look alike (a silent drop)
    are told apart by it."""
    context: dict[str, Any] = {}
    cc = index.hints.raw.get("probe_cc")
    # OONI writes ZZ and AS0 when the vantage point is not shared.
    if isinstance(cc, str) and len(cc) == 2 and cc.isalpha() and cc.upper() != "ZZ":
        context["probe.cc"] = cc.upper()
    asn = index.hints.raw.get("probe_asn")
    if isinstance(asn, str) and asn.upper().startswith("AS"):
        asn = asn[2:]
    # isdigit() alone takes '²' and digit strings too long for int(); an ASN is ASCII
    # and fits in 32 bits.
    if isinstance(asn, int | str) and not isinstance(asn, bool) and str(asn).isascii() \
            and str(asn).isdigit() and len(str(asn)) <= 10 and int(asn) > 0:
        context["probe.asn"] = int(asn)
    return context
