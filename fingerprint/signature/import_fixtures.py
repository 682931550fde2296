"""Crafted fixtures that prove imported DNS-answer and HTTP signatures.

(HTTP: one web server answers a control Host and then, per imported row, a
target Host with a response carrying that row's pattern; see `plan_http_fixtures`.)

OONI's rows are addresses seen in real measurements; no capture comes with
them.  For each country (one shared fixture folder per country) this module
crafts, with scapy, the capture a probe would record when a resolver answers
with those addresses: the control name asked of the same resolver and
answered genuinely, then one target query per imported row answered with that
row's address, from the same resolver with the same IP fields (so the only
thing that differs from a genuine answer is the address).  Target names are
the built-in catalog's platform domains, then `other` names.  Only
documentation addresses are used for the client, the resolver and the control
answer.

The capture proves that the signature's rule matches a finding carrying the
row's answer; it does not prove the row itself, which rests on OONI's
citation.
"""

from __future__ import annotations

import importlib
import ipaddress
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fingerprint.analysis.pipeline import Result
from fingerprint.catalog import Catalog
from fingerprint.signature.importer import Imported, Origin
from fingerprint.signature.library import SignatureLibrary
from fingerprint.signature.match import build_matcher
from fingerprint.testing.craft import Capture, http_response
from fingerprint.testing.fixtures import CAPTURE_SUFFIXES, Fixture

CLIENT = "192.0.2.10"
RESOLVER = "198.51.100.53"
CONTROL_ANSWER_V4 = "203.0.113.99"
CONTROL_ANSWER_V6 = "2001:db8::99"
CNAME_TARGET_ANSWER = "203.0.113.98"
"""The address a CNAME row's crafted chain ends at (the row names the host, not its address)."""
RESOLVER_TTL = 58
"""The resolver's IP TTL, the same on control and target answers (nothing forged-looking)."""
START_TS = 1_700_000_000.0
OTHER_SUFFIX = "example.net"
"""Target names beyond the catalog's domains ('other' platform)."""


@dataclass
class FixturePlan:
    folder: str
    """Relative to the repository root, as signatures reference it."""
    items: list[Imported]
    names: dict[str, str] = field(default_factory=dict)
    """Signature id -> the target name whose answer carries its address."""

    @property
    def country(self) -> str:
        return self.folder.rstrip("/").rsplit("-", 1)[-1]


def plan_dns_fixtures(items: list[Imported], catalog: Catalog) -> tuple[list[FixturePlan], list[str]]:
    """Group exact-address DNS signatures by fixture folder and give each a target name."""
    groups: dict[str, list[Imported]] = {}
    notes: list[str] = []
    for item in items:
        if item.kind != "dns":
            continue
        if item.address is None and item.cname is None:
            notes.append(f"{item.id}: not an exact address or CNAME target, no crafted fixture "
                         "(supply a capture)")
            continue
        groups.setdefault(item.fixture, []).append(item)
    plans = []
    for folder, members in sorted(groups.items()):
        plan = FixturePlan(folder, members)
        names = _target_names(catalog)
        used: set[str] = set()
        for item in members:
            address = item.address or ""
            for name in names:
                if name in used:
                    continue
                platform = catalog.platform_for_name(name)
                if platform is not None and address and platform.owns_address(address):
                    continue  # a platform's own address would be a genuine answer
                plan.names[item.id] = name
                used.add(name)
                break
        plans.append(plan)
    return plans, notes


def _target_names(catalog: Catalog) -> Iterator[str]:
    seen: set[str] = set()
    for platform in catalog.platforms.values():
        for domain in platform.domains:
            name = domain.lower().rstrip(".")
            if name not in seen and not catalog.is_control_name(name):
                seen.add(name)
                yield name
    n = 1
    while True:
        yield f"site{n}.{OTHER_SUFFIX}"
        n += 1


def exchanges(plan: FixturePlan, control_name: str) -> list[tuple[str, str, str, tuple[str, ...]]]:
    """(qname, qtype, answer, CNAME chain) in capture order: controls first, then one per
    signature (a CNAME row's answer: the chain to its target, then the target's address)."""
    versions = {ipaddress.ip_address(item.address).version for item in plan.items if item.address}
    out: list[tuple[str, str, str, tuple[str, ...]]] = [(control_name, "A", CONTROL_ANSWER_V4, ())]
    if 6 in versions:
        out.append((control_name, "AAAA", CONTROL_ANSWER_V6, ()))
    for item in plan.items:
        if item.cname is not None:
            out.append((plan.names[item.id], "A", CNAME_TARGET_ANSWER, (item.cname,)))
            continue
        address = item.address or ""
        qtype = "AAAA" if ipaddress.ip_address(address).version == 6 else "A"
        out.append((plan.names[item.id], qtype, address, ()))
    return out


