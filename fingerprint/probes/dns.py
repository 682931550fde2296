"""DNS probe: crafted queries to the resolver under test, every answer kept.

Techniques it gives the analysis evidence for: dns.injection, dns.redirect,
dns.nxdomain, dns.error, dns.drop.

Method (OONI `dnscheck` / Web Connectivity DNS step, ooni/spec
nettests/ts-028-dnscheck.md and ts-017-web-connectivity.md; duplicate answers
as OONI's `x_dns_duplicate_responses`; GFW injection per "Triplet Censors",
FOCI 2020):

* each query is built with scapy's DNS layer and sent from its own bound UDP
  socket (so late answers reach an open port instead of drawing ICMP port
  unreachable), and the port stays open for the whole window: an on-path
  injector's forged answer arrives first, the genuine one may follow, and the
  sniffer records both with their IP fields;
* the same query is sent to an address that runs no resolver: any answer is
  injected (`CaptureHints.no_resolver`);
* control answers come from an encrypted resolver (DoH, RFC 8484, or DoT,
  RFC 7858) through dnspython, out of the censor's sight
  (`CaptureHints.control_answers`);
* TTL-limited copies of a query (IP TTL k) let `locate.py` find the hop where
  the censor answers or swallows it (CenTrace, CoNEXT 2022).

Needs no privilege itself (ordinary UDP sockets); the shared sniffer does.
"""

from __future__ import annotations

import http.client
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import dns.exception
import dns.message
import dns.query
import dns.rdatatype
from scapy.layers.dns import DNS, DNSQR

from fingerprint.analysis.addresses import is_ip_address
from fingerprint.errors import FingerprintError
from fingerprint.probes.ip import set_ttl
from fingerprint.probes.runner import RateLimiter, Session

DEFAULT_CONTROL_RESOLVER = "https://1.1.1.1/dns-query"
"""Cloudflare's DoH endpoint by address (its certificate names the IP): no bootstrap lookup
through the resolver under test."""


DNS_SENDS = 3
"""Sends of one query while no answer came back (`query_attempt`)."""

CONTROL_LOOKUP_PACKETS = {"udp": 1, "dot": 8, "doh": 9}
"""Packets the client sends for one control lookup: a query; or a TCP connection with a TLS
handshake, the query (and HTTP request), ACKs and the close (counted in the lab)."""


class ResolverSpecError(FingerprintError):
    """The control resolver is not `https://HOST[:PORT]/PATH`, `tls://IP[:PORT]` or an IP."""


@dataclass(frozen=True, slots=True)
class ControlResolver:
    kind: str
    """doh, dot or udp."""
    host: str
    port: int
    path: str = "/dns-query"

    @property
    def label(self) -> str:
        if self.kind == "doh":
            return f"https://{self.host}:{self.port}{self.path}"
        if self.kind == "dot":
            return f"tls://{self.host}:{self.port}"
        return f"{self.host}:{self.port}"


def parse_resolver_spec(spec: str) -> ControlResolver:
    """`https://...` (DoH), `tls://IP[:PORT]` (DoT) or a plain IP (UDP, visible to a censor)."""
    text = spec.strip()
    if text.startswith("https://"):
        parts = urlsplit(text)
        if not parts.hostname:
            raise ResolverSpecError(f"control resolver {spec!r}: no host in the URL")
        return ControlResolver("doh", parts.hostname, parts.port or 443, parts.path or "/dns-query")
    if text.startswith("tls://"):
        parts = urlsplit(text)
        host = parts.hostname or ""
        if not is_ip_address(host):
            raise ResolverSpecError(f"control resolver {spec!r}: DoT needs an IP address")
        return ControlResolver("dot", host, parts.port or 853)
    if is_ip_address(text):
        return ControlResolver("udp", text, 53)
    raise ResolverSpecError(f"control resolver {spec!r}: expected https://..., tls://IP or an IP")


def system_resolver(path: str = "/etc/resolv.conf") -> str | None:
    """The first `nameserver` of resolv.conf, or None."""
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                fields = line.split()
                if len(fields) >= 2 and fields[0] == "nameserver" and is_ip_address(fields[1]):
                    return fields[1]
    except OSError:
        return None
    return None


