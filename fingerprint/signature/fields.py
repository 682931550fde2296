"""The one registry of signature fields: what a matcher may read, its type, and where from.

The matcher (`match.py`), loading and `signatures lint`, the signature schema's
field list (`schemas/signature.schema.json`) and CONTRIBUTING.md's field table
all come from `FIELDS`; a test fails when the schema or the table disagree:

    python scripts/signature_fields.py --write    # regenerate both after a change here

A new field is added here *and* where it is produced: packet fields in
`evidence.packet_fields` (or the DNS response fields of the DNS rule), finding
fields in the rule that builds the finding's context, vantage fields in
`Analysis.vantage_context`.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any


class Source(StrEnum):
    """Where a matcher reads a field."""

    PACKET = "packet"
    """The finding's evidence packets (default the injected ones, else the other responses;
    `packets: injected|responses|all` chooses)."""
    FINDING = "finding"
    """The finding itself (what the rule concluded: trigger, outcome, counts, ...)."""
    VANTAGE = "vantage"
    """The vantage point the capture records (`probe_cc` / `probe_asn` hints)."""


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    sources: tuple[Source, ...]
    description: str
    family: bool = False
    """`name` is a prefix: `http.header.` + any header name (lower case)."""

    @property
    def shown(self) -> str:
        return f"{self.name}<name>" if self.family else self.name


P, F, V = Source.PACKET, Source.FINDING, Source.VANTAGE

FIELDS: tuple[Field, ...] = (
    # -- packets (evidence.packet_fields; DNS responses add the dns.* ones)
    Field("ip.ttl", "int", (P,), "IP TTL / hop limit as received"),
    Field("ip.initial_ttl", "int", (P,), "the sender's likely initial TTL (32, 64, 128, 255)"),
    Field("ip.id", "int", (P,), "IPv4 identification"),
    Field("ip.df", "bool", (P,), "IPv4 don't-fragment flag"),
    Field("ip.version", "int", (P,), "4 or 6"),
    Field("ip.ttl_minus_trigger", "int", (P,), "received TTL minus the trigger's TTL"),
    Field("timing.delay_ms", "number", (P,), "milliseconds after the trigger"),
    Field("tcp.flags", "string", (P,), "TCP flags as letters (`RA`, `FA`)"),
    Field("tcp.window", "int", (P,), "TCP window"),
    Field("tcp.seq", "int", (P,), "TCP sequence number"),
    Field("tcp.seq_delta", "int", (P,),
          "offset from the sequence number the client expects next"),
    Field("tcp.ack", "int", (P,), "TCP acknowledgement number"),
    Field("tcp.payload", "bytes", (P,), "TCP payload"),
    Field("tcp.payload_len", "int", (P,), "TCP payload length"),
    Field("icmp.type", "int", (P, F), "ICMP type (an IP finding: of its decisive packet)"),
    Field("icmp.code", "int", (P, F), "ICMP code (an IP finding: of its decisive packet)"),
    Field("dns.answer", "list[address]", (P, F),
          "addresses of a DNS answer (a finding: of every answer it rests on)"),
    Field("dns.cname", "list[name]", (P, F),
          "CNAME targets of a DNS answer, in chain order (a finding: of every first answer)"),
    Field("dns.flags", "int", (P,), "DNS header flags word (0x8180, 0x8580, ...)"),
    Field("dns.answer_ttl", "list[int]", (P,), "TTLs of the answer records"),
    # -- the finding
    Field("trigger.sni", "string", (F,), "the SNI of the blocked ClientHello"),
    Field("trigger.host", "string", (F,), "the Host of the blocked HTTP request"),
    Field("trigger.qname", "string", (F,), "the DNS name asked"),
    Field("trigger.ech", "bool", (F,), "the blocked ClientHello (TLS or in a QUIC Initial) carried ECH or ESNI"),
    Field("trigger.esni", "bool", (F,), "the blocked ClientHello carried ESNI (0xffce), the 2018-2020 draft"),
    Field("quic.version", "int", (F,), "QUIC version of the unanswered Initials (1, 0x6b3343cf for v2)"),
    Field("quic.initials", "int", (F,), "datagrams carrying the first unanswered connection's Initials"),
    Field("quic.residual_s", "number", (F,),
          "seconds the (client, server, port) stayed blocked after the trigger (a lower bound)"),
    Field("outcome", "string", (F,), "the flow outcome (`reset`, `fin`, `silence`, `mitm`, ...)"),
    Field("injected.count", "int", (F,), "how many packets were injected"),
    Field("response.payload", "bytes", (F,), "the decisive packets' payloads, joined"),
    Field("candidate", "bool", (F,), "the finding awaits a censor signature to be reported"),
    Field("dns.resolver", "address", (F,), "the resolver asked"),
    Field("dns.response_count", "int", (F,), "responses to one query"),
    Field("dns.no_resolver", "bool", (F,), "the address asked runs no resolver"),
    Field("dns.rcode", "string", (F,), "response code name (`NXDOMAIN`, ...)"),
    Field("tcp.handshake", "string", (F,), "how the handshake went (`ok`, or the outcome)"),
    Field("tcp.synack_conflicts", "int", (F,),
          "attempts that got two SYN-ACKs with different sequence numbers"),
    Field("tls.cert.issuer", "string", (F,), "issuer of the certificate presented"),
    Field("tls.cert.subject", "string", (F,), "subject of the certificate presented"),
    Field("tls.mitm.scope", "string", (F,),
          "`sni` (the control SNI got a trusted certificate) or `address` (every TLS "
          "connection to the address intercepted)"),
    Field("tls.control_address", "address", (F,),
          "a control address whose certificate validates: the trust anchors are fine"),
    Field("reset.before_server", "bool", (F,),
          "TTL-limited SYNs place the RST to the SYN at a box before the server"),
    Field("residual.scope", "string", (F,),
          "residual blocking after the trigger: `3-tuple` or `client`"),
    Field("residual.seconds", "number", (F,),
          "how long later connections failed after the trigger (at least)"),
    Field("throughput.ratio", "number", (F,), "target throughput over the control's"),
    Field("http.status", "int", (F,), "HTTP status code of the response"),
    Field("http.body", "bytes", (F,), "HTTP response body"),
    Field("http.header.", "string", (F,), "an HTTP response header (name in lower case)",
          family=True),
    # -- the vantage point
    Field("probe.cc", "string", (V,), "country code of the vantage point"),
    Field("probe.asn", "int", (V,), "AS number of the vantage point"),
)

_BY_NAME = {f.name: f for f in FIELDS if not f.family}
_FAMILIES = tuple(f for f in FIELDS if f.family)
_FAMILY_NAME = re.compile(r"[a-z0-9_-]+")


def lookup(name: str) -> Field | None:
    """The registered field `name` is, or None."""
    exact = _BY_NAME.get(name)
    if exact is not None:
        return exact
    for family in _FAMILIES:
        rest = name.removeprefix(family.name)
        if rest != name and _FAMILY_NAME.fullmatch(rest):
            return family
    return None


def closest(name: str) -> str | None:
    """The known field name nearest to a misspelt one (difflib), if any is near."""
    near = difflib.get_close_matches(name, [f.shown for f in FIELDS], n=1, cutoff=0.6)
    return near[0] if near else None


def unknown_field_message(name: str) -> str:
    hint = closest(name)
    return f"unknown field {name!r}" + (f" (did you mean {hint!r}?)" if hint else "") \
        + "; the fields are listed in CONTRIBUTING.md"


def is_packet_field(name: str) -> bool:
    known = lookup(name)
    return known is not None and Source.PACKET in known.sources


# --------------------------------------------------------------------------- generated text

def schema_field() -> dict[str, Any]:
    """The signature schema's `field` property: the registered names, or a family prefix."""
    families = "|".join(re.escape(f.name) for f in _FAMILIES)
    return {"anyOf": [{"enum": sorted(_BY_NAME)},
                      {"type": "string", "pattern": f"^(?:{families})[a-z0-9_-]+$"}],
            "description": "a registered field (fingerprint/signature/fields.py)"}


