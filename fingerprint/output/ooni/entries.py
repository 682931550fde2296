"""The per-attempt entries of a measurement's `test_keys`.

df-002 `queries` (the capture's exchanges and the control resolver's answers from
the capture's notes), df-005 `tcp_connect`, df-006 `tls_handshakes` and, for QUIC,
`quic_handshakes` (df-006 with network "udp"), df-001 `requests` and df-008
`network_events`, each with the packet facts (`x_packet`) that tell an injected
answer from a genuine one.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any

from fingerprint.analysis.addresses import is_ip_address
from fingerprint.analysis.findings import Verdicts
from fingerprint.analysis.index import ObservationIndex
from fingerprint.analysis.observe import DnsExchange, DnsResponse, TcpFlow
from fingerprint.analysis.outcome import FlowOutcome
from fingerprint.analysis.quic import QuicConnection, QuicFlow
from fingerprint.capture.packet import Packet
from fingerprint.catalog import Catalog
from fingerprint.model import Failure
from fingerprint.output.ooni.failures import (
    NO_HTTP_RESPONSE,
    after_trigger_failure,
    connect_failure,
    dns_failure,
    unanswered_failure,
)
from fingerprint.protocols.dns import TYPE_A, TYPE_AAAA, TYPE_CNAME, TYPE_NAMES
from fingerprint.protocols.http import HttpRequest

__all__ = ["QUIC_WAIT_S", "EntryBuilder", "quic_attempts_for", "quic_end", "quic_entry"]

_TLS_VERSIONS = {0x0300: "SSLv3", 0x0301: "TLSv1", 0x0302: "TLSv1.1", 0x0303: "TLSv1.2",
                 0x0304: "TLSv1.3"}
# IANA TLS cipher suite registry names for the suites servers commonly pick.
_CIPHER_SUITES = {
    0x1301: "TLS_AES_128_GCM_SHA256", 0x1302: "TLS_AES_256_GCM_SHA384",
    0x1303: "TLS_CHACHA20_POLY1305_SHA256",
    0xC02B: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    0xC02C: "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    0xC02F: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    0xC030: "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    0xCCA8: "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    0xCCA9: "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    0xC013: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", 0xC014: "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    0x009C: "TLS_RSA_WITH_AES_128_GCM_SHA256", 0x009D: "TLS_RSA_WITH_AES_256_GCM_SHA384",
    0x002F: "TLS_RSA_WITH_AES_128_CBC_SHA", 0x0035: "TLS_RSA_WITH_AES_256_CBC_SHA",
}


def _endpoint(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _rel(ts: float, start: float) -> float:
    return round(max(0.0, ts - start), 6)


def _maybe_binary(data: bytes) -> str | dict[str, str]:
    """df-001 MaybeBinaryData: the text when it is UTF-8, else {"format": "base64", "data"}."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return {"data": _b64(data), "format": "base64"}


def _http_headers(pairs: list[tuple[bytes, bytes]]
                  ) -> tuple[list[list[str | dict[str, str]]], dict[str, str | dict[str, str]]]:
    """df-001 `headers_list` (every header, in order) and `headers` (first value per name)."""
    headers_list: list[list[str | dict[str, str]]] = []
    headers: dict[str, str | dict[str, str]] = {}
    seen: set[bytes] = set()
    for name, value in pairs:
        key = _maybe_binary(name)
        headers_list.append([key, _maybe_binary(value)])
        if name.lower() not in seen and isinstance(key, str):
            seen.add(name.lower())
            headers[key] = _maybe_binary(value)
    return headers_list, headers


def _request_url(request: HttpRequest, flow: TcpFlow) -> str:
    if request.target.startswith(("http://", "https://")):
        return request.target  # absolute-form (proxy style) already names the origin
    host = next((v.decode("latin-1") for n, v in request.headers_list if n.lower() == b"host"),
                "")
    if not host:
        host = _endpoint(flow.server, flow.server_port) if flow.server_port != 80 else (
            f"[{flow.server}]" if ":" in flow.server else flow.server)
    return f"http://{host}{request.target}"


