"""HTTP rules for a request that got an answer: the blockpage.

Technique: http.blockpage (an injected response, or a redirect to another site
the control Host was not sent to as well; a plain response is a candidate only a
blockpage signature promotes; the server's own short refusal of the Host while the
control Host gets the site is blocking at the endpoint, `endpoint_refusal`).  The
failure techniques (http.reset, http.fin, http.drop) are decided in `trigger`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from fingerprint.analysis import confidence
from fingerprint.analysis.evidence import flow_evidence
from fingerprint.analysis.findings import Finding
from fingerprint.analysis.index import ObservationIndex
from fingerprint.analysis.locate import Location
from fingerprint.analysis.observe import TcpFlow
from fingerprint.analysis.outcome import FlowOutcome, Outcome
from fingerprint.capture.packet import FIN, RST
from fingerprint.model import Mode, Technique
from fingerprint.protocols.http import HttpResponse

REFUSALS = (403, 451)
"""Statuses that refuse a request (forbidden; unavailable for legal reasons)."""
SHORT_RESPONSE = 1024
"""Body bytes at most of a refusal (an error page), against the site the control Host gets."""


def response_check(index: ObservationIndex, host: str, server: str, platform: str,
                   outcomes: list[tuple[TcpFlow, FlowOutcome]],
                   coutcomes: list[FlowOutcome]) -> Finding | None:
    for flow, outcome in outcomes:
        response = outcome.response
        if response is None:
            continue
        location = response.location or ""
        injected = bool(outcome.injected)
        control_status = {o.response.status for o in coutcomes if o.response}
        redirect_away = 300 <= response.status < 400 and redirects_away(host, location) \
            and not within_platform_domain(index, host, location)
        if redirect_away and not injected and urlsplit(location).hostname in {
                urlsplit(o.response.location or "").hostname for o in coutcomes
                if o.response and 300 <= o.response.status < 400}:
            # The server sends every unknown Host to the same other site (a hosting
            # provider's default): the control got that redirect too.
            return None
        conf = confidence.base(bool(coutcomes))
        notes = []
        if injected:
            notes.append("response injected: " + "; ".join(outcome.injected[0].reasons))
        if redirect_away:
            notes.append(f"redirect to {location}")
            conf += confidence.REDIRECT_AWAY
        if control_status:
            notes.append(f"control Host got status {sorted(control_status)}")
        ev = flow_evidence(flow, outcome)
        context: dict[str, Any] = {"trigger.host": host, "http.status": response.status,
                                   "http.body": response.body, "outcome": "blockpage"}
        for hname, value in response.headers.items():
            context[f"http.header.{hname}"] = value
        if not injected and not redirect_away and endpoint_refusal(
                index, host, server, outcome, coutcomes):
            notes.insert(0, f"the server answered this Host with a short {response.status} "
                            "and closed, the control Host with the site: blocked at the "
                            "endpoint (the server or a firewall beside it)")
            finding = Finding(platform, host, Technique.HTTP_BLOCKPAGE,
                              confidence.capped(conf + confidence.ENDPOINT_REFUSAL), server,
                              evidence=ev, notes=notes, context=context)
            finding.location = Location(None, None, Mode.UNKNOWN, None,
                                        "response from the server itself (its TTL, DF, "
                                        "IP IDs) refusing the Host the control got served",
                                        endpoint=True)
            return finding
        if not injected and not redirect_away:
            context["candidate"] = True
            notes.append("response matches a known blockpage")
        return Finding(platform, host, Technique.HTTP_BLOCKPAGE, round(conf, 2), server,
                       evidence=ev, notes=notes, context=context)
    return None


def redirects_away(host: str, location: str) -> bool:
    """A redirect to another site (a blockpage host), not within the requested one."""
    if not location or location.startswith("/"):
        return False
    try:
        target = urlsplit(location).hostname or ""
    except ValueError:
        # A Location that is no URL ("http://[broken"): not shown to lead elsewhere.
        return False
    return target != host and not target.endswith("." + host) and not host.endswith("." + target)


def within_platform_domain(index: ObservationIndex, host: str, location: str) -> bool:
    """A redirect to another name under the same catalog domain of the platform: sites
    send visitors between their own names (www.facebook.com to m.facebook.com for a
    phone; www.google.com to consent.google.com in the EU; www.whatsapp.com to
    web.whatsapp.com), and a blockpage is not served under the blocked platform's domain."""
    try:
        target = urlsplit(location).hostname or ""
    except ValueError:
        return False
    domain = index.catalog.platform_domain(host)
    return domain is not None and bool(target) and index.catalog.platform_domain(target) == domain


def endpoint_refusal(index: ObservationIndex, host: str, server: str, outcome: FlowOutcome,
                     coutcomes: list[FlowOutcome]) -> bool:
    """The server itself (nothing injected) refused this Host with a short error and
    closed, while the control Host got the site (2xx, larger) from it: CenTrace's
    ENDPOINT_FIREWALL.  A refusal is only taken as blocking when it says so (403,
    451) or the name resolves to this very server (so the server is meant to host
    it); a shared server's 404 for a Host it does not serve is its own behaviour."""
    response = outcome.response
    if response is None or response.status < 400:
        return False
    hosted_here = server in index.name_addresses.get(host, set())
    if response.status not in REFUSALS and not hosted_here:
        return False
    size = response_size(response)
    closed = any(p.tcp_flags & (FIN | RST) for p in outcome.decisive)
    if size > SHORT_RESPONSE or not closed:
        return False
    site = [o.response for o in coutcomes if o.kind is Outcome.HTTP_RESPONSE and o.response
            and not o.injected and 200 <= o.response.status < 300]
    return len(site) * 2 > len(coutcomes) and all(response_size(r) > size for r in site)


def response_size(response: HttpResponse) -> int:
    """Body size the server announced (Content-Length), else the body seen."""
    declared = response.headers.get("content-length", "").strip()
    if declared.isdigit() and len(declared) < 10:
        return int(declared)
    return len(response.body)