def write_capture(plan: FixturePlan, path: Path, control_name: str) -> int:
    """Craft the plan's exchanges (fixed ids, ports and times: a rerun writes the same bytes)."""
    cap = Capture(start=START_TS, client=CLIENT)
    count = 0
    for i, (qname, qtype, answer, cnames) in enumerate(exchanges(plan, control_name)):
        query = cap.dns(RESOLVER, qname, at=0.05 + 0.07 * i, qtype=qtype, ttl=64, txid=0x1000 + i,
                        sport=40000 + i, ip_id=0x1000 + i, df=False)
        query.respond([answer], delay_ms=20, ttl=RESOLVER_TTL, ip_id=3000 + i, df=False,
                      compress=False, cnames=cnames)
        count += 2
    cap.write(path)
    return count


def readme(plan: FixturePlan, origin: Origin, control_name: str, capture: str) -> str:
    rows = "\n".join(
        f"| `{plan.names[item.id]}` | {item.address or f'CNAME {item.cname}, {CNAME_TARGET_ANSWER}'}"
        f" | `{item.id}` | "
        f"{', '.join([item.row.name, *(r.name for r in item.merged)])} | {item.row.line} |"
        for item in plan.items)
    cc = plan.country.upper()
    cname_note = "" if not any(item.cname for item in plan.items) else (
        "\nA row whose pattern is a host name is answered with a CNAME to that host, then the\n"
        f"host's address ({CNAME_TARGET_ANSWER}): its signature reads the CNAME chain (`dns.cname`).")
    return f"""# Imported OONI DNS rows, {cc}: crafted resolver answers

What it shows: a resolver ({RESOLVER}) answers the control name `{control_name}`
genuinely ({CONTROL_ANSWER_V4}), then answers each target name below with the
blockpage / sinkhole / forged address of one row of OONI's blocking-fingerprints
DNS table. All answers come from the same resolver with the same IP TTL
({RESOLVER_TTL}) and IP ID pattern, so the analysis calls each target a DNS
redirect only because the address is a known one (a private or bogon address
is a redirect by itself; a public one is named by its signature).{cname_note}

Where the behaviour comes from: {origin.label}, the rows named below (the
dataset cites OONI Explorer measurements and other sources per row; every
signature file repeats its row's citation). The capture is crafted with scapy,
not recorded: it proves that each imported signature matches a finding that
carries its row's answer, not that the censor still answers this way.

Regenerate with `python scripts/import_ooni.py` (or `fingerprint signatures
import --with-fixtures`). Capture: `{capture}`; expected report: `expected.json`.

| target name | answer | signature | OONI ids | CSV line |
|---|---|---|---|---|
{rows}
"""


def analyze_plan(folder: Path, library: SignatureLibrary) -> tuple[Result, dict[str, Any]]:
    return Fixture(folder).analyze(library)


def build_dns_fixtures(plans: list[FixturePlan], root: Path, origin: Origin, catalog: Catalog,
                       library: SignatureLibrary) -> list[str]:
    """Write every planned fixture under `root`; return one problem line per unproved signature.

    `library` must already hold the imported signatures: expected.json is the
    report the full library gives, and each signature must match its fixture.
    """
    problems: list[str] = []
    control_name = catalog.control_domains[0] if catalog.control_domains else "example.com"
    for plan in plans:
        folder = root / plan.folder
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.iterdir():
            if old.is_file() and old.name.endswith((".pcap", ".pcapng", ".pcap.gz", ".pcapng.gz")):
                old.unlink()
        capture = f"ooni-import-{plan.country}.pcap"
        write_capture(plan, folder / capture, control_name)
        (folder / "README.md").write_text(readme(plan, origin, control_name, capture), encoding="utf-8")
        result, report = analyze_plan(folder, library)
        report.pop("generated", None)
        (folder / "expected.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        matched = {sig for f in result.verdicts.findings for sig in f.signatures}
        for item in plan.items:
            if item.id not in matched:
                problems.append(f"{plan.folder}: {item.id} does not match its crafted answer "
                                f"{item.address} for {plan.names[item.id]}")
    return problems


# =========================================================================== HTTP

HTTP_SERVER = "203.0.113.80"
"""One web server answers every request: the control Host genuinely, each target Host with
the response one imported row describes (same server, same IP fields)."""
HTTP_SERVER_TTL = 52
CONTROL_BODY = b"<html><head><title>Example Domain</title></head><body>example</body></html>"
HTML_TYPE = ("Content-Type", "text/html; charset=utf-8")
FP_REDIRECT = "https://www.example.org/"
FIRST_SPORT = 20000
"""Client ports count up from here, one per connection (random ones would collide)."""
_EXAMPLE_REPEAT = 1
"""A crafted example repeats a regex's `x*`/`x+` the fewest times it allows (at least once)."""


@dataclass(frozen=True)
class HttpExample:
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


@dataclass
class HttpFixturePlan:
    folder: str
    items: list[Imported]
    examples: dict[str, HttpExample] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)

    @property
    def country(self) -> str:
        return self.folder.rstrip("/").rsplit("-", 1)[-1]