def _status_line(data: bytes) -> str:
    """The response's first line as sent ("HTTP/1.1 403 Forbidden"), bounded."""
    line = data[:256].split(b"\n", 1)[0].rstrip(b"\r")
    return line.decode("latin-1") if line.startswith(b"HTTP/") else ""

def _answers(response: DnsResponse) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for record in response.message.answers:
        answer: dict[str, Any] = {"answer_type": record.type_name, "ttl": record.ttl}
        if record.rtype == TYPE_A:
            answer["ipv4"] = record.value
        elif record.rtype == TYPE_AAAA:
            answer["ipv6"] = record.value
        elif record.rtype == TYPE_CNAME:
            answer["hostname"] = record.value
        out.append(answer)
    return out


def _control_resolver(label: str) -> tuple[str, str]:
    """(df-002 `engine`, `resolver_address`) of a control resolver as the probe notes it:
    `tls://IP:PORT` (DoT), an https URL (DoH, whose address OONI writes as the URL),
    `IP:PORT` (plain UDP); "unknown" when the notes do not say."""
    if label.startswith("tls://"):
        return "dot", label.removeprefix("tls://")
    if label.startswith("https://"):
        return "doh", label
    return ("udp", label) if label else ("unknown", "")


def _outcome_time(flow: TcpFlow, outcome: FlowOutcome, capture_end: float) -> float:
    if outcome.decisive:
        return outcome.decisive[0].ts
    if flow.server_data_first_ts is not None:
        return flow.server_data_first_ts
    return flow.client_closed_ts or (capture_end if outcome.kind == "pending" else flow.last_ts)


