"""HTTP rules for a request that got an answer: the blockpage.

Technique: http.blockpage (an injected response, or a redirect to another site
the control Host was not sent to as well; a plain response is a candidate only a
blockpage signature promotes).  The
failure techniques (http.reset, http.fin, http.drop) are decided in `trigger`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from fingerprint.analysis import confidence
from fingerprint.analysis.evidence import flow_evidence
from fingerprint.analysis.findings import Finding
from fingerprint.analysis.index import ObservationIndex
from fingerprint.analysis.observe import TcpFlow
from fingerprint.analysis.outcome import FlowOutcome
from fingerprint.model import Technique


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
        redirect_away = 300 <= response.status < 400 and redirects_away(host, location)
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
    target = urlsplit(location).hostname or ""
    return target != host and not target.endswith("." + host) and not host.endswith("." + target)
