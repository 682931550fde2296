"""One OONI measurement per (platform, target) from a finished analysis.

Groups the verdicts' checks and findings by target, gathers each target's DNS,
TCP and QUIC attempts and their controls, has `EntryBuilder` write their entries,
adds the verdict under `x_fingerprint` and wraps it all in the envelope.  The
probe's own addresses are replaced by `probe_ip` unless the user shares it.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fingerprint import __version__
from fingerprint.analysis.addresses import is_ip_address
from fingerprint.analysis.coverage import cut_short_platforms
from fingerprint.analysis.findings import Check, Finding, Verdicts
from fingerprint.analysis.index import ObservationIndex
from fingerprint.analysis.pipeline import Pipeline
from fingerprint.catalog import OTHER, Catalog
from fingerprint.model import Status, Technique
from fingerprint.output.ooni.entries import EntryBuilder, quic_attempts_for, quic_end, quic_entry
from fingerprint.output.ooni.envelope import (
    DATA_FORMAT_VERSION,
    DEFAULT_PROBE_IP,
    DEFAULT_RESOLVER_IP,
    EXTENSIONS,
    MEASUREMENT_SCHEMA,
    TEST_NAME,
    TEST_VERSION,
    ProbeInfo,
    capture_vantage,
    engine_annotations,
    new_run_id,
    ooni_time,
)
from fingerprint.report import finding_json, platform_status

__all__ = ["build_measurements", "measurement_status", "measurements_from_pipeline", "worst_status"]

_STATUS_RANK = {Status.ACCESSIBLE.value: 0, Status.INCONCLUSIVE.value: 1, Status.BLOCKED.value: 2}


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
    builder = EntryBuilder(analysis, verdicts, catalog)
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


def _draft(builder: EntryBuilder, target: _Target, findings_of: dict[str, list[Any]],
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
                    "detail": scrub.text(c.detail),
                    **({} if c.applicable else {"applicable": False})} for c in target.checks],
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