class EntryBuilder:
    """Turns one target's observations into df-002/005/006/008 entries."""

    def __init__(self, analysis: ObservationIndex, verdicts: Verdicts, catalog: Catalog) -> None:
        self.analysis = analysis
        self.catalog = catalog
        self.capture_end = analysis.capture_end
        probe_notes = analysis.hints.raw.get("probe")
        self.client_waits = isinstance(probe_notes, dict) and isinstance(
            probe_notes.get("timeout"), int | float)
        """The capture's notes say a fingerprint probe made it, waiting out its timeout."""

    # -- entries ---------------------------------------------------------------------
    def query_entry(self, ex: DnsExchange, response: DnsResponse | None, start: float, txn: int,
                    role: str) -> dict[str, Any]:
        end = response.packet.ts if response is not None else ex.last_ts
        entry: dict[str, Any] = {
            "answers": _answers(response) if response is not None else [],
            "engine": "udp",
            "failure": dns_failure(response, ex.qtype) if response is not None
            or not self.analysis.dns_pending(ex) else
            unanswered_failure(self.capture_end - ex.query.ts, "query", self.client_waits),
            "hostname": ex.qname,
            "query_type": TYPE_NAMES.get(ex.qtype, str(ex.qtype)),
        }
        if response is not None:
            entry["raw_response"] = _b64(response.packet.payload)
            entry["rcode"] = response.message.rcode
        entry.update({
            "resolver_address": _endpoint(ex.resolver, ex.query.dport),
            # df-002: deprecated, set to null by OONI's own engine.
            "resolver_hostname": None,
            "resolver_port": None,
            "t0": _rel(ex.query.ts, start),
            "t": _rel(end, start),
            "tags": [role],
            "transaction_id": txn,
            "x_role": role,
            "x_dns_id": ex.txid,
            "x_queries_sent": ex.queries,
        })
        if response is not None:
            entry["x_packet"] = _packet_facts(response.packet)
            entry["x_delay_ms"] = round(response.delay * 1000.0, 3)
        return entry

    def control_lookup_entries(self, names: Iterable[str], start: float, txn: int
                               ) -> list[dict[str, Any]]:
        """df-002 entries for the control resolver's answers (DoT or DoH, out of the
        censor's sight) to `names`.

        A probe asks the control resolver before it starts recording: the lookups are
        not in the capture (and would be encrypted there), their answers travel in the
        capture's notes (`CaptureHints.control_answers`, with the resolver under
        `probe.control_resolver`).  Live and replayed runs read them from there alike.
        The lookup came before the measurement's first packet: `t0` and `t` are 0.
        """
        answers = self.analysis.hints.control_answers
        probe_notes = self.analysis.hints.raw.get("probe")
        label = probe_notes.get("control_resolver") if isinstance(probe_notes, dict) else None
        engine, address = _control_resolver(label if isinstance(label, str) else "")
        out: list[dict[str, Any]] = []
        for name in dict.fromkeys(n.lower() for n in names):
            if name not in answers:
                continue  # the control lookup failed: the probe reported it, nothing to show
            txn += 1
            records = [{"answer_type": "AAAA" if ":" in a else "A", "ttl": None,
                        "ipv6" if ":" in a else "ipv4": a} for a in answers[name]]
            out.append({
                "answers": records, "engine": engine,
                "failure": None if records else Failure.DNS_NO_ANSWER.value,
                "hostname": name, "query_type": "A",
                "resolver_address": address, "resolver_hostname": None, "resolver_port": None,
                "t0": 0.0, "t": 0.0, "tags": ["control"], "transaction_id": txn,
                "x_role": "control", "x_from": "capture notes",
            })
        return out

    def tcp_connect_entry(self, flow: TcpFlow, start: float, txn: int, role: str
                          ) -> dict[str, Any] | None:
        if flow.syn is None and flow.synack is None:
            return None  # the capture starts mid-flow: the connect was not seen
        failure = connect_failure(flow)
        first = flow.syn.ts if flow.syn is not None else flow.first_ts
        if failure == Failure.GENERIC_TIMEOUT.value \
                and self.analysis.outcome(flow).kind == "pending":
            failure = unanswered_failure(self.capture_end - first, "SYN", self.client_waits)
        if flow.synack is not None:
            end = flow.synack.ts
        elif flow.icmp:
            end = flow.icmp[0].ts
        elif flow.handshake_rst is not None:
            end = flow.handshake_rst.ts
        else:
            end = flow.last_ts
        entry: dict[str, Any] = {
            "ip": flow.server,
            "port": flow.server_port,
            # df-005: new nettests do not write `status.blocked`; the verdict is in x_fingerprint.
            "status": {"failure": failure, "success": failure is None},
            "t0": _rel(first, start),
            "t": _rel(end, start),
            "tags": [role],
            "transaction_id": txn,
            "x_role": role,
            "x_syn_count": flow.syn_count,
        }
        if flow.synack is not None:
            entry["x_packet"] = _packet_facts(flow.synack)
        elif flow.handshake_rst is not None:
            entry["x_packet"] = _packet_facts(flow.handshake_rst)
        elif flow.icmp:
            entry["x_packet"] = _packet_facts(flow.icmp[0])
        return entry

    def tls_entry(self, flow: TcpFlow, outcome: FlowOutcome, start: float, txn: int, role: str
                  ) -> dict[str, Any]:
        assert flow.trigger is not None
        flight = outcome.flight
        failure = after_trigger_failure(outcome, flow, self.capture_end, tls=True,
                                         client_waits=self.client_waits)
        certificates = list(flight.certificates) if flight is not None else []
        if failure is None and certificates and flow.client_hello is not None:
            verdict = self.analysis.trust.check(certificates, flow.client_hello.sni)
            if not verdict.trusted:
                failure = Failure.SSL_UNKNOWN_AUTHORITY.value
            elif not verdict.valid_for_name:
                failure = Failure.SSL_INVALID_HOSTNAME.value
        hello = flight is not None and flight.server_hello
        suite = alpn = ""
        if hello and flight is not None and flight.cipher_suite is not None:
            suite = _CIPHER_SUITES.get(flight.cipher_suite, f"0x{flight.cipher_suite:04x}")
            alpn = flight.alpn
        version = flight.version if flight is not None and flight.version else None
        return {
            "network": "tcp",
            "address": _endpoint(flow.server, flow.server_port),
            "cipher_suite": suite,
            "failure": failure,
            "negotiated_protocol": alpn,
            "no_tls_verify": False,
            "peer_certificates": [{"data": _b64(c), "format": "base64"} for c in certificates],
            "server_name": flow.trigger_name or "",
            "t0": _rel(flow.trigger.ts, start),
            "t": _rel(_outcome_time(flow, outcome, self.capture_end), start),
            "tags": [role],
            "tls_version": _TLS_VERSIONS.get(version, "") if version else "",
            "transaction_id": txn,
            "x_outcome": outcome.kind,
        }

    def request_entry(self, flow: TcpFlow, outcome: FlowOutcome, start: float, txn: int,
                      role: str) -> dict[str, Any]:
        """df-001 transaction for a plain-HTTP flow: the request as sent, what came back."""
        request = flow.http_request
        assert request is not None and flow.trigger is not None
        failure = after_trigger_failure(outcome, flow, self.capture_end, tls=False,
                                         client_waits=self.client_waits)
        response = flow.response
        if failure is None and response is None:
            failure = NO_HTTP_RESPONSE
        request_list, request_map = _http_headers(request.headers_list)
        http_response: dict[str, Any] = {
            "body": "", "body_is_truncated": False, "code": 0, "headers_list": [],
            "headers": {}}
        if response is not None:
            response_list, response_map = _http_headers(response.headers_list)
            http_response = {
                "body": _maybe_binary(response.body),
                "body_is_truncated": response.body_is_truncated,
                "code": response.status,
                "headers_list": response_list,
                "headers": response_map,
                "x_body_length": len(response.body),
            }
            status_line = _status_line(flow.server_data)
            if status_line:
                http_response["x_status_line"] = status_line
        elif flow.server_data:
            # Not HTTP (e.g. an injected bare text): keep the bytes, they are the evidence.
            http_response["x_server_data"] = _maybe_binary(flow.server_data)
        return {
            "network": "tcp",
            "address": _endpoint(flow.server, flow.server_port),
            "failure": failure,
            "request": {
                "body": _maybe_binary(request.body),
                "body_is_truncated": request.body_is_truncated,
                "headers_list": request_list,
                "headers": request_map,
                "method": request.method,
                "tor": {"exit_ip": None, "exit_name": None, "is_tor": False},
                "x_transport": "tcp",
                "url": _request_url(request, flow),
            },
            "response": http_response,
            "t0": _rel(flow.trigger.ts, start),
            "t": _rel(_outcome_time(flow, outcome, self.capture_end), start),
            "tags": [role],
            "transaction_id": txn,
            "x_outcome": outcome.kind,
        }

    def network_events(self, flow: TcpFlow, outcome: FlowOutcome | None, start: float, txn: int,
                       connect_failure: str | None) -> list[dict[str, Any]]:
        address = _endpoint(flow.server, flow.server_port)
        first = flow.syn.ts if flow.syn is not None else flow.first_ts
        events: list[dict[str, Any]] = [{
            "address": address, "failure": connect_failure, "operation": "connect",
            "proto": "tcp", "t0": _rel(first, start),
            "t": _rel(flow.synack.ts if flow.synack is not None else flow.last_ts, start),
            "transaction_id": txn}]
        if flow.trigger is None or outcome is None:
            return events
        events.append({"address": address, "failure": None,
                       "num_bytes": flow.trigger_len, "operation": "write", "proto": "tcp",
                       "t0": _rel(flow.trigger.ts, start), "t": _rel(flow.trigger.ts, start),
                       "transaction_id": txn})
        read_failure = after_trigger_failure(outcome, flow, self.capture_end,
                                              tls=flow.trigger_kind == "tls",
                                              client_waits=self.client_waits)
        if flow.trigger_kind == "tls" and read_failure == Failure.SSL_FAILED_HANDSHAKE.value:
            read_failure = None  # bytes were read; the TLS layer is what failed
        events.append({"address": address, "failure": read_failure,
                       "num_bytes": flow.server_bytes, "operation": "read", "proto": "tcp",
                       "t0": _rel(flow.trigger.ts, start),
                       "t": _rel(_outcome_time(flow, outcome, self.capture_end), start),
                       "transaction_id": txn})
        return events


