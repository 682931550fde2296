"""The per-platform report: the contract JSON (report.schema.json) and the table.

A platform is `blocked` when at least one technique was found, `inconclusive`
when something failed but its control failed too (or there was no control to
tell an outage from censorship), and `accessible` when targets and controls
worked.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fingerprint import __version__
from fingerprint.analysis.coverage import cut_short_platforms
from fingerprint.analysis.findings import Check, Finding, Verdicts
from fingerprint.catalog import OTHER, Catalog
from fingerprint.model import Status

SCHEMA_ID = "fingerprint.report/1"


def platform_status(findings: list[Finding], checks: list[Check]) -> Status:
    if findings:
        return Status.BLOCKED
    if any(not c.ok for c in checks if c.applicable):
        return Status.INCONCLUSIVE
    return Status.ACCESSIBLE


def finding_json(finding: Finding) -> dict[str, Any]:
    out: dict[str, Any] = {
        "target": finding.target,
        "technique": finding.technique.value,
        "signatures": list(finding.signatures),
        "confidence": finding.confidence,
    }
    if finding.address:
        out["address"] = finding.address
    if finding.location is not None:
        out["location"] = finding.location.to_json()
    out["evidence"] = [*finding.notes, *(e.text() for e in finding.evidence)]
    out["packets"] = [e.to_json() for e in finding.evidence]
    return out


def tested_json(check: Check) -> dict[str, Any]:
    out: dict[str, Any] = {"target": check.target, "kind": check.kind, "ok": check.ok,
                           "control_ok": check.control_ok, "detail": check.detail}
    if not check.applicable:
        # Added key: a test that could not bear on the target, left out of the status.
        out["applicable"] = False
    return out


def suppressed_json(finding: Finding) -> dict[str, Any]:
    """A finding a false-positive signature suppressed: what it would have said, and which
    signature (`suppressed_by`) recognised it as a known look-alike."""
    out = finding_json(finding)
    out["suppressed_by"] = list(finding.signatures)
    return out


def build_report(verdicts: Verdicts, catalog: Catalog, source: str,
                 platforms: list[str] | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The contract report.  `platforms` lists ids to report even without observations."""
    findings, checks = verdicts.by_platform()
    ids = list(platforms or [])
    seen = set(findings) | set(checks)
    ids += sorted(p for p in seen if p not in ids and p != OTHER)
    if OTHER in seen and OTHER not in ids:
        ids.append(OTHER)
    suppressed: dict[str, list[Finding]] = {}
    for finding in verdicts.suppressed:
        suppressed.setdefault(finding.platform, []).append(finding)
    entries = []
    for pid in ids:
        plat_findings = sorted(findings.get(pid, []), key=lambda f: -f.confidence)
        plat_checks = checks.get(pid, [])
        status = platform_status(plat_findings, plat_checks)
        if not plat_findings and not plat_checks:
            status = Status.INCONCLUSIVE
        techniques: list[str] = []
        for f in plat_findings:
            if f.technique.value not in techniques:
                techniques.append(f.technique.value)
        platform = catalog.platforms.get(pid)
        entry: dict[str, Any] = {
            "platform": pid,
            "name": platform.name if platform else "Other targets",
            "status": status.value,
            "techniques": techniques,
            "findings": [finding_json(f) for f in plat_findings],
            "tested": [tested_json(c) for c in plat_checks],
        }
        if pid in suppressed:
            # Why a platform with a blocking-looking answer is `accessible`.
            entry["suppressed"] = [suppressed_json(f) for f in suppressed[pid]]
        entries.append(entry)
    report: dict[str, Any] = {
        "schema": SCHEMA_ID,
        "tool": {"name": "fingerprint", "version": __version__},
        "source": source,
        "generated": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "platforms": entries,
    }
    if verdicts.ended_early:
        # Added key (report.schema.json): the capture was cut short, so platforms whose
        # tests it does not hold are inconclusive, not accessible.
        report["capture_ended_early"] = {"reasons": list(verdicts.ended_early),
                                         "platforms": cut_short_platforms(verdicts)}
    if verdicts.capture_point:
        # Added key (the contract allows extra keys): which end the capture was taken at.
        report["capture_point"] = verdicts.capture_point
    if extra:
        report.update(extra)
    return report


def render_table(report: dict[str, Any], verbose: bool = True) -> str:
    """The human-readable report: one row per platform, then each finding's proof."""
    rows = [("PLATFORM", "STATUS", "TECHNIQUES", "SIGNATURES")]
    for p in report["platforms"]:
        sigs: list[str] = []
        for f in p["findings"]:
            sigs.extend(s for s in f["signatures"][:2] if s not in sigs)
        rows.append((p["name"], p["status"], ", ".join(p["techniques"]) or "-", ", ".join(sigs) or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(r[i].ljust(widths[i]) for i in range(3)) + "  " + r[3] for r in rows]
    if not report["platforms"]:
        lines.append("(no platform traffic found)")
    ended = report.get("capture_ended_early")
    if ended:
        lines.append("capture ended early: " + "; ".join(ended["reasons"]))
    lines += capture_point_text(report.get("capture_point"))
    if verbose:
        lines += render_findings(report)
    return "\n".join(lines)


def capture_point_text(point: Any) -> list[str]:
    """A line saying the capture was taken at the server (or at both ends), when it was:
    its verdicts are then what the remote clients suffered.  Nothing for the usual case."""
    if not isinstance(point, dict) or point.get("end") not in ("server", "mixed"):
        return []
    how = "given with --vantage" if point.get("source") == "given" else \
        "guessed from the handshakes' TTLs; --vantage overrides"
    if point["end"] == "server":
        return ["", f"captured at the server ({how}): verdicts are what the remote "
                    "clients' connections suffered"]
    servers = sorted(c for c, end in point.get("by_client", {}).items() if end == "server")
    return ["", f"captured at the client for some connections and at the server for those of "
                f"{', '.join(servers[:5])} ({how})"]


def location_text(location: dict[str, Any]) -> str:
    where = [f"hop {location['hop']}" if "hop" in location else "hop ?", location["mode"]]
    if location.get("router"):
        where.append(f"after router {location['router']}")
    if location.get("ttl_copying"):
        where.append("copies the probe's TTL")
    if location.get("endpoint"):
        where.append("at the endpoint (the server or a firewall beside it)")
    return ", ".join(where)


def render_findings(report: dict[str, Any]) -> list[str]:
    """Each finding's proof: target, confidence, signatures, location, evidence packets."""
    lines: list[str] = []
    for p in report["platforms"]:
        if p["status"] == Status.INCONCLUSIVE.value:
            failed = [t for t in p.get("tested", []) if not t["ok"] and t.get("applicable", True)]
            lines += ["", f"{p['name']}: inconclusive"] + [
                f"  {t['kind']} {t['target']}: failed, and so did its control ({t['detail']})"
                if t["control_ok"] is False else f"  {t['kind']} {t['target']}: failed ({t['detail']})"
                for t in failed[:6]]
            if not failed:
                lines.append("  nothing of this platform was observed")
        for f in p["findings"]:
            lines.append("")
            head = f"{p['name']}: {f['technique']} on {f['target']}"
            if f.get("address") and f["address"] != f["target"]:
                head += f" via {f['address']}"
            head += f"  (confidence {f['confidence']:.2f})"
            lines.append(head)
            if f["signatures"]:
                lines.append(f"  signatures: {', '.join(f['signatures'])}")
            if f.get("location"):
                lines.append(f"  location: {location_text(f['location'])}")
            for item in f["evidence"]:
                lines.append(f"  {item}")
    return lines
