"""Import OONI's blocking-fingerprints CSVs as signature files.

ooni/blocking-fingerprints publishes two CSVs (`fingerprints_dns.csv`,
`fingerprints_http.csv`) with the columns `name, scope, other_names,
location_found, pattern_type, pattern, confidence_no_fp, expected_countries,
source, exp_url, notes`.  Each row becomes one signature:

* `location_found == dns`: a DNS-answer signature (techniques dns.redirect and
  dns.injection) over `dns.answer`, or over `dns.cname` when the pattern is
  a host name (the answer's CNAME target);
* `body` / `header.<name>`: an HTTP signature (technique http.blockpage) over
  `http.body` / `http.header.<name>`.

OONI's ids (`name`, `other_names`) are kept as aliases, `fp` rows become
false-positive signatures, `confidence_no_fp` (0-10 in the published files)
becomes `confidence` (divided by 10), and every file cites the dataset with its
commit and line.  A pattern is never changed: a row that the signature
language cannot express exactly is skipped with one line naming its row,
line, id and the reason.  Rows that repeat an earlier row's pattern are merged
into it (their ids become aliases), and rows a hand-written signature already
covers are skipped, so lint never sees overlapping twins.
"""

from __future__ import annotations

import csv
import ipaddress
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fingerprint.errors import InputError
from fingerprint.signature.library import Signature, SignatureLibrary
from fingerprint.signature.match import build_matcher

OONI_REPOSITORY = "ooni/blocking-fingerprints"
COLUMNS = ("name", "scope", "other_names", "location_found", "pattern_type", "pattern",
           "confidence_no_fp", "expected_countries", "source", "exp_url", "notes")
SCOPES = frozenset({"nat", "isp", "prod", "inst", "fp", "vbw", "injb", "prov"})
DNS_TECHNIQUES = ("dns.redirect", "dns.injection")
HTTP_TECHNIQUES = ("http.blockpage",)
TEXT_OPS = {"full": "equals", "prefix": "prefix", "contains": "contains", "regexp": "regex"}
MAX_CONFIDENCE_NO_FP = 10
"""The published files use 0-10 (Citizen Lab's scale); 10 means no known false positive."""

_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{2,80}$")
_FIELD_PART = re.compile(r"^[a-z0-9_-]+$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)+[a-z][a-z0-9-]*\.?$",
                       re.IGNORECASE)
_CSV_FIELD_LIMIT = 1 << 20


@dataclass(frozen=True)
class OoniRow:
    """One data row of a blocking-fingerprints CSV, exactly as published."""

    number: int
    """1-based data row (the header is not counted)."""
    line: int
    """Line of the file where the row starts (the header is line 1)."""
    values: dict[str, str]
    extra: str = ""
    """Cells beyond the header's columns (a malformed row), joined with commas."""

    def __getitem__(self, column: str) -> str:
        return self.values.get(column, "")

    @property
    def name(self) -> str:
        return self["name"]

    @property
    def other_names(self) -> list[str]:
        return [n.strip() for n in self["other_names"].split(",") if n.strip()]

    @property
    def where(self) -> str:
        return f"row {self.number} (line {self.line}, {self.name or 'unnamed'})"


@dataclass(frozen=True)
class Origin:
    """Which published file the rows come from, for the citation."""

    file: str
    commit: str | None = None

    @property
    def label(self) -> str:
        at = f" @ {self.commit}" if self.commit else " (commit not recorded)"
        return f"{OONI_REPOSITORY} {self.file}{at}"

    def url(self, line: int) -> str:
        ref = self.commit or "main"
        return f"https://github.com/{OONI_REPOSITORY}/blob/{ref}/{self.file}?plain=1#L{line}"


@dataclass(frozen=True)
class Skipped:
    row: OoniRow
    reason: str
    category: str
    """A short, countable kind of reason (for the summary)."""

    def text(self) -> str:
        return f"{self.row.where}: skipped: {self.reason}"


