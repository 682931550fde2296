"""Analysis results as OONI measurements (ooni/spec data-formats).

One measurement per (platform, target): a target is one name tested (asked of a
resolver, sent as SNI or Host) or one address tested for IP blocking.  That is
the granularity OONI tools expect: OONI's own experiments emit one measurement
per `input` (a URL, a domain or an address), and its pipeline, Explorer and
analysis scripts group, count and compare measurements by `input`.  A
measurement per platform would have no single input; one per packet flow would
split a verdict that rests on a target *and* its control.  The platform's
overall verdict rides along under `x_fingerprint` in each of its measurements.

Envelope: df-000 / data-formats README (`measurement_start_time` and
`test_start_time` as "YYYY-MM-DD hh:mm:ss" UTC, `probe_ip` "127.0.0.1" unless
the user shares it; `probe_cc` / `probe_asn` are the user's, else the ones the
capture's notes record; `report_id` is the run id in OONI's form, with country
and network; `annotations` carry df-000's architecture, engine_name,
engine_version and platform; `extensions` names the templates used, as OONI
Probe does).  `test_keys` use the template shapes where
one exists: df-001 `agent` and `requests` (plain-HTTP exchanges as observed:
"agent", since no redirect is followed), df-002 `queries`, df-005
`tcp_connect`, df-006 `tls_handshakes`, df-008 `network_events`; failure
strings are df-007's.  Key names and types follow ooni/spec and OONI Probe's
archival structures (internal/model/archival.go in ooni/probe-cli).  Everything of this tool's own
sits under keys starting with `x_`, which the data-formats README permits
anywhere.  The test keys are the set of OONI's `urlgetter` model, so OONI's
Python reader loads them with that model (README, "OONI measurements").
Times `t0`/`t` are seconds since `measurement_start_time`.

The probe's own address never appears unless asked: in evidence packets and
texts it is replaced by `probe_ip`.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import platform as host_platform
import re
import secrets
import string
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fingerprint import __version__
from fingerprint.analysis.addresses import is_ip_address
from fingerprint.analysis.coverage import cut_short_platforms
from fingerprint.analysis.findings import Check, Finding, Verdicts
from fingerprint.analysis.index import ObservationIndex
from fingerprint.analysis.observe import DnsExchange, DnsResponse, TcpFlow
from fingerprint.analysis.outcome import FlowOutcome
from fingerprint.analysis.pipeline import Pipeline
from fingerprint.analysis.quic import QuicConnection, QuicFlow
from fingerprint.capture.packet import Packet, Unreachable
from fingerprint.catalog import OTHER, Catalog
from fingerprint.errors import FingerprintError
from fingerprint.model import Failure, Status, Technique
from fingerprint.protocols.dns import TYPE_A, TYPE_AAAA, TYPE_CNAME, TYPE_NAMES
from fingerprint.protocols.http import HttpRequest
from fingerprint.report import finding_json, platform_status

__all__ = [
    "DATA_FORMAT_VERSION",
    "DEFAULT_RESOLVER_IP",
    "EXTENSIONS",
    "MEASUREMENT_SCHEMA",
    "TEST_NAME",
    "TEST_VERSION",
    "MeasurementError",
    "ProbeInfo",
    "build_measurements",
    "capture_vantage",
    "engine_annotations",
    "measurements_from_pipeline",
    "new_run_id",
    "ooni_time",
]

TEST_NAME = "fingerprint"
TEST_VERSION = "0.1.0"
"""Version of this measurement's layout (test_keys and x_fingerprint), not of the software."""
DATA_FORMAT_VERSION = "0.2.0"
"""The version OONI Probe writes and OONI's collector accepts (the spec's README lists later
numbers for the top-level `resolver_*` keys, which OONI Probe emits under 0.2.0 all the same)."""
EXTENSIONS = {"dnst": 0, "httpt": 0, "netevents": 0, "tcpconnect": 0, "tlshandshake": 0}
"""Template data formats (and versions) used in `test_keys`, as OONI Probe declares them."""
MEASUREMENT_SCHEMA = "fingerprint.measurement/1"
DEFAULT_PROBE_IP = "127.0.0.1"
DEFAULT_RESOLVER_IP = "127.0.0.2"
"""What OONI Probe records when the resolver's address is unknown."""
DNS_SERVER_MISBEHAVING = "dns_server_misbehaving"
"""df-007's generic DNS failure, for rcodes that have no failure string of their own."""

