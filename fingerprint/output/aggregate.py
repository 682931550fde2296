"""Combining measurements from many runs into a platform x technique matrix per network.

A network is (probe_asn, probe_cc), and for `lab run` measurements the lab
scenario too: an emulated vantage point is never mixed with a real one.  A run is one probe / analyze invocation
(`x_fingerprint.run_id`).  Counts are over runs, not measurements: a platform
tested through four domains in one run counts once, so "3/5" reads "seen in
3 of the 5 runs that tested this platform".

Input is read line by line and every valid line is used; a line that is not
JSON (a run killed mid-write leaves a cut last line), not an object, or not a
fingerprint measurement is skipped and named with its file and line number.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fingerprint.errors import InputError
from fingerprint.model import Status

__all__ = ["AGGREGATE_SCHEMA", "Aggregate", "Cell", "EvidenceRef", "Network", "PlatformRow",
           "Skipped", "aggregate", "http_page", "read_measurements"]

AGGREGATE_SCHEMA = "fingerprint.aggregate/1"
MAX_REFS_PER_CELL = 20
"""Evidence kept per cell for the rendered report (counts always cover every run)."""
MAX_SKIPPED_IN_JSON = 100
_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_RANK = {Status.ACCESSIBLE.value: 0, Status.INCONCLUSIVE.value: 1, Status.BLOCKED.value: 2}


@dataclass(slots=True, frozen=True)
class Skipped:
    path: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: skipped: {self.reason}" if self.line \
            else f"{self.path}: skipped: {self.reason}"


@dataclass(slots=True, frozen=True)
class Loaded:
    path: str
    line: int
    measurement: dict[str, Any]


def _why_not_ours(data: Any) -> str | None:
    if not isinstance(data, dict):
        return f"a JSON {type(data).__name__}, not a measurement object"
    if data.get("software_name") != "fingerprint":
        name = data.get("software_name")
        return (f"a measurement of another tool (software_name {name!r})" if name
                else "not an OONI-format measurement (no software_name)")
    keys = data.get("test_keys")
    x_fp = keys.get("x_fingerprint") if isinstance(keys, dict) else None
    if not isinstance(x_fp, dict):
        return "fingerprint measurement without test_keys.x_fingerprint"
    for name, kind in (("platform", str), ("status", str), ("findings", list)):
        if not isinstance(x_fp.get(name), kind):
            return f"x_fingerprint.{name} is missing or not a {kind.__name__}"
    try:
        _parse_time(data.get("measurement_start_time"))
    except ValueError:
        return f"measurement_start_time {data.get('measurement_start_time')!r} is not " \
               "YYYY-MM-DD hh:mm:ss"
    return None


def _parse_time(value: Any) -> dt.datetime:
    if not isinstance(value, str):
        raise ValueError(value)
    return dt.datetime.strptime(value, _TIME_FORMAT).replace(tzinfo=dt.UTC)


def read_measurements(paths: Iterable[str], on_skip: Callable[[Skipped], None]
                      ) -> Iterator[Loaded]:
    """Every fingerprint measurement of the JSONL files, in order; the rest goes to `on_skip`.

    A file that cannot be opened is reported through `on_skip` too (line 0),
    so one bad path never loses the other files.
    """
    for path in paths:
        try:
            handle = open(path, "rb")
        except OSError as exc:
            on_skip(Skipped(path, 0, f"cannot open: {exc.strerror or exc}"))
            continue
        with handle:
            lines = 0
            for number, raw in enumerate(handle, start=1):
                lines = number
                if not raw.strip():
                    continue
                try:
                    data = json.loads(raw)
                except UnicodeDecodeError:
                    on_skip(Skipped(path, number, "not UTF-8 text"))
                    continue
                except json.JSONDecodeError as exc:
                    cut = not raw.endswith(b"\n")
                    on_skip(Skipped(path, number, "not valid JSON" + (
                        " (the line is cut short: a run stopped while writing?)" if cut
                        else f" ({exc.msg} at column {exc.colno})")))
                    continue
                except (ValueError, RecursionError):
                    on_skip(Skipped(path, number, "not valid JSON (nested too deeply)"))
                    continue
                why = _why_not_ours(data)
                if why is not None:
                    on_skip(Skipped(path, number, why))
                    continue
                yield Loaded(path, number, data)
            if lines == 0:
                on_skip(Skipped(path, 0, "empty file"))


# --------------------------------------------------------------------------- model

@dataclass(slots=True)
class EvidenceRef:
    """Where the proof of one finding is: the measurement's line and the packets."""

    file: str
    line: int
    run: str
    time: str
    target: str
    technique: str
    confidence: float
    signatures: list[str]
    notes: list[str]
    packets: list[dict[str, Any]]
    pcap: str | None
    page: dict[str, Any] | None = None
    """For an HTTP finding, the response the target got (`http_page`)."""

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    def to_json(self) -> dict[str, Any]:
        out = {"file": self.file, "line": self.line, "run": self.run, "time": self.time,
               "target": self.target, "technique": self.technique,
               "confidence": self.confidence, "signatures": self.signatures,
               "evidence": self.notes, "packets": self.packets, "pcap": self.pcap}
        if self.page is not None:
            out["page"] = self.page
        return out