@dataclass
class Imported:
    id: str
    row: OoniRow
    kind: str
    """dns or http: the family of fields it matches."""
    document: dict[str, Any]
    key: str
    """The normalised rule (location + op + value), to find repeats."""
    merged: list[OoniRow] = field(default_factory=list)

    @property
    def address(self) -> str | None:
        """The exact address a DNS `full` row matches."""
        matcher = self.document["match"]["matchers"][0]
        if self.kind == "dns" and matcher["field"] == "dns.answer" and matcher["op"] == "equals":
            return str(matcher["value"])
        return None

    @property
    def cname(self) -> str | None:
        """The exact CNAME target a DNS `full` host-name row matches."""
        matcher = self.document["match"]["matchers"][0]
        if self.kind == "dns" and matcher["field"] == "dns.cname" and matcher["op"] == "equals":
            return str(matcher["value"])
        return None

    @property
    def fixture(self) -> str:
        return str(self.document["fixtures"]["positive"][0])


@dataclass
class ImportResult:
    origin: Origin
    imported: list[Imported] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    """Merges and notes, one line each (skips are in `skipped`)."""

    def lines(self) -> list[str]:
        return [s.text() for s in self.skipped] + self.messages

    def skip_reasons(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for s in self.skipped:
            counts[s.category] = counts.get(s.category, 0) + 1
        return counts


class Unexpressible(Exception):
    """The row cannot be written as a signature without changing its meaning."""

    def __init__(self, category: str, detail: str) -> None:
        super().__init__(detail)
        self.category = category


# --------------------------------------------------------------------- reading

def read_ooni_csv(path: str | Path) -> list[OoniRow]:
    """Rows of a blocking-fingerprints CSV; InputError when the file is not one."""
    where = str(path)
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            return parse_ooni_csv(handle, where)
    except OSError as exc:
        raise InputError(where, f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise InputError(where, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def parse_ooni_csv(lines: Iterable[str], where: str = "<csv>") -> list[OoniRow]:
    csv.field_size_limit(_CSV_FIELD_LIMIT)
    reader = csv.reader(lines)
    try:
        header = next(reader)
    except StopIteration:
        raise InputError(where, "empty file (expected the blocking-fingerprints header)") from None
    except csv.Error as exc:
        raise InputError(where, f"not CSV: {exc}", 1) from None
    header = [h.strip() for h in header]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        found = ", ".join(h for h in header if h) or "none"
        raise InputError(where, f"not a blocking-fingerprints CSV: missing column(s) {', '.join(missing)}"
                         f" (its header has: {found})", 1)
    rows: list[OoniRow] = []
    start = reader.line_num + 1
    number = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise InputError(where, f"malformed CSV: {exc}", start) from None
        if cells and any(c.strip() for c in cells):
            number += 1
            values = dict(zip(header, cells, strict=False))
            rows.append(OoniRow(number, start, values, ",".join(cells[len(header):])))
        start = reader.line_num + 1
    return rows


# ------------------------------------------------------------------ converting

def signature_id(name: str, taken: set[str]) -> str:
    """A schema-valid id for an OONI name (kept as is when already valid)."""
    candidate = name.strip().lower()
    candidate = re.sub(r"[^a-z0-9._-]+", "-", candidate).strip("-._")
    if not candidate or not candidate[0].isalnum():
        candidate = "ooni-" + candidate
    if len(candidate) < 3:
        candidate = f"ooni-{candidate}"
    candidate = candidate[:81]
    unique, n = candidate, 2
    while unique in taken or not _ID_PATTERN.match(unique):
        suffix = f"-{n}"
        unique = candidate[:81 - len(suffix)] + suffix
        n += 1
    return unique


def _confidence(row: OoniRow) -> float:
    text = row["confidence_no_fp"].strip()
    if not text:
        return 0.5
    try:
        value = int(text)
    except ValueError:
        raise Unexpressible("bad confidence_no_fp", f"confidence_no_fp {text!r} is not an integer") from None
    if not 0 <= value <= MAX_CONFIDENCE_NO_FP:
        raise Unexpressible("bad confidence_no_fp", f"confidence_no_fp {value} outside 0-{MAX_CONFIDENCE_NO_FP}")
    return round(value / MAX_CONFIDENCE_NO_FP, 2)


def _countries(row: OoniRow) -> list[str]:
    codes = [c.strip() for c in row["expected_countries"].split(",") if c.strip()]
    bad = [c for c in codes if not _COUNTRY.match(c)]
    if bad:
        raise Unexpressible("malformed country code", f"malformed country code(s) {', '.join(map(repr, bad))}")
    return list(dict.fromkeys(codes))


def _dns_matcher(row: OoniRow) -> dict[str, Any]:
    pattern_type, pattern = row["pattern_type"].strip(), row["pattern"]
    if pattern_type == "full":
        try:
            address = ipaddress.ip_address(pattern)
        except ValueError:
            if _HOSTNAME.match(pattern):
                # A host name is the target of a CNAME in the answer (a blockpage host).
                return {"field": "dns.cname", "op": "equals", "value": pattern.lower().rstrip(".")}
            raise Unexpressible("malformed address", f"malformed address {pattern!r}") from None
        # The parser prints addresses in their canonical form; an exact address stays exact.
        return {"field": "dns.answer", "op": "equals", "value": str(address)}
    if pattern_type in ("prefix", "contains", "regexp"):
        if not pattern:
            raise Unexpressible("empty pattern", "empty pattern")
        return _checked({"field": "dns.answer", "op": TEXT_OPS[pattern_type], "value": pattern})
    raise Unexpressible("unknown pattern_type", f"unknown pattern_type {pattern_type!r}")


def _http_field(location: str) -> str:
    if location == "body":
        return "http.body"
    header = location.removeprefix("header.").strip().lower()
    if not _FIELD_PART.match(header):
        raise Unexpressible("unusable header name", f"header name {header!r} cannot be a field name")
    return f"http.header.{header}"


def _http_matcher(row: OoniRow) -> dict[str, Any]:
    location = row["location_found"].strip()
    pattern_type, pattern = row["pattern_type"].strip(), row["pattern"]
    field_name = _http_field(location)
    if pattern_type not in TEXT_OPS:
        raise Unexpressible("unknown pattern_type", f"unknown pattern_type {pattern_type!r}")
    if not pattern:
        raise Unexpressible("empty pattern", "empty pattern")
    if pattern.isascii():
        return _checked({"field": field_name, "op": TEXT_OPS[pattern_type], "value": pattern})
    # Bodies and headers are read as latin-1 text; a non-ASCII pattern only keeps its
    # meaning as the exact UTF-8 bytes the CSV publishes.
    if field_name == "http.body" and pattern_type in ("contains", "full"):
        op = "bytes_contains" if pattern_type == "contains" else "bytes_equals"
        return _checked({"field": field_name, "op": op, "value": pattern.encode("utf-8").hex()})
    raise Unexpressible("non-ASCII pattern without a byte-exact operation",
                        f"non-ASCII {pattern_type} pattern on {location}: no byte-exact operation "
                        "for it")


def _checked(spec: dict[str, Any]) -> dict[str, Any]:
    try:
        build_matcher(spec)
    except ValueError as exc:
        raise Unexpressible("pattern refused by the matcher", f"{spec['op']} pattern refused: {exc}") from None
    return spec


def _references(row: OoniRow, origin: Origin) -> list[dict[str, str]]:
    values = " ".join(f"{c}={json.dumps(row[c], ensure_ascii=False)}" for c in
                      ("location_found", "pattern_type", "pattern", "scope", "confidence_no_fp",
                       "expected_countries"))
    refs = [{"source": f"{origin.label}, row {row.number} (line {row.line}): {row.name}",
             "url": origin.url(row.line), "values": values}]
    if row["exp_url"].strip():
        refs.append({"source": f"OONI Explorer measurement cited by {row.name} (exp_url)",
                     "url": row["exp_url"].strip()})
    for source in (s.strip() for s in row["source"].split(",")):
        if not source:
            continue
        if source.startswith(("http://", "https://")):
            refs.append({"source": f"source cited by {row.name}", "url": source})
        else:
            refs.append({"source": f"source of {row.name}: {source}"})
    return refs


def _title(row: OoniRow, kind: str, matcher: dict[str, Any], countries: list[str]) -> str:
    where = f" ({', '.join(countries)})" if countries else ""
    if kind == "dns":
        what = f"DNS answer {'CNAME ' if matcher['field'] == 'dns.cname' else ''}{row['pattern']}" \
            if row["pattern_type"] == "full" else \
            f"DNS answer {row['pattern_type']} {row['pattern']!r}"
    else:
        what = f"{row['location_found']} {row['pattern_type']} {row['pattern']!r}"
    label = "false positive" if row["scope"].strip() == "fp" else (row["scope"].strip() or "blocking")
    title = f"OONI {row.name}: {label}, {what}{where}"
    return title if len(title) <= 200 else title[:197] + "..."


def _description(row: OoniRow, kind: str, matcher: dict[str, Any]) -> str:
    parts: list[str] = []
    if row["notes"].strip():
        parts.append(f"OONI's note: {row['notes'].strip().rstrip('.')}.")
    if kind == "dns":
        parts.append("Imported from OONI's blocking-fingerprints DNS table: a DNS answer "
                     f"({row['pattern_type']} match) of {row['pattern']!r}.")
    else:
        parts.append(f"Imported from OONI's blocking-fingerprints HTTP table: {row['location_found']} "
                     f"{row['pattern_type']} {row['pattern']!r}.")
        if matcher["op"].startswith("bytes_"):
            parts.append("Matched as the pattern's exact UTF-8 bytes.")
        else:
            parts.append("OONI compares case-sensitively; fingerprint's text operations ignore case.")
    text = " ".join(parts)
    return text if len(text) <= 4000 else text[:3997] + "..."


def row_kind(row: OoniRow) -> str:
    location = row["location_found"].strip()
    if location == "dns":
        return "dns"
    if location == "body" or location.startswith("header."):
        return "http"
    raise Unexpressible("unknown location_found", f"unknown location_found {location!r}")


def default_fixture(kind: str, countries: list[str]) -> str:
    """The shared crafted fixture folder for imported rows of one country."""
    country = countries[0].lower() if countries else "zz"
    return f"pcaps/{kind}/ooni-import-{country}/"


def convert_row(row: OoniRow, origin: Origin, sig_id: str,
                fixture_for: Callable[[str, list[str]], str] = default_fixture) -> Imported:
    """One row as a signature document; Unexpressible when it cannot be written exactly."""
    if row.extra:
        raise Unexpressible("malformed row", f"more cells than columns (extra: {row.extra[:40]!r})")
    if not row.name.strip():
        raise Unexpressible("no name", "no name")
    kind = row_kind(row)
    scope = row["scope"].strip()
    if scope and scope not in SCOPES:
        raise Unexpressible("unknown scope", f"unknown scope {scope!r}")
    matcher = _dns_matcher(row) if kind == "dns" else _http_matcher(row)
    countries = _countries(row)
    confidence = _confidence(row)
    # Shared crafted fixtures prove exact addresses; any other pattern needs its own capture.
    exact = kind == "http" or matcher["op"] == "equals"
    aliases = list(dict.fromkeys([row.name.strip(), *row.other_names]))
    document: dict[str, Any] = {
        "id": sig_id,
        "schema_version": 1,
        "title": _title(row, kind, matcher, countries),
        "description": _description(row, kind, matcher),
        "kind": "false-positive" if scope == "fp" else "censor",
        "techniques": list(DNS_TECHNIQUES if kind == "dns" else HTTP_TECHNIQUES),
    }
    if scope:
        document["scope"] = scope
    if countries:
        document["countries"] = countries
    document.update({
        "status": "test",
        "confidence": confidence,
        "aliases": aliases,
        "references": _references(row, origin),
        "match": {"condition": "all", "matchers": [matcher]},
        "fixtures": {"positive": [fixture_for(kind, countries) if exact else
                                  f"pcaps/{kind}/ooni-import-{sig_id}/"]},
    })
    key = json.dumps([kind, matcher], sort_keys=True)
    return Imported(sig_id, row, kind, document, key)


# ------------------------------------------------------------------- coverage

def _exact_addresses(sig: Signature) -> set[str] | None:
    """Addresses a hand-written signature matches when its whole rule is one dns.answer test."""
    matchers = sig.data.get("match", {}).get("matchers", [])
    if len(matchers) != 1:
        return None
    m = matchers[0]
    if m.get("field") != "dns.answer" or m.get("negate"):
        return None
    out: set[str] = set()
    try:
        if m.get("op") == "equals":
            out.add(str(ipaddress.ip_address(str(m.get("value")))))
        elif m.get("op") == "one_of":
            out.update(str(ipaddress.ip_address(str(v))) for v in m.get("values", []))
        elif m.get("op") == "cidr":
            for cidr in m.get("values", []):
                net = ipaddress.ip_network(str(cidr), strict=False)
                if net.num_addresses != 1:
                    return None
                out.add(str(net.network_address))
        else:
            return None
    except ValueError:
        return None
    return out


def _covered_by(item: Imported, others: list[Signature]) -> str | None:
    names = {item.row.name.strip(), *item.row.other_names}
    techniques = set(item.document["techniques"])
    for sig in others:
        # OONI reuses names across its DNS and HTTP tables: only a claim in the same family counts.
        if not techniques & {t.value for t in sig.techniques}:
            continue
        claimed = names & set(sig.aliases)
        if claimed:
            return f"already covered by {sig.id} (lists {', '.join(sorted(claimed))} as an alias)"
    rule = item.document["match"]
    for sig in others:
        if sig.data.get("match") == rule:
            return f"already covered by {sig.id} (same match rule)"
        address = item.address
        exact = _exact_addresses(sig)
        if address is not None and exact is not None and address in exact:
            return f"already covered by {sig.id} (matches the same answer {address})"
    return None


def _also_in(item: Imported, others: list[Signature]) -> list[str]:
    """Hand-written signatures that test the same address among other fields (not twins)."""
    address = item.address
    if address is None:
        return []
    hits = []
    for sig in others:
        for m in sig.data.get("match", {}).get("matchers", []):
            if m.get("field") != "dns.answer":
                continue
            values = [m.get("value")] if m.get("op") == "equals" else m.get("values", []) \
                if m.get("op") == "one_of" else []
            if address in {str(v) for v in values}:
                hits.append(sig.id)
    return hits


# --------------------------------------------------------------------- import

def import_rows(rows: list[OoniRow], origin: Origin, existing: SignatureLibrary | None = None,
                fixture_for: Callable[[str, list[str]], str] = default_fixture,
                taken_ids: Iterable[str] = ()) -> ImportResult:
    """Convert every row; skipped and merged rows are reported, never dropped silently."""
    result = ImportResult(origin)
    others = list(existing.signatures) if existing is not None else []
    taken = {s.id for s in others} | set(taken_ids)
    by_key: dict[str, Imported] = {}
    for row in rows:
        try:
            item = convert_row(row, origin, signature_id(row.name or f"row-{row.number}", taken),
                               fixture_for)
        except Unexpressible as exc:
            result.skipped.append(Skipped(row, str(exc), exc.category))
            continue
        covered = _covered_by(item, others)
        if covered:
            result.skipped.append(Skipped(row, covered, "already covered by a hand-written signature"))
            continue
        first = by_key.get(item.key)
        if first is not None:
            _merge(first, item, origin)
            result.messages.append(f"{row.where}: merged into {first.id} (same "
                                   f"{row['location_found']} {row['pattern_type']} pattern as "
                                   f"{first.row.where}); kept as an alias")
            continue
        for other in _also_in(item, others):
            result.messages.append(f"{row.where}: note: {other} also tests this answer "
                                   "(with other fields), both are kept")
        taken.add(item.id)
        if item.id != row.name.strip():
            result.messages.append(f"{row.where}: id {row.name!r} is not a valid signature id; "
                                   f"written as {item.id} (the original stays an alias)")
        by_key[item.key] = item
        result.imported.append(item)
    return result


def _merge(first: Imported, repeat: Imported, origin: Origin) -> None:
    doc = first.document
    doc["aliases"] = list(dict.fromkeys([*doc["aliases"], *repeat.document["aliases"]]))
    countries = list(dict.fromkeys([*doc.get("countries", []), *repeat.document.get("countries", [])]))
    if countries:
        doc["countries"] = countries
    doc["references"].extend(repeat.document["references"])
    row = repeat.row
    note = (f" The same pattern is also OONI's {row.name} (scope {row['scope'] or '-'}, "
            f"confidence_no_fp {row['confidence_no_fp'] or '-'}, countries "
            f"{row['expected_countries'] or '-'}).")
    doc["description"] = (doc["description"] + note)[:4000]
    first.merged.append(row)


# ----------------------------------------------------------------------- output

def to_yaml(item: Imported, origin: Origin) -> str:
    header = (f"# Imported from {origin.label}, {item.row.where},\n# by `fingerprint signatures "
              "import`: fix the row upstream or re-run the import rather than editing by hand.\n")
    body = yaml.safe_dump(item.document, sort_keys=False, allow_unicode=True, width=100,
                          default_flow_style=False)
    return header + body


def write_signatures(result: ImportResult, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for item in result.imported:
        path = out_dir / f"{item.id}.yaml"
        path.write_text(to_yaml(item, result.origin), encoding="utf-8")
        written.append(path)
    return written
