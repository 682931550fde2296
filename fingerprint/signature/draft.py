"""Draft a signature from a capture (`fingerprint signatures new --from CAPTURE`).

The capture is analysed as `fingerprint analyze` would; the finding chosen
(the first with injected packets, unless `--technique` / `--target` say
otherwise) gives the draft its technique and its matchers: the fields of the
packets flagged as injected (IP ID, a TTL range around the observed value
within its initial TTL's band, DF, TCP flags / window / zero sequence number,
payload bytes, DNS answer and flags) and of the finding (injected.count, HTTP
status / Location / page title, certificate issuer).  What only a person can
say (id, title, the published source) is left as a TODO placeholder, which
`fingerprint signatures lint` reports until it is filled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fingerprint._yaml import LocatedYaml, load_located_yaml
from fingerprint.analysis.evidence import INITIAL_TTLS, initial_ttl
from fingerprint.analysis.findings import Finding
from fingerprint.analysis.pipeline import analyze_files
from fingerprint.catalog import Catalog
from fingerprint.errors import InputError
from fingerprint.signature.library import Signature, SignatureLibrary
from fingerprint.testing.fixtures import CAPTURE_SUFFIXES
from fingerprint.trust import TrustStore

PLACEHOLDER = "TODO"
TTL_SLACK = 4
"""Hops a censor's packets may vary by between vantage points on the same path."""
MAX_PAYLOAD_EQUALS = 64
"""Longer payloads are drafted as `bytes_contains` of their first bytes."""
PAYLOAD_PREFIX = 32
_TITLE = re.compile(rb"<title[^>]*>(.{1,120}?)</title>", re.IGNORECASE | re.DOTALL)
PLACEHOLDER_FIELDS = ("id", "title", "description", "author", "references", "fixtures")


@dataclass
class Draft:
    text: str
    finding: Finding
    fixture: str
    others: list[str] = field(default_factory=list)
    """The other findings of the capture, one line each (to pick another with --technique)."""


@dataclass(frozen=True)
class DraftMatcher:
    spec: dict[str, Any]
    comment: str = ""


def placeholder_problems(sig: Signature) -> list[str]:
    """Lint lines for TODO placeholders a draft leaves (id, title, references, ...)."""
    return document_placeholder_problems(load_located_yaml(sig.path))


def document_placeholder_problems(doc: LocatedYaml) -> list[str]:
    """The same for a document that does not load (a fresh draft never does)."""
    data = doc.data if isinstance(doc.data, dict) else {}
    problems = []
    for key in PLACEHOLDER_FIELDS:
        if PLACEHOLDER in _flatten(data.get(key)):
            line = doc.line_of([key])
            where = f"{doc.path}:{line}" if line is not None else doc.path
            problems.append(f"{where}: {key} still holds a {PLACEHOLDER} placeholder")
    return problems


def _flatten(value: Any) -> str:
    if isinstance(value, dict):
        return " ".join(_flatten(v) for v in value.values())
    if isinstance(value, list | tuple):
        return " ".join(_flatten(v) for v in value)
    return str(value) if value is not None else ""


# ----------------------------------------------------------------- choosing

def choose_finding(findings: list[Finding], technique: str | None,
                   target: str | None) -> tuple[Finding | None, list[Finding]]:
    pool = [f for f in findings
            if (technique is None or f.technique.value == technique)
            and (target is None or f.target == target or f.address == target)]
    # Injected packets carry the censor's own fields; a finding without them says less.
    ranked = sorted(pool, key=lambda f: (not any(e.injected for e in f.evidence),
                                         bool(f.context.get("candidate")), -f.confidence))
    return (ranked[0] if ranked else None), ranked[1:]


# ----------------------------------------------------------------- matchers

def _same(values: list[Any]) -> bool:
    return bool(values) and all(v == values[0] for v in values)


def _ttl_matcher(ttls: list[int]) -> DraftMatcher:
    top = initial_ttl(max(ttls))
    lower_band = max((t for t in INITIAL_TTLS if t < top), default=0) + 1
    low = max(lower_band, min(ttls) - TTL_SLACK)
    high = min(top, max(ttls) + TTL_SLACK)
    seen = ", ".join(str(t) for t in sorted(set(ttls)))
    return DraftMatcher({"field": "ip.ttl", "op": "range", "min": low, "max": high},
                        f"observed TTL {seen}; initial TTL {top}")