def _packet_facts(pkt: Packet) -> dict[str, Any]:
    """The IP facts that tell an injected packet from a genuine one (and where to find it)."""
    facts: dict[str, Any] = {"frame": pkt.frame, "ip_ttl": pkt.ttl}
    if pkt.ip_id is not None:
        facts["ip_id"] = pkt.ip_id
        facts["df"] = pkt.df
    if pkt.is_tcp:
        facts["tcp_flags"] = pkt.flags
    if pkt.capture:
        facts["capture"] = pkt.capture
    return facts


QUIC_WAIT_S = 3.0
"""How long after its last Initial an unanswered QUIC attempt is shown to have waited
(the analysis's reply window, `fingerprint.analysis.quic.REPLY_WINDOW_S`)."""


def quic_attempts_for(index: ObservationIndex, target: str
                      ) -> list[tuple[QuicFlow, QuicConnection, str]]:
    """The QUIC connections testing `target` (an SNI, or an address) and their controls
    (control SNI or none, same address and port), in time order."""
    if is_ip_address(target):
        mine = [(f, c) for f in index.quic_flows if f.server == target for c in f.connections]
        return sorted(((f, c, "target") for f, c in mine), key=lambda item: item[1].first_ts)
    mine = [(f, c) for f in index.quic_flows for c in f.connections if c.sni == target]
    endpoints = {(f.server, f.server_port) for f, _c in mine}
    controls = [(f, c) for f in index.quic_flows if (f.server, f.server_port) in endpoints
                for c in f.connections
                if c.client_hello is not None and (not c.sni or index.catalog.is_control_name(c.sni))]
    out = [(f, c, "target") for f, c in mine] + [(f, c, "control") for f, c in controls]
    return sorted((item for item in out if item[1].initials), key=lambda item: item[1].first_ts)