def regex_example(pattern: str) -> str | None:
    """A short text the regex matches (literals, classes, `.`, repeats, groups, branches),
    or None for constructs it cannot write an example for; checked by the matcher."""
    parser: Any = importlib.import_module("re._parser")
    constants: Any = importlib.import_module("re._constants")
    try:
        tree = parser.parse(pattern)
    except re.error:
        return None

    def write(items: Any) -> str | None:
        out = []
        for op, arg in items:
            if op is constants.LITERAL:
                out.append(chr(arg))
            elif op is constants.ANY:
                out.append("x")
            elif op is constants.IN:
                first = arg[0]
                if first[0] is constants.NEGATE:
                    return None
                if first[0] is constants.LITERAL:
                    out.append(chr(first[1]))
                elif first[0] is constants.RANGE:
                    out.append(chr(first[1][0]))
                elif first[0] is constants.CATEGORY:
                    out.append({constants.CATEGORY_DIGIT: "0", constants.CATEGORY_SPACE: " ",
                                constants.CATEGORY_WORD: "a"}.get(first[1], ""))
                    if not out[-1]:
                        return None
                else:
                    return None
            elif op in (constants.MAX_REPEAT, constants.MIN_REPEAT):
                low, _high, inner = arg
                piece = write(inner)
                if piece is None:
                    return None
                out.append(piece * max(low, _EXAMPLE_REPEAT if low == 0 else low))
            elif op is constants.SUBPATTERN:
                piece = write(arg[-1])
                if piece is None:
                    return None
                out.append(piece)
            elif op is constants.BRANCH:
                piece = write(arg[1][0])
                if piece is None:
                    return None
                out.append(piece)
            elif op is constants.AT:
                continue
            else:
                return None
        return "".join(out)

    example = write(tree)
    if example is None:
        return None
    try:
        matches = build_matcher({"field": "http.body", "op": "regex", "value": pattern}).evaluate(
            {"http.body": example}, {})
    except ValueError:
        return None
    return example if matches else None


def http_example(item: Imported) -> HttpExample | None:
    """The response that carries an imported HTTP row's pattern, or None when none is crafted."""
    matcher = item.document["match"]["matchers"][0]
    name, op, value = matcher["field"], matcher["op"], matcher.get("value")
    text = str(value)
    if op == "regex":
        example = regex_example(text)
        if example is None:
            return None
        text = example
    # A false-positive row describes an ordinary response (a site's own redirect, ...): it is
    # proved by suppressing a finding, so its example is a redirect to another site, which
    # the analysis reports without waiting for a censor signature.
    redirect = item.document["kind"] == "false-positive"
    status, reason = (302, "Found") if redirect else (200, "OK")
    headers = [HTML_TYPE]
    if redirect:
        headers.append(("Location", FP_REDIRECT))
    if name == "http.body":
        if op in ("bytes_equals", "bytes_contains"):
            data = bytes.fromhex(text)
        else:
            data = text.encode("utf-8")
        if op in ("equals", "bytes_equals", "prefix"):
            body = data if op != "prefix" else data + b"\n</html>"
        else:
            body = b"<html><body>\n" + data + b"\n</body></html>"
        return HttpExample(status, reason, tuple(headers), body)
    header = name.removeprefix("http.header.")
    if header == "content-length" or any(c in text for c in "\r\n") or not text.isascii():
        return None
    if header == "location":
        return HttpExample(302, "Found", (("Location", text), HTML_TYPE), b"")
    headers.insert(0, ("-".join(p.capitalize() for p in header.split("-")), text))
    return HttpExample(status, reason, tuple(headers), b"<html><body>blocked</body></html>")


def plan_http_fixtures(items: list[Imported], catalog: Catalog) -> tuple[list[HttpFixturePlan], list[str]]:
    """Group HTTP signatures by fixture folder; give each a target Host and its response."""
    groups: dict[str, HttpFixturePlan] = {}
    notes: list[str] = []
    for item in items:
        if item.kind != "http":
            continue
        example = http_example(item)
        if example is None:
            notes.append(f"{item.id}: no response can be crafted for its pattern (supply a capture)")
            continue
        plan = groups.setdefault(item.fixture, HttpFixturePlan(item.fixture, []))
        plan.items.append(item)
        plan.examples[item.id] = example
    for plan in groups.values():
        names = _target_names(catalog)
        for item in plan.items:
            plan.names[item.id] = next(names)
    return [groups[k] for k in sorted(groups)], notes