TABLE_BEGIN = "<!-- signature fields: generated by python scripts/signature_fields.py --write -->"
TABLE_END = "<!-- end of signature fields -->"


def markdown_table() -> str:
    lines = [TABLE_BEGIN, "", "| field | type | read from | meaning |", "|---|---|---|---|"]
    lines += [f"| `{f.shown}` | {f.type} | {' / '.join(s.value for s in f.sources)} | "
              f"{f.description} |" for f in FIELDS]
    return "\n".join([*lines, "", TABLE_END])


REPO = Path(__file__).resolve().parents[2]
SCHEMA_PATH = REPO / "fingerprint" / "schemas" / "signature.schema.json"
CONTRIBUTING_PATH = REPO / "CONTRIBUTING.md"


_SCHEMA_FIELD = re.compile(r'^(?P<indent> *)"field": .*?(?=^(?P=indent)"op": )', re.M | re.S)


def _schema_field_text(indent: str) -> str:
    """The `field` property as the hand-formatted schema file writes it (one name per line)."""
    spec = schema_field()
    names, pattern = spec["anyOf"][0]["enum"], spec["anyOf"][1]["pattern"]
    inner = indent + "  "
    lines = [f'{indent}"field": {{"description": {json.dumps(spec["description"])}, "anyOf": [',
             f'{inner}{{"enum": [']
    lines += [f"{inner}  {json.dumps(name)}," for name in names]
    lines[-1] = lines[-1].rstrip(",") + "]},"
    lines.append(f'{inner}{{"type": "string", "pattern": {json.dumps(pattern)}}}]}},')
    return "\n".join(lines) + "\n"


def _schema_text(current: str) -> str:
    found = _SCHEMA_FIELD.search(current)
    if found is None:
        raise ValueError(f"{SCHEMA_PATH.name}: no matcher `field` property")
    return current[:found.start()] + _schema_field_text(found["indent"]) + current[found.end():]


def _contributing_text(current: str) -> str:
    start, end = current.find(TABLE_BEGIN), current.find(TABLE_END)
    if start < 0 or end < start:
        raise ValueError(f"{CONTRIBUTING_PATH.name}: no generated field table markers")
    return current[:start] + markdown_table() + current[end + len(TABLE_END):]


def stale_files() -> list[Path]:
    """The generated files that differ from the registry."""
    out = []
    for path, render in ((SCHEMA_PATH, _schema_text), (CONTRIBUTING_PATH, _contributing_text)):
        text = path.read_text(encoding="utf-8")
        if render(text) != text:
            out.append(path)
    return out


def main(argv: list[str]) -> int:
    """`scripts/signature_fields.py`: check, or rewrite with `--write`."""
    if argv != ["--write"]:
        stale = stale_files()
        for path in stale:
            print(f"{path}: out of date with fingerprint/signature/fields.py (run with --write)")
        return 1 if stale else 0
    for path, render in ((SCHEMA_PATH, _schema_text), (CONTRIBUTING_PATH, _contributing_text)):
        path.write_text(render(path.read_text(encoding="utf-8")), encoding="utf-8")
    return 0