def _packet_matchers(packets: list[dict[str, Any]], role: str) -> list[DraftMatcher]:
    out: list[DraftMatcher] = []
    n = len(packets)
    plural = f"all {n} {role} packets" if n > 1 else f"the {role} packet"

    def values(name: str) -> list[Any]:
        return [p[name] for p in packets if p.get(name) is not None]

    ttls = values("ip.ttl")
    if ttls:
        out.append(_ttl_matcher(ttls))
    ids = values("ip.id")
    if ids and len(ids) == n and _same(ids):
        note = f"same in {plural}" if n > 1 else "one packet: drop this if the censor randomises it"
        out.append(DraftMatcher({"field": "ip.id", "op": "equals", "value": ids[0]}, note))
    dfs = [p["ip.df"] for p in packets if p.get("ip.version") == 4 and "ip.df" in p]
    if dfs and len(dfs) == n and _same(dfs):
        out.append(DraftMatcher({"field": "ip.df", "op": "equals", "value": bool(dfs[0])},
                                f"DF {'set' if dfs[0] else 'unset'} in {plural}"))
    flags = values("tcp.flags")
    if flags:
        distinct = list(dict.fromkeys(flags))
        if len(distinct) == 1:
            out.append(DraftMatcher({"field": "tcp.flags", "op": "equals", "value": distinct[0]}))
        else:
            out.append(DraftMatcher({"field": "tcp.flags", "op": "one_of", "values": distinct},
                                    "flags differ between the packets"))
    windows = values("tcp.window")
    if windows and _same(windows):
        out.append(DraftMatcher({"field": "tcp.window", "op": "equals", "value": windows[0]}))
    seqs = values("tcp.seq")
    if seqs and all(s == 0 for s in seqs):
        out.append(DraftMatcher({"field": "tcp.seq", "op": "equals", "value": 0},
                                "sequence number 0: the injector does not track the flow"))
    payloads = list(dict.fromkeys(p for p in values("tcp.payload") if p))
    if len(payloads) == 1:
        data = bytes(payloads[0])
        if len(data) <= MAX_PAYLOAD_EQUALS:
            out.append(DraftMatcher({"field": "tcp.payload", "op": "bytes_equals", "value": data.hex()},
                                    f"payload {data[:40]!r}"))
        else:
            head = data[:PAYLOAD_PREFIX]
            out.append(DraftMatcher({"field": "tcp.payload", "op": "bytes_contains",
                                     "value": head.hex()},
                                    f"first {len(head)} of {len(data)} payload bytes {head!r}"))
    if role == "injected":
        dns_flags = values("dns.flags")
        if dns_flags and _same(dns_flags):
            out.append(DraftMatcher({"field": "dns.flags", "op": "equals", "value": dns_flags[0]},
                                    f"DNS flags 0x{dns_flags[0]:04x}"))
    return out


def _answer_matcher(finding: Finding, packets: list[dict[str, Any]]) -> DraftMatcher | None:
    answers = list(finding.context.get("dns.answer") or [])
    if not answers:
        for p in packets:
            answers.extend(a for a in p.get("dns.answer", []) if a not in answers)
    if not answers:
        return None
    if len(answers) == 1:
        return DraftMatcher({"field": "dns.answer", "op": "equals", "value": answers[0]})
    return DraftMatcher({"field": "dns.answer", "op": "one_of", "values": answers})


def _context_matchers(finding: Finding, injected: int) -> list[DraftMatcher]:
    ctx = finding.context
    out: list[DraftMatcher] = []
    if injected and ctx.get("injected.count") is not None:
        out.append(DraftMatcher({"field": "injected.count", "op": "equals",
                                 "value": int(ctx["injected.count"])}))
    if ctx.get("http.status") is not None:
        out.append(DraftMatcher({"field": "http.status", "op": "equals", "value": int(ctx["http.status"])}))
    if ctx.get("http.header.location"):
        out.append(DraftMatcher({"field": "http.header.location", "op": "equals",
                                 "value": str(ctx["http.header.location"])}))
    body = ctx.get("http.body")
    if isinstance(body, bytes) and body:
        title = _TITLE.search(body)
        snippet = title.group(0) if title else body[:PAYLOAD_PREFIX]
        text = snippet.decode("latin-1")
        if text.isprintable():
            out.append(DraftMatcher({"field": "http.body", "op": "contains", "value": text},
                                    "the page title" if title else "the start of the page"))
        else:
            out.append(DraftMatcher({"field": "http.body", "op": "bytes_contains", "value": snippet.hex()}))
    if ctx.get("tls.cert.issuer"):
        out.append(DraftMatcher({"field": "tls.cert.issuer", "op": "equals",
                                 "value": str(ctx["tls.cert.issuer"])}))
    return out


ANSWER_TECHNIQUES = frozenset({"dns.redirect", "dns.nxdomain", "dns.error", "http.blockpage", "tls.mitm"})
"""Techniques whose un-injected response packets are the resolver's or server's own: their IP
fields describe that host, not the censor, so only the answer's content is drafted."""