def write_http_capture(plan: HttpFixturePlan, path: Path, control_name: str) -> int:
    """The control Host, then one request per signature, each on its own connection."""
    cap = Capture(start=START_TS, client=CLIENT, seed=len(plan.items))
    exchanges = [(control_name, HttpExample(200, "OK", (HTML_TYPE,), CONTROL_BODY))]
    exchanges += [(plan.names[item.id], plan.examples[item.id]) for item in plan.items]
    for i, (host, example) in enumerate(exchanges):
        flow = cap.tcp(HTTP_SERVER, 80, at=0.05 + 0.2 * i, server_ttl=HTTP_SERVER_TTL, rtt_ms=20,
                       sport=FIRST_SPORT + i % (65536 - FIRST_SPORT))
        flow.handshake()
        flow.http_get(host)
        last = flow.http_reply(http_response(example.status, example.reason, example.headers,
                                             example.body))
        flow.client_close(at_ms=last + 1)
    cap.write(path)
    return len(cap.frames)


def http_readme(plan: HttpFixturePlan, origin: Origin, control_name: str, capture: str) -> str:
    rows = "\n".join(
        f"| `{plan.names[item.id]}` | {plan.examples[item.id].status} | `{item.id}` | "
        f"{', '.join([item.row.name, *(r.name for r in item.merged)])} | {item.row.line} |"
        for item in plan.items)
    cc = plan.country.upper()
    return f"""# Imported OONI HTTP rows, {cc}: crafted responses

What it shows: a web server ({HTTP_SERVER}) answers the control Host `{control_name}`
with an ordinary page, then answers each target Host below with a response that
carries the body text or header value of one row of OONI's blocking-fingerprints
HTTP table (a regular expression row gets a short text it matches). Every
response comes from the same server with the same IP fields, so the analysis
reports a target as an HTTP blockpage only because its signature recognises
the response.

Where the behaviour comes from: {origin.label}, the rows named below (every
signature file repeats its row's citation). The capture is crafted with
`fingerprint.testing.craft`, not recorded: it proves that each imported
signature matches a finding carrying its row's pattern, not that the
blockpage is still served.

Regenerate with `fingerprint signatures import --with-fixtures`. Capture:
`{capture}`; expected report: `expected.json`.

| target Host | status | signature | OONI ids | CSV line |
|---|---|---|---|---|
{rows}
"""


def build_http_fixtures(plans: list[HttpFixturePlan], root: Path, origin: Origin, catalog: Catalog,
                        library: SignatureLibrary) -> tuple[list[str], list[str]]:
    """Write every planned HTTP fixture; (problems, notes).

    A problem: a signature whose rule does not match the finding its crafted response
    makes.  A note: the rule matches, but another signature that also matches that
    response takes the finding (a false-positive row suppresses it first, or one of two
    false-positive rows is credited): the dataset's rows overlap, which its user should
    know, and the overlap would hide the row in real measurements too.
    """
    problems: list[str] = []
    notes: list[str] = []
    control_name = catalog.control_domains[0] if catalog.control_domains else "example.com"
    for plan in plans:
        folder = root / plan.folder
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.iterdir():
            if old.is_file() and old.name.endswith(CAPTURE_SUFFIXES):
                old.unlink()
        capture = f"ooni-import-{plan.country}.pcapng.gz"
        write_http_capture(plan, folder / capture, control_name)
        (folder / "README.md").write_text(http_readme(plan, origin, control_name, capture),
                                          encoding="utf-8")
        result, report = analyze_plan(folder, library)
        report.pop("generated", None)
        (folder / "expected.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        verdicts = result.verdicts
        everything = [*verdicts.findings, *verdicts.suppressed, *verdicts.candidates]
        matched = {sig for f in [*verdicts.findings, *verdicts.suppressed] for sig in f.signatures}
        for item in plan.items:
            if item.id in matched:
                continue
            host = plan.names[item.id]
            sig = library.get(item.id)
            mine = [f for f in everything if f.target == host]
            taken = sorted({s for f in mine for s in f.signatures})
            if sig is not None and any(sig.matches(f) for f in mine) and taken:
                notes.append(f"{plan.folder}: {item.id} matches its crafted response for {host}, "
                             f"but {', '.join(taken)} takes that finding (overlapping rows)")
            else:
                problems.append(f"{plan.folder}: {item.id} does not match its crafted response "
                                f"for {host}")
    return problems, notes