_OONI_TIME = "%Y-%m-%d %H:%M:%S"
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
_RCODE_FAILURES = {2: Failure.DNS_SERVFAIL, 3: Failure.DNS_NXDOMAIN, 5: Failure.DNS_REFUSED}
_STATUS_RANK = {Status.ACCESSIBLE.value: 0, Status.INCONCLUSIVE.value: 1, Status.BLOCKED.value: 2}


class MeasurementError(FingerprintError):
    """A value given for the measurement envelope is not usable."""


def ooni_time(ts: float) -> str:
    """UTC "YYYY-MM-DD hh:mm:ss", the envelope's time format."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime(_OONI_TIME)


_REPORT_ID_CHARS = string.ascii_letters + string.digits


def new_run_id(start: float, cc: str = "ZZ", asn: str = "AS0") -> str:
    """Identifies one run (one probe / analyze invocation) across its measurements.

    OONI's form (the collector's, e.g. `20240214T090617Z_webconnectivity_IT_30722_n1_...`):
    start time, test name, country, network number, `n1`, 16 random letters and digits.
    Consumers read the vantage point from it (report file names, Explorer links).
    """
    stamp = dt.datetime.fromtimestamp(start, dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    number = normalize_asn(asn).removeprefix("AS")
    tail = "".join(secrets.choice(_REPORT_ID_CHARS) for _ in range(16))
    return f"{stamp}_{TEST_NAME}_{normalize_cc(cc)}_{number}_n1_{tail}"


@dataclass(slots=True)
class ProbeInfo:
    """Envelope facts about the vantage point that the user chooses to share.

    Defaults follow OONI's privacy defaults: AS0, ZZ and 127.0.0.1 mean "not
    shared".  `share_ip` keeps the real client address in evidence packets.
    """

    asn: str = "AS0"
    cc: str = "ZZ"
    ip: str = DEFAULT_PROBE_IP
    resolver_ip: str | None = None
    share_ip: bool = False
    annotations: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.asn = normalize_asn(self.asn)
        self.cc = normalize_cc(self.cc)
        try:
            ipaddress.ip_address(self.ip)
        except ValueError:
            raise MeasurementError(f"probe IP {self.ip!r} is not an IP address") from None
        if self.resolver_ip is not None:
            try:
                ipaddress.ip_address(self.resolver_ip)
            except ValueError:
                raise MeasurementError(
                    f"resolver IP {self.resolver_ip!r} is not an IP address") from None
        for key, value in self.annotations.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise MeasurementError("annotations map strings to strings")


def capture_vantage(probe: ProbeInfo, notes: Mapping[str, Any]) -> tuple[str, str]:
    """(probe_asn, probe_cc) for the envelope.

    What the user gave wins; a value left at OONI's "not shared" default (AS0,
    ZZ) is taken from the capture's notes, where a probe or lab run records the
    vantage point it measured from (`CaptureHints.raw`).  A note that is not a
    valid ASN or country code is ignored.
    """
    asn, cc = probe.asn, probe.cc
    if asn == "AS0" and isinstance(notes.get("probe_asn"), str | int):
        try:
            asn = normalize_asn(str(notes["probe_asn"]))
        except MeasurementError:
            pass
    if cc == "ZZ" and isinstance(notes.get("probe_cc"), str):
        try:
            cc = normalize_cc(notes["probe_cc"])
        except MeasurementError:
            pass
    return asn, cc


# Go's GOARCH names, which OONI Probe writes in `annotations.architecture`.
_ARCHITECTURES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
                  "i386": "386", "i686": "386", "x86": "386", "armv7l": "arm", "armv6l": "arm"}
_PLATFORMS = {"linux": "linux", "darwin": "macos", "win32": "windows", "cygwin": "windows"}


def engine_annotations() -> dict[str, str]:
    """The annotations df-000 says a client always adds: what measured, and on what."""
    machine = host_platform.machine().lower()
    return {
        "architecture": _ARCHITECTURES.get(machine, machine or "unknown"),
        "engine_name": "fingerprint",
        "engine_version": __version__,
        "platform": _PLATFORMS.get(sys.platform, sys.platform),
    }


def normalize_asn(text: str) -> str:
    """'AS8193', 'as8193' or '8193' -> 'AS8193'."""
    value = text.strip().upper().removeprefix("AS")
    if not value.isdigit() or int(value) >= 1 << 32:
        raise MeasurementError(f"ASN {text!r} is not AS<number>")
    return f"AS{int(value)}"


def normalize_cc(text: str) -> str:
    value = text.strip().upper()
    if len(value) != 2 or not value.isalpha() or not value.isascii():
        raise MeasurementError(f"country code {text!r} is not two letters (ISO 3166-1)")
    return value


# --------------------------------------------------------------------------- helpers

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


_NO_HTTP_RESPONSE = "unknown_failure: malformed HTTP response"
"""What OONI's HTTP client reports (as an unknown_failure) when the bytes that came back
are not an HTTP response, e.g. an injected bare text."""


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


def _dns_failure(response: DnsResponse | None, qtype: int) -> str | None:
    if response is None:
        return Failure.GENERIC_TIMEOUT.value
    rcode = response.message.rcode
    if rcode == 0:
        wanted = any(r.rtype == qtype for r in response.message.answers)
        return None if wanted else Failure.DNS_NO_ANSWER.value
    failure = _RCODE_FAILURES.get(rcode)
    return failure.value if failure is not None else DNS_SERVER_MISBEHAVING


def _control_resolver(label: str) -> tuple[str, str]:
    """(df-002 `engine`, `resolver_address`) of a control resolver as the probe notes it:
    `tls://IP:PORT` (DoT), an https URL (DoH, whose address OONI writes as the URL),
    `IP:PORT` (plain UDP); "unknown" when the notes do not say."""
    if label.startswith("tls://"):
        return "dot", label.removeprefix("tls://")
    if label.startswith("https://"):
        return "doh", label
    return ("udp", label) if label else ("unknown", "")


def _connect_failure(flow: TcpFlow) -> str | None:
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


def _unanswered(waited: float, what: str, client_waits: bool) -> str:
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


def _after_trigger_failure(outcome: FlowOutcome, flow: TcpFlow, capture_end: float,
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
    if kind == "pending" and flow.trigger is not None:
        return _unanswered(capture_end - flow.trigger.ts, "request", client_waits)
    return None


def _outcome_time(flow: TcpFlow, outcome: FlowOutcome, capture_end: float) -> float:
    if outcome.decisive:
        return outcome.decisive[0].ts
    if flow.server_data_first_ts is not None:
        return flow.server_data_first_ts
    return flow.client_closed_ts or (capture_end if outcome.kind == "pending" else flow.last_ts)


class _AddressScrubber:
    """Replaces the probe's own addresses with the shared `probe_ip` in texts and packets."""

    def __init__(self, addresses: Iterable[str], replacement: str) -> None:
        self.replacement = replacement
        self.addresses = sorted(set(addresses), key=len, reverse=True)
        self._pattern = re.compile(
            "|".join(rf"(?<![0-9A-Za-z.:]){re.escape(a)}(?![0-9A-Za-z])" for a in self.addresses)
        ) if self.addresses else None

    def text(self, value: str) -> str:
        if self._pattern is None:
            return value
        return self._pattern.sub(self.replacement, value)

    def tree(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.tree(v) for v in value]
        if isinstance(value, dict):
            return {k: self.tree(v) for k, v in value.items()}
        return value