def quic_end(flow: QuicFlow, conn: QuicConnection) -> float:
    if conn.first_answer is not None:
        return conn.first_answer.packet.ts
    return conn.initials[-1].ts + QUIC_WAIT_S


def quic_entry(builder: EntryBuilder, flow: QuicFlow, conn: QuicConnection, start: float, txn: int,
               role: str) -> dict[str, Any]:
    """A df-006 handshake for one QUIC connection (network "udp", as OONI records QUIC).

    The capture shows whether the server answered the Initials, not the handshake's end:
    an answered attempt has no failure; an unanswered one the timeout the client's timer
    gave (or the capture's end when the answer was not due yet)."""
    failure: str | None = None
    if conn.first_answer is None:
        waited = builder.capture_end - conn.initials[-1].ts
        failure = (Failure.GENERIC_TIMEOUT.value if waited >= QUIC_WAIT_S
                   else unanswered_failure(waited, "Initial", builder.client_waits))
    hello = conn.client_hello
    return {
        "network": "udp",
        "address": _endpoint(flow.server, flow.server_port),
        "cipher_suite": "",
        "failure": failure,
        "negotiated_protocol": "",
        "no_tls_verify": False,
        "peer_certificates": [],
        "server_name": conn.sni or "",
        "t0": _rel(conn.first_ts, start),
        "t": _rel(quic_end(flow, conn), start),
        "tags": [role],
        "tls_version": "",
        "transaction_id": txn,
        "x_outcome": "answered" if conn.first_answer is not None else "silence",
        "x_quic_version": f"0x{conn.version:08x}",
        "x_initials": len(conn.initials),
        "x_ech": bool(hello is not None and (hello.ech_present or hello.esni_present)),
    }
