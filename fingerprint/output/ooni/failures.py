"""df-007 failure strings for what a capture shows of a query, a connect or a request.

How OONI Probe's engine would have named each outcome: DNS rcodes, ICMP
unreachables and handshake resets as connect() errors, what happened after the
ClientHello or the HTTP request, and answers not yet due when the capture ended.
"""

from __future__ import annotations

from fingerprint.analysis.observe import DnsResponse, TcpFlow
from fingerprint.analysis.outcome import FlowOutcome
from fingerprint.capture.packet import Unreachable
from fingerprint.model import Failure

__all__ = [
    "DNS_SERVER_MISBEHAVING",
    "NO_HTTP_RESPONSE",
    "after_trigger_failure",
    "connect_failure",
    "dns_failure",
    "unanswered_failure",
]

DNS_SERVER_MISBEHAVING = "dns_server_misbehaving"
"""df-007's generic DNS failure, for rcodes that have no failure string of their own."""
_RCODE_FAILURES = {2: Failure.DNS_SERVFAIL, 3: Failure.DNS_NXDOMAIN, 5: Failure.DNS_REFUSED}

NO_HTTP_RESPONSE = "unknown_failure: malformed HTTP response"
"""What OONI's HTTP client reports (as an unknown_failure) when the bytes that came back
are not an HTTP response, e.g. an injected bare text."""


def dns_failure(response: DnsResponse | None, qtype: int) -> str | None:
    if response is None:
        return Failure.GENERIC_TIMEOUT.value
    rcode = response.message.rcode
    if rcode == 0:
        wanted = any(r.rtype == qtype for r in response.message.answers)
        return None if wanted else Failure.DNS_NO_ANSWER.value
    failure = _RCODE_FAILURES.get(rcode)
    return failure.value if failure is not None else DNS_SERVER_MISBEHAVING


def connect_failure(flow: TcpFlow) -> str | None:
    if flow.synack is not None:
        return None
    for pkt in flow.icmp:
        kind = pkt.unreachable_kind
        if kind is None:
            continue
        # As Linux maps ICMP unreachable codes to connect() errors.
        if kind is Unreachable.NETWORK:
            return Failure.NETWORK_UNREACHABLE.value
        if kind in (Unreachable.PROTOCOL, Unreachable.PORT):
            return Failure.CONNECTION_REFUSED.value
        return Failure.HOST_UNREACHABLE.value
    if flow.handshake_rst is not None:
        return Failure.CONNECTION_REFUSED.value
    return Failure.GENERIC_TIMEOUT.value


def unanswered_failure(waited: float, what: str, client_waits: bool) -> str:
    """df-007 for a query, SYN or request that the capture shows no answer to, when its
    answer was not yet due at the capture's last packet (`Analysis.dns_pending`, a
    `pending` flow outcome).

    `generic_timeout_error` is df-007's "some timer has expired": right when the client's
    timer is known to have run out, as a fingerprint probe's did (it waits its whole
    timeout for every answer and says so in the capture's notes; its capture just has no
    packet for the wait).  Otherwise the capture may have stopped before the timer did:
    no failure df-007 names fits, so `unknown_failure` with how long the capture lasted.
    Missing answers that were due are `generic_timeout_error` (see the callers).
    """
    if client_waits:
        return Failure.GENERIC_TIMEOUT.value
    return f"unknown_failure: capture ended {waited:.1f} s after the {what}, before any answer"


def after_trigger_failure(outcome: FlowOutcome, flow: TcpFlow, capture_end: float,
                           tls: bool, client_waits: bool) -> str | None:
    kind = outcome.kind
    if kind in ("tls_ok", "http_response", "served"):
        return None  # served: seen at the server, the request arrived and was answered
    if kind == "reset":
        return Failure.CONNECTION_RESET.value
    if kind == "fin":
        return Failure.EOF_ERROR.value
    if kind == "silence":
        return Failure.GENERIC_TIMEOUT.value
    if kind == "plaintext":
        if any(p.tcp_flags & 0x04 for p in outcome.decisive) and not tls:
            return Failure.CONNECTION_RESET.value
        return Failure.SSL_FAILED_HANDSHAKE.value if tls else None
    if kind in ("alert", "tls_other"):
        return Failure.SSL_FAILED_HANDSHAKE.value
    if kind == "closed_idle":
        # The server's idle close crossed the request: what the client's stack reported.
        rst = any(p.tcp_flags & 0x04 for p in outcome.decisive)
        return (Failure.CONNECTION_RESET if rst else Failure.EOF_ERROR).value
    if kind == "uncaptured":
        # The client received an answer the capture lost: neither a success nor a
        # failure df-007 names can be read from the packets.
        return "unknown_failure: the server's answer is missing from the capture"
    if kind == "pending" and flow.trigger is not None:
        return unanswered_failure(capture_end - flow.trigger.ts, "request", client_waits)
    return None