@dataclass(slots=True)
class Cell:
    technique: str
    runs: set[str] = field(default_factory=set)
    first_seen: str = ""
    last_seen: str = ""
    targets: Counter[str] = field(default_factory=Counter)
    signatures: Counter[str] = field(default_factory=Counter)
    max_confidence: float = 0.0
    evidence: list[EvidenceRef] = field(default_factory=list)
    evidence_total: int = 0

    def add(self, ref: EvidenceRef) -> None:
        self.runs.add(ref.run)
        self.first_seen = min(self.first_seen or ref.time, ref.time)
        self.last_seen = max(self.last_seen, ref.time)
        self.targets[ref.target] += 1
        self.signatures.update(ref.signatures)
        self.max_confidence = max(self.max_confidence, ref.confidence)
        self.evidence_total += 1
        if len(self.evidence) < MAX_REFS_PER_CELL:
            self.evidence.append(ref)


@dataclass(slots=True)
class PlatformRow:
    platform: str
    name: str
    runs: dict[str, str] = field(default_factory=dict)
    """run id -> status of the platform in that run (worst over its measurements)."""
    run_times: dict[str, str] = field(default_factory=dict)
    cells: dict[str, Cell] = field(default_factory=dict)
    targets: set[str] = field(default_factory=set)

    def timeline(self) -> list[tuple[str, str, str]]:
        """(time, run id, status) in time order."""
        return sorted((self.run_times[run], run, status) for run, status in self.runs.items())

    @property
    def latest_status(self) -> str:
        line = self.timeline()
        return line[-1][2] if line else Status.INCONCLUSIVE.value

    def status_counts(self) -> Counter[str]:
        return Counter(self.runs.values())


@dataclass(slots=True)
class Network:
    asn: str
    cc: str
    lab_scenario: str = ""
    """Set for `lab run` measurements: the vantage point is emulated, kept apart from real ones."""
    rows: dict[str, PlatformRow] = field(default_factory=dict)
    runs: dict[str, str] = field(default_factory=dict)
    """run id -> its start time."""
    measurements: int = 0
    sources: Counter[str] = field(default_factory=Counter)

    @property
    def key(self) -> str:
        return f"{self.asn} {self.cc}" + (f" (lab: {self.lab_scenario})" if self.lab_scenario else "")

    @property
    def techniques(self) -> list[str]:
        seen = {t for row in self.rows.values() for t in row.cells}
        return sorted(seen)

    @property
    def first_time(self) -> str:
        return min(self.runs.values(), default="")

    @property
    def last_time(self) -> str:
        return max(self.runs.values(), default="")


@dataclass(slots=True)
class Aggregate:
    networks: dict[tuple[str, str, str], Network] = field(default_factory=dict)
    measurements: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    skipped_total: int = 0
    files: list[str] = field(default_factory=list)

    @property
    def blocked(self) -> bool:
        return any(status == Status.BLOCKED.value for net in self.networks.values()
                   for row in net.rows.values() for status in row.runs.values())

    def ordered_networks(self) -> list[Network]:
        """By AS number, then country."""
        def key(item: tuple[str, str, str]) -> tuple[int, str, str, str]:
            digits = item[0].removeprefix("AS")
            return (int(digits) if digits.isdigit() else -1, *item)
        return [self.networks[k] for k in sorted(self.networks, key=key)]

    def to_json(self) -> dict[str, Any]:
        nets = []
        for net in self.ordered_networks():
            rows = []
            for row in sorted(net.rows.values(), key=lambda r: r.platform):
                rows.append({
                    "platform": row.platform, "name": row.name,
                    "runs_tested": len(row.runs), "latest_status": row.latest_status,
                    "status_counts": dict(row.status_counts()),
                    "targets": sorted(row.targets),
                    "timeline": [{"time": t, "run": r, "status": s} for t, r, s in row.timeline()],
                    "techniques": {
                        tech: {"runs_seen": len(cell.runs), "runs_tested": len(row.runs),
                               "first_seen": cell.first_seen, "last_seen": cell.last_seen,
                               "targets": dict(cell.targets),
                               "signatures": dict(cell.signatures.most_common()),
                               "max_confidence": cell.max_confidence,
                               "evidence_total": cell.evidence_total,
                               "evidence": [e.to_json() for e in cell.evidence]}
                        for tech, cell in sorted(row.cells.items())},
                })
            nets.append({"probe_asn": net.asn, "probe_cc": net.cc,
                         **({"lab_scenario": net.lab_scenario} if net.lab_scenario else {}),
                         "runs": len(net.runs),
                         "measurements": net.measurements, "first": net.first_time,
                         "last": net.last_time, "sources": dict(net.sources),
                         "techniques": net.techniques, "platforms": rows})
        return {"schema": AGGREGATE_SCHEMA, "files": self.files, "measurements": self.measurements,
                "skipped_lines": self.skipped_total,
                "skipped": [str(s) for s in self.skipped[:MAX_SKIPPED_IN_JSON]], "networks": nets}