def draft_matchers(finding: Finding) -> list[DraftMatcher]:
    injected = [e.fields for e in finding.evidence if e.role == "injected"]
    responses = [e.fields for e in finding.evidence if e.role == "response"]
    if finding.technique.value in ANSWER_TECHNIQUES:
        responses = []
    packets, role = (injected, "injected") if injected else (responses, "response")
    matchers = _packet_matchers(packets, role) if packets else []
    if finding.technique.value.startswith("dns."):
        answer = _answer_matcher(finding, packets)
        if answer is not None:
            matchers.insert(0, answer)
    matchers.extend(_context_matchers(finding, len(injected)))
    if not matchers:
        # Schema-invalid on purpose: lint fails until someone writes the rule.
        matchers.append(DraftMatcher({"field": f"{PLACEHOLDER}.field", "op": "exists"},
                                     f"{PLACEHOLDER}: nothing censor-specific was observed; "
                                     "write the rule by hand"))
    return matchers[:32]


# ------------------------------------------------------------------- output

def fixture_reference(capture: Path) -> str:
    """The fixture folder holding `capture`, relative to the folder that holds `pcaps/`."""
    folder = (capture if capture.is_dir() else capture.parent).resolve()
    for parent in folder.parents:
        if parent.name == "pcaps":
            return f"{folder.relative_to(parent.parent).as_posix()}/"
    return f"pcaps/{PLACEHOLDER}-move-{folder.name}-into-a-fixture-folder/"


def _inline(value: Any) -> str:
    dumped = yaml.safe_dump(value, default_flow_style=True, width=1 << 20, allow_unicode=True,
                            sort_keys=False)
    return dumped.strip().removesuffix("...").strip()


def render_draft(finding: Finding, capture: Path, fixture: str, technique: str | None,
                 sig_id: str | None) -> str:
    matchers = draft_matchers(finding)
    observed = "; ".join(e.text() for e in finding.evidence if e.role in ("injected", "response"))[:600]
    notes = "; ".join(finding.notes)
    description = (f"Drafted by `fingerprint signatures new` from {capture.name}: {finding.technique.value} "
                   f"on {finding.target}" + (f" via {finding.address}" if finding.address else "")
                   + (f" ({notes})." if notes else "."))
    lines = [
        f"# Draft signature from {capture} ({finding.technique.value} on {finding.target}).",
        "# Review every matcher: keep the fields that identify this censor, drop those that only",
        "# describe this capture. Replace each TODO, save as signatures/<technique family>/<id>.yaml,",
        "# then run `fingerprint signatures lint` and `fingerprint signatures test`.",
        f"id: {_inline(sig_id) if sig_id else PLACEHOLDER + '-signature-id'}"
        "  # lowercase, equal to the file name",
        "schema_version: 1",
        f"title: {_inline(PLACEHOLDER + ': which censor, network and year')}",
        f"description: {_inline(description)}",
        "kind: censor",
        f"techniques: [{technique or finding.technique.value}]",
        "status: experimental",
        "confidence: 0.5  # how specific the rule is (0-1): exact injector fields score higher",
        "references:",
        f"  - source: {_inline(PLACEHOLDER + ': the paper, report or dataset that publishes this')}",
        f"    url: {_inline(PLACEHOLDER)}",
        f"    values: {_inline('observed: ' + observed) if observed else _inline(PLACEHOLDER)}",
        "match:",
        "  condition: all",
        "  matchers:",
    ]
    for m in matchers:
        if m.comment:
            lines.append(f"    # {m.comment}")
        lines.append(f"    - {_inline(m.spec)}")
    lines += ["fixtures:", "  positive:", f"    - {_inline(fixture)}", ""]
    return "\n".join(lines)


def _capture_file(path: Path) -> Path:
    if path.is_dir():
        captures = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(CAPTURE_SUFFIXES))
        if len(captures) != 1:
            raise InputError(str(path), f"a fixture folder holds exactly one capture, found {len(captures)}")
        return captures[0]
    if not path.exists():
        raise InputError(str(path), "no such capture file or fixture folder")
    return path


def draft_from_capture(path: Path, catalog: Catalog, library: SignatureLibrary, trust: TrustStore,
                       technique: str | None = None, target: str | None = None,
                       sig_id: str | None = None) -> Draft:
    """Analyse `path` (a capture or a fixture folder) and draft a signature from one finding."""
    capture = _capture_file(path)
    result = analyze_files([str(capture)], catalog, library, trust, on_problem=lambda _line: None)
    if result.failed_inputs:
        raise InputError(str(capture), "; ".join(result.problems) or "cannot be read")
    findings = list(result.verdicts.findings) + list(result.verdicts.candidates)
    chosen, others = choose_finding(findings, technique, target)
    if chosen is None:
        seen = sorted({f"{f.technique.value} on {f.target}" for f in findings})
        wanted = " ".join(x for x in (technique and f"technique {technique}",
                                      target and f"target {target}") if x) or "any finding"
        raise InputError(str(capture), f"no finding to draft from ({wanted}); the capture shows: "
                         f"{', '.join(seen) or 'nothing blocked'}")
    fixture = fixture_reference(path)
    text = render_draft(chosen, capture, fixture, technique, sig_id)
    return Draft(text, chosen, fixture,
                 [f"{f.technique.value} on {f.target} ({f.platform})" for f in others])