def _tls_context(ca_file: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
    return context


def _doh(query: dns.message.Message, resolver: ControlResolver, timeout: float,
         ca_file: str | None) -> dns.message.Message:
    # RFC 8484 POST over HTTP/1.1 with the standard library (dnspython's DoH needs httpx).
    connection = http.client.HTTPSConnection(resolver.host, resolver.port, timeout=timeout,
                                             context=_tls_context(ca_file))
    try:
        connection.request("POST", resolver.path, body=query.to_wire(), headers={
            "Content-Type": "application/dns-message", "Accept": "application/dns-message"})
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise http.client.HTTPException(f"DoH status {response.status}")
        return dns.message.from_wire(body)
    finally:
        connection.close()


def control_lookup(resolver: ControlResolver, name: str, timeout: float,
                   ca_file: str | None, limiter: RateLimiter | None = None) -> list[str] | None:
    """A records for `name` from the control resolver; None when it could not be asked."""
    query = dns.message.make_query(name, dns.rdatatype.A)
    cost = CONTROL_LOOKUP_PACKETS[resolver.kind]
    if limiter is not None:
        limiter.take(cost)
    try:
        if resolver.kind == "doh":
            answer = _doh(query, resolver, timeout, ca_file)
        elif resolver.kind == "dot":
            answer = dns.query.tls(query, resolver.host, timeout=timeout, port=resolver.port,
                                   ssl_context=_tls_context(ca_file),
                                   server_hostname=resolver.host)
        else:
            answer = dns.query.udp(query, resolver.host, timeout=timeout, port=resolver.port)
    except (dns.exception.DNSException, OSError, http.client.HTTPException, ValueError):
        return None
    finally:
        if limiter is not None:
            limiter.record(cost)  # the lookup ran before the sniffer: its packets end now
    addresses: list[str] = []
    for rrset in answer.answer:
        if rrset.rdtype == dns.rdatatype.A:
            addresses.extend(rdata.to_text() for rdata in rrset)
    return addresses


def build_query(name: str, txid: int, qtype: str = "A") -> bytes:
    """The query's DNS payload, crafted with scapy (recursion desired, one question)."""
    return bytes(DNS(id=txid, rd=1, qd=DNSQR(qname=name, qtype=qtype)))


@dataclass
class DnsAttempt:
    resolver: str
    name: str
    ttl: int | None
    responses: list[bytes] = field(default_factory=list)
    error: str | None = None
    local_port: int = 0
    """The query's source port: names it in the capture."""


AnswerCallback = Callable[[str, list[str]], None]


def _answer_addresses(wire: bytes) -> list[str]:
    try:
        message = dns.message.from_wire(wire)
    except dns.exception.DNSException:
        return []
    return [rdata.to_text() for rrset in message.answer if rrset.rdtype == dns.rdatatype.A
            for rdata in rrset]


def query_attempt(session: Session, resolver: str, name: str, *, ttl: int | None = None,
                  window: float | None = None, resend: bool = True,
                  on_answer: AnswerCallback | None = None) -> DnsAttempt:
    """One query (one source port, one transaction id) kept open for `window` seconds.

    Until something comes back the identical query is sent again, DNS_SENDS
    times in all, evenly over the window (loss must not look like a drop: with
    a round trip lost with probability q, all sends are lost with q^DNS_SENDS).
    `resend=False` sends it once (TTL-limited repeats).  `ttl` sets the IP TTL of the query
    (localisation).  The responses are returned for scheduling only; the
    verdict comes from the sniffed packets.
    """
    attempt = DnsAttempt(resolver, name, ttl)
    window = session.timeout if window is None else window
    family = socket.AF_INET6 if ":" in resolver else socket.AF_INET
    txid = int.from_bytes(os.urandom(2), "big")
    payload = build_query(name, txid)
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        if ttl is not None:
            set_ttl(sock, ttl)
        try:
            sock.connect((resolver, 53))
        except OSError as exc:
            attempt.error = exc.strerror or str(exc)
            return attempt
        attempt.local_port = int(sock.getsockname()[1])
        sent = _send(session, sock, payload, attempt)
        # The window opens when the query leaves: under --rate the send may wait in the
        # limiter, and a window counted from before that could close before the answer.
        start = time.monotonic()
        deadline = start + window
        resends = [start + window * i / DNS_SENDS for i in range(1, DNS_SENDS)] if resend else []
        while sent:
            now = time.monotonic()
            if now >= deadline:
                break
            if resends and now >= resends[0]:
                resends.pop(0)
                if attempt.responses:
                    resends.clear()
                else:
                    _send(session, sock, payload, attempt)
            wake = min(deadline, resends[0]) if resends else deadline
            sock.settimeout(max(0.001, wake - now))
            try:
                data = sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                # ICMP errors (port unreachable, time exceeded) surface here; the sniffer has them.
                continue
            attempt.responses.append(data)
            if on_answer is not None and ttl is None:
                on_answer(name, _answer_addresses(data))
    return attempt


def _send(session: Session, sock: socket.socket, payload: bytes, attempt: DnsAttempt) -> bool:
    session.limiter.take()
    try:
        sock.send(payload)
    except OSError as exc:
        attempt.error = exc.strerror or str(exc)
        return False
    return True


class AnswerWatcher:
    """Collects addresses the resolver under test returned, once each (for certificate checks)."""

    def __init__(self, skip: set[str]) -> None:
        self.skip = set(skip)
        self._lock = threading.Lock()
        self.seen: dict[str, set[str]] = {}

    def new_addresses(self, name: str, addresses: list[str]) -> list[str]:
        fresh: list[str] = []
        with self._lock:
            seen = self.seen.setdefault(name, set())
            for address in addresses:
                if address in seen or address in self.skip:
                    continue
                seen.add(address)
                fresh.append(address)
        return fresh