# --------------------------------------------------------------------------- targets

@dataclass(slots=True)
class _Target:
    platform: str
    target: str
    kinds: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)


def _targets(verdicts: Verdicts) -> list[_Target]:
    targets: dict[tuple[str, str], _Target] = {}
    for check in verdicts.checks:
        item = targets.setdefault((check.platform, check.target),
                                  _Target(check.platform, check.target))
        item.checks.append(check)
        if check.kind not in item.kinds:
            item.kinds.append(check.kind)
    for finding in verdicts.findings:
        targets.setdefault((finding.platform, finding.target),
                           _Target(finding.platform, finding.target))
    return sorted(targets.values(), key=lambda t: (t.platform == OTHER, t.platform, t.target))


class _Builder:
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
            "failure": _dns_failure(response, ex.qtype) if response is not None
            or not self.analysis.dns_pending(ex) else
            _unanswered(self.capture_end - ex.query.ts, "query", self.client_waits),
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
        failure = _connect_failure(flow)
        first = flow.syn.ts if flow.syn is not None else flow.first_ts
        if failure == Failure.GENERIC_TIMEOUT.value \
                and self.analysis.outcome(flow).kind == "pending":
            failure = _unanswered(self.capture_end - first, "SYN", self.client_waits)
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
        failure = _after_trigger_failure(outcome, flow, self.capture_end, tls=True,
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
        failure = _after_trigger_failure(outcome, flow, self.capture_end, tls=False,
                                         client_waits=self.client_waits)
        response = flow.response
        if failure is None and response is None:
            failure = _NO_HTTP_RESPONSE
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
        read_failure = _after_trigger_failure(outcome, flow, self.capture_end,
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


# --------------------------------------------------------------------------- measurements

def _worst(statuses: Iterable[str]) -> str:
    return max(statuses, key=lambda s: _STATUS_RANK.get(s, 0), default=Status.INCONCLUSIVE.value)


def build_measurements(analysis: ObservationIndex, verdicts: Verdicts, catalog: Catalog,
                       probe: ProbeInfo | None = None, *, source: str = "analyze",
                       run_id: str | None = None, test_start_time: float | None = None,
                       inputs: Iterable[str] = (), evidence_pcap: str | None = None,
                       evidence_frames: Mapping[tuple[str | None, int], int] | None = None,
                       platforms: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """One OONI measurement per (platform, target) of a finished analysis.

    `analysis` is `Pipeline.index` after `Pipeline.finish()` returned
    `verdicts` (signatures applied).  `platforms` limits the output to those
    platform ids, so a probe can emit a platform's measurements as soon as it
    is done with it.  `test_start_time` defaults to the first packet's time.
    `evidence_pcap` names the annotated capture and `evidence_frames` (from
    `EvidenceResult.frames`) maps each evidence packet to its frame there, recorded
    as `evidence_frame` on the finding's packets.
    """
    probe = probe or ProbeInfo()
    wanted = set(platforms) if platforms is not None else None
    builder = _Builder(analysis, verdicts, catalog)
    targets = [t for t in _targets(verdicts) if wanted is None or t.platform in wanted]
    by_platform_findings, by_platform_checks = verdicts.by_platform()
    clients = analysis.clients()
    probe_ip = probe.ip
    if probe.share_ip and probe_ip == DEFAULT_PROBE_IP and len(clients) == 1:
        probe_ip = next(iter(clients))
    scrub = _AddressScrubber(() if probe.share_ip else clients, probe.ip)

    drafts: list[tuple[_Target, float, float, dict[str, Any], dict[str, Any]]] = []
    for target in targets:
        drafts.append(_draft(builder, target, by_platform_findings, by_platform_checks,
                             catalog, scrub, evidence_frames or {}))
    if not drafts:
        return []
    start_all = test_start_time if test_start_time is not None else min(d[1] for d in drafts)
    asn, cc = capture_vantage(probe, analysis.hints.raw)
    run = run_id or new_run_id(start_all, cc, asn)
    input_names = [str(i) for i in inputs]
    suppressed: dict[tuple[str, str], list[Finding]] = defaultdict(list)
    for finding in verdicts.suppressed:
        suppressed[(finding.platform, finding.target)].append(finding)
    ended_early = ({"reasons": list(verdicts.ended_early),
                    "platforms": cut_short_platforms(verdicts)} if verdicts.ended_early else None)
    out = []
    for target, start, end, test_keys, x_fp in drafts:
        x_fp.update({"run_id": run, "source": source, "inputs": input_names})
        if ended_early is not None:
            # As the report's key: the capture was cut short, so targets it does not
            # cover are not accessible.
            x_fp["capture_ended_early"] = ended_early
        mine = suppressed.get((target.platform, target.target))
        if mine:
            # Why this target is `accessible` although an answer looked like blocking.
            x_fp["suppressed"] = scrub.tree([_suppressed_json(f, evidence_frames or {})
                                             for f in mine])
        if evidence_pcap is not None:
            x_fp["evidence_pcap"] = evidence_pcap
        test_keys["x_fingerprint"] = x_fp
        annotations = engine_annotations()
        annotations.update({"fingerprint_source": source, "fingerprint_platform": target.platform})
        annotations.update(probe.annotations)
        out.append({
            "annotations": annotations,
            "data_format_version": DATA_FORMAT_VERSION,
            "extensions": dict(EXTENSIONS),
            "input": target.target,
            "measurement_start_time": ooni_time(start),
            "probe_asn": asn,
            "probe_cc": cc,
            "probe_ip": probe_ip,
            "probe_network_name": "",
            "report_id": run,
            "resolver_asn": "AS0",
            "resolver_ip": probe.resolver_ip or _resolver_of(test_keys),
            "resolver_network_name": "",
            "software_name": "fingerprint",
            "software_version": __version__,
            "test_keys": test_keys,
            "test_name": TEST_NAME,
            "test_runtime": round(max(0.0, end - start), 6),
            "test_start_time": ooni_time(start_all),
            "test_version": TEST_VERSION,
        })
    return out


def _resolver_of(test_keys: dict[str, Any]) -> str:
    for query in test_keys["queries"]:
        if query.get("x_role") == "target":
            return str(query["resolver_address"]).rsplit(":", 1)[0].strip("[]")
    return DEFAULT_RESOLVER_IP


def _draft(builder: _Builder, target: _Target, findings_of: dict[str, list[Any]],
           checks_of: dict[str, list[Check]], catalog: Catalog, scrub: _AddressScrubber,
           evidence_frames: Mapping[tuple[str | None, int], int]
           ) -> tuple[_Target, float, float, dict[str, Any], dict[str, Any]]:
    index = builder.analysis
    exchanges, dns_controls = index.dns_attempts(target.target)
    flows, tcp_controls = index.tcp_attempts(target.target)
    full_ex = [(ex, "target") for ex in exchanges if not index.dns_limited(ex)]
    full_ex += [(ex, "control") for ex in dns_controls if not index.dns_limited(ex)]
    full_flows = [(f, "target") for f in flows if not index.tcp_limited(f)]
    full_flows += [(f, "control") for f in tcp_controls if not index.tcp_limited(f)]
    limited_dns = sum(1 for ex in exchanges if index.dns_limited(ex))
    limited_tcp = sum(1 for f in flows if index.tcp_limited(f))

    quic_attempts = quic_attempts_for(index, target.target)
    times = [ex.query.ts for ex, _r in full_ex] + [f.first_ts for f, _r in full_flows]
    ends = [ex.last_ts for ex, _r in full_ex] + [f.last_ts for f, _r in full_flows]
    times += [conn.first_ts for _f, conn, _r in quic_attempts]
    ends += [quic_end(qflow, conn) for qflow, conn, _r in quic_attempts]
    plat_findings = findings_of.get(target.platform, [])
    mine = [f for f in plat_findings if f.target == target.target]
    for finding in mine:
        times.extend(e.packet.ts for e in finding.evidence)
        ends.extend(e.packet.ts for e in finding.evidence)
    start = min(times) if times else builder.capture_end
    end = max(ends) if ends else start

    queries: list[dict[str, Any]] = []
    duplicates: list[dict[str, Any]] = []
    tcp_connect: list[dict[str, Any]] = []
    tls_handshakes: list[dict[str, Any]] = []
    requests: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    txn = 0
    for ex, role in sorted(full_ex, key=lambda item: item[0].query.ts):
        txn += 1
        first = ex.responses[0] if ex.responses else None
        queries.append(builder.query_entry(ex, first, start, txn, role))
        for extra in ex.responses[1:]:
            duplicates.append(builder.query_entry(ex, extra, start, txn, role))
    if not is_ip_address(target.target):
        lookups = builder.control_lookup_entries(
            [target.target, *(ex.qname for ex, role in full_ex if role == "control")], start, txn)
        queries.extend(lookups)
        txn += len(lookups)
    for flow, role in sorted(full_flows, key=lambda item: item[0].first_ts):
        txn += 1
        connect = builder.tcp_connect_entry(flow, start, txn, role)
        if connect is not None:
            tcp_connect.append(connect)
        outcome = builder.analysis.outcome(flow) if flow.trigger is not None else None
        if outcome is not None and flow.trigger_kind == "tls" and flow.synack is not None:
            tls_handshakes.append(builder.tls_entry(flow, outcome, start, txn, role))
        if outcome is not None and flow.trigger_kind == "http":
            requests.append(builder.request_entry(flow, outcome, start, txn, role))
        events.extend(builder.network_events(
            flow, outcome, start, txn, connect["status"]["failure"] if connect else None))

    quic_handshakes: list[dict[str, Any]] = []
    for qflow, conn, role in quic_attempts:
        txn += 1
        quic_handshakes.append(quic_entry(builder, qflow, conn, start, txn, role))

    status = platform_status(mine, target.checks).value if (mine or target.checks) \
        else Status.INCONCLUSIVE.value
    plat_checks = checks_of.get(target.platform, [])
    plat_status = platform_status(plat_findings, plat_checks).value
    techniques: list[str] = []
    for finding in sorted(mine, key=lambda f: -f.confidence):
        if finding.technique.value not in techniques:
            techniques.append(finding.technique.value)
    platform = catalog.platforms.get(target.platform)
    x_fp: dict[str, Any] = {
        "schema": MEASUREMENT_SCHEMA,
        "platform": target.platform,
        "platform_name": platform.name if platform else "Other targets",
        "target": target.target,
        "kinds": target.kinds or sorted({_kind_of(f.technique) for f in mine}),
        "status": status,
        "techniques": techniques,
        "platform_status": plat_status,
        "platform_techniques": sorted({f.technique.value for f in plat_findings}),
        "findings": scrub.tree([_finding_json(f, evidence_frames) for f in
                                sorted(mine, key=lambda f: -f.confidence)]),
        "checks": [{"kind": c.kind, "ok": c.ok, "control_ok": c.control_ok,
                    "detail": scrub.text(c.detail)} for c in target.checks],
        "ttl_limited_repeats": {"dns": limited_dns, "tcp": limited_tcp},
    }
    test_keys: dict[str, Any] = {
        "agent": "agent",  # df-001: observed exchanges, no redirect was followed
        "requests": scrub.tree(requests),
        "queries": queries,
        "tcp_connect": tcp_connect,
        "tls_handshakes": tls_handshakes,
        "network_events": events,
    }
    if quic_handshakes:
        # df-006 entries with network "udp", under the key OONI's urlgetter uses for QUIC.
        test_keys["quic_handshakes"] = quic_handshakes
    if duplicates:
        test_keys["x_dns_duplicate_responses"] = duplicates
    return target, start, end, test_keys, x_fp


def _finding_json(finding: Finding, evidence_frames: Mapping[tuple[str | None, int], int]
                  ) -> dict[str, Any]:
    out = finding_json(finding)
    for item, evidence in zip(out["packets"], finding.evidence, strict=True):
        if evidence.packet.capture:
            item["capture"] = evidence.packet.capture
        written = evidence_frames.get((evidence.packet.capture, evidence.packet.frame))
        if written is not None:
            item["evidence_frame"] = written
    return out


def _suppressed_json(finding: Finding, evidence_frames: Mapping[tuple[str | None, int], int]
                     ) -> dict[str, Any]:
    """A finding a false-positive signature suppressed, as `report.suppressed_json`."""
    out = _finding_json(finding, evidence_frames)
    out["suppressed_by"] = list(finding.signatures)
    return out


def _kind_of(technique: Technique) -> str:
    return technique.value.split(".", 1)[0]


def measurements_from_pipeline(pipeline: Pipeline, verdicts: Verdicts,
                               probe: ProbeInfo | None = None, **options: Any
                               ) -> list[dict[str, Any]]:
    """`build_measurements` for a finished `Pipeline` (see there for the options)."""
    return build_measurements(pipeline.index, verdicts, pipeline.catalog, probe, **options)


def measurement_status(measurement: dict[str, Any]) -> str:
    """The platform status a measurement records ('' for a measurement of another tool)."""
    keys = measurement.get("test_keys")
    x_fp = keys.get("x_fingerprint") if isinstance(keys, dict) else None
    if not isinstance(x_fp, dict):
        return ""
    return str(x_fp.get("platform_status", ""))


def worst_status(statuses: Iterable[str]) -> str:
    return _worst(statuses)


# --------------------------------------------------------------------------- QUIC

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


def quic_entry(builder: _Builder, flow: QuicFlow, conn: QuicConnection, start: float, txn: int,
               role: str) -> dict[str, Any]:
    """A df-006 handshake for one QUIC connection (network "udp", as OONI records QUIC).

    The capture shows whether the server answered the Initials, not the handshake's end:
    an answered attempt has no failure; an unanswered one the timeout the client's timer
    gave (or the capture's end when the answer was not due yet)."""
    failure: str | None = None
    if conn.first_answer is None:
        waited = builder.capture_end - conn.initials[-1].ts
        failure = (Failure.GENERIC_TIMEOUT.value if waited >= QUIC_WAIT_S
                   else _unanswered(waited, "Initial", builder.client_waits))
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