# --------------------------------------------------------------------------- building

def _run_of(loaded: Loaded) -> str:
    x_fp = loaded.measurement["test_keys"]["x_fingerprint"]
    run = x_fp.get("run_id")
    if isinstance(run, str) and run:
        return run
    # Measurements of one invocation share test_start_time; the file tells apart two
    # invocations that started in the same second elsewhere.
    return f"{loaded.path}@{loaded.measurement.get('test_start_time')}"


def _str_list(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _add(agg: Aggregate, loaded: Loaded) -> None:
    m = loaded.measurement
    x_fp: dict[str, Any] = m["test_keys"]["x_fingerprint"]
    asn = str(m.get("probe_asn") or "AS0")
    cc = str(m.get("probe_cc") or "ZZ")
    annotations = m.get("annotations")
    lab = ""
    if isinstance(annotations, dict) and annotations.get("fingerprint_source") == "lab":
        lab = str(annotations.get("fingerprint_lab_scenario") or "?")
    net = agg.networks.get((asn, cc, lab))
    if net is None:
        net = agg.networks[(asn, cc, lab)] = Network(asn, cc, lab)
    run = _run_of(loaded)
    run_time = str(m.get("test_start_time") or m["measurement_start_time"])
    time = str(m["measurement_start_time"])
    net.runs[run] = min(net.runs.get(run, run_time), run_time)
    net.measurements += 1
    net.sources[str(x_fp.get("source", "?"))] += 1
    platform = str(x_fp["platform"])
    row = net.rows.get(platform)
    if row is None:
        row = net.rows[platform] = PlatformRow(platform, str(x_fp.get("platform_name", platform)))
    status = str(x_fp.get("platform_status") or x_fp["status"])
    previous = row.runs.get(run)
    if previous is None or _RANK.get(status, 0) > _RANK.get(previous, 0):
        row.runs[run] = status
    row.run_times[run] = net.runs[run]
    row.targets.add(str(x_fp.get("target", m.get("input", ""))))
    pcap = x_fp.get("evidence_pcap") if isinstance(x_fp.get("evidence_pcap"), str) else None
    for finding in x_fp["findings"]:
        if not isinstance(finding, dict) or not isinstance(finding.get("technique"), str):
            continue
        technique = finding["technique"]
        cell = row.cells.get(technique)
        if cell is None:
            cell = row.cells[technique] = Cell(technique)
        confidence = finding.get("confidence")
        packets = finding.get("packets")
        cell.add(EvidenceRef(
            file=loaded.path, line=loaded.line, run=run, time=time,
            target=str(finding.get("target", m.get("input", ""))), technique=technique,
            confidence=float(confidence) if isinstance(confidence, int | float) else 0.0,
            signatures=_str_list(finding.get("signatures")),
            notes=_str_list(finding.get("evidence")),
            packets=[p for p in packets if isinstance(p, dict)] if isinstance(packets, list)
            else [], pcap=pcap,
            page=http_page(m["test_keys"], str(finding.get("target", "")))
            if technique.startswith("http.") else None))


PAGE_EXCERPT_CHARS = 600
"""Body characters an HTTP finding's evidence shows (a blockpage's text fits; an
arbitrary page stays bounded)."""
MAX_PAGE_HEADERS = 8
_TELLING_HEADERS = ("location", "refresh", "server", "via", "content-type", "content-length")
"""Headers that tell a blockpage or a censor's redirect from the site's own answer (with
every X-* header): where it sends the user, which box answered, what was sent."""


def _text(value: Any) -> str | None:
    """df-001 MaybeBinaryData as text (None for base64 data)."""
    return value if isinstance(value, str) else None


def http_page(test_keys: dict[str, Any], target: str) -> dict[str, Any] | None:
    """The response of the first target request to `target` that got one, bounded for
    display: status line, telling headers, body excerpt.  None when no response came."""
    requests = test_keys.get("requests")
    if not isinstance(requests, list):
        return None
    for request in requests:
        if not isinstance(request, dict) or request.get("tags") != ["target"]:
            continue
        response = request.get("response")
        sent = request.get("request")
        if not isinstance(response, dict) or not isinstance(sent, dict):
            continue
        code = response.get("code")
        url = sent.get("url")
        if not isinstance(code, int) or code <= 0 or not isinstance(url, str):
            continue
        host = url.split("://", 1)[-1].split("/", 1)[0]
        if target and host.lower() != target.lower():
            continue
        headers: list[list[str]] = []
        for pair in response.get("headers_list") or []:
            if not (isinstance(pair, list) and len(pair) == 2):
                continue
            name, value = _text(pair[0]), _text(pair[1])
            if name is None or value is None:
                continue
            if name.lower() in _TELLING_HEADERS or name.lower().startswith("x-"):
                headers.append([name, value[:200]])
        body = response.get("body")
        text = _text(body)
        length = response.get("x_body_length")
        if not isinstance(length, int):
            length = len(text.encode("utf-8")) if text is not None else 0
        status_line = response.get("x_status_line")
        return {
            "url": url,
            "status_line": status_line if isinstance(status_line, str) else f"HTTP {code}",
            "headers": headers[:MAX_PAGE_HEADERS],
            "body_excerpt": text[:PAGE_EXCERPT_CHARS] if text is not None else "",
            "body_is_binary": text is None and bool(body),
            "body_length": length,
            "excerpt_is_partial": (text is not None and len(text) > PAGE_EXCERPT_CHARS)
            or bool(response.get("body_is_truncated")),
        }
    return None


MAX_SKIPPED_KEPT = 1000


def aggregate(paths: list[str], on_skip: Callable[[Skipped], None] | None = None,
              on_file: Callable[[str], None] | None = None) -> Aggregate:
    """Read and combine the JSONL files; skipped lines are kept (bounded) and passed on."""
    agg = Aggregate(files=[str(p) for p in paths])

    def skip(item: Skipped) -> None:
        agg.skipped_total += 1
        if len(agg.skipped) < MAX_SKIPPED_KEPT:
            agg.skipped.append(item)
        if on_skip is not None:
            on_skip(item)

    for path in paths:
        if on_file is not None:
            on_file(path)
        for loaded in read_measurements([path], skip):
            _add(agg, loaded)
            agg.measurements += 1
    return agg


def require_files(paths: Iterable[str]) -> list[str]:
    """Paths as given; a directory is an input error (the report reads files)."""
    out = []
    for path in paths:
        if Path(path).is_dir():
            raise InputError(path, "is a directory; pass the .jsonl files")
        out.append(path)
    return out


def cell_anchor(net: Network, platform: str, technique: str) -> str:
    """A stable HTML/Markdown anchor for one cell's evidence."""
    lab = f"-lab-{net.lab_scenario}" if net.lab_scenario else ""
    raw = f"ev-{net.asn}-{net.cc}{lab}-{platform}-{technique}".lower()
    return "".join(ch if ch.isalnum() or ch == "-" else "-" for ch in raw)


def rows_in_order(net: Network) -> list[PlatformRow]:
    """Blocked platforms first, then by name."""
    return sorted(net.rows.values(), key=lambda r: (-_RANK.get(r.latest_status, 0), r.name.lower()))


def packet_line(packet: dict[str, Any]) -> str:
    """One evidence packet (x_fingerprint finding `packets` item) as text."""
    where = f"{packet.get('capture')}#{packet.get('frame')}" if packet.get("capture") \
        else f"#{packet.get('frame')}"
    src = str(packet.get("src", "?")) + (f":{packet['sport']}" if packet.get("sport") else "")
    dst = str(packet.get("dst", "?")) + (f":{packet['dport']}" if packet.get("dport") else "")
    parts = [where, str(packet.get("role", "")), f"{src} > {dst}", f"ttl={packet.get('ip_ttl')}"]
    if "ip_id" in packet:
        parts.append(f"id={packet['ip_id']}")
    if "tcp_flags" in packet:
        parts.append(f"tcp {packet['tcp_flags'] or '-'} win={packet.get('window')}")
    if "icmp_type" in packet:
        parts.append(f"icmp {packet['icmp_type']}/{packet.get('icmp_code')}")
    if "dns_answer" in packet:
        answers = packet["dns_answer"]
        parts.append("answer " + (", ".join(map(str, answers)) if isinstance(answers, list)
                                  else str(answers)))
    reasons = packet.get("reasons")
    if isinstance(reasons, list) and reasons:
        parts.append("(" + "; ".join(map(str, reasons)) + ")")
    return " ".join(parts)
