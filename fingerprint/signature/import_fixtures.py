"""Crafted fixtures that prove imported DNS-answer signatures.

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

import ipaddress
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fingerprint.analysis import Result
from fingerprint.catalog import Catalog
from fingerprint.signature.importer import Imported, Origin
from fingerprint.signature.library import SignatureLibrary
from fingerprint.testing.craft import Capture
from fingerprint.testing.fixtures import Fixture

CLIENT = "192.0.2.10"
RESOLVER = "198.51.100.53"
CONTROL_ANSWER_V4 = "203.0.113.99"
CONTROL_ANSWER_V6 = "2001:db8::99"
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
        if item.address is None:
            notes.append(f"{item.id}: not an exact address, no crafted fixture (supply a capture)")
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
                if platform is not None and platform.owns_address(address):
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


def exchanges(plan: FixturePlan, control_name: str) -> list[tuple[str, str, str]]:
    """(qname, qtype, answer) in capture order: controls first, then one per signature."""
    versions = {ipaddress.ip_address(item.address or "").version for item in plan.items}
    out = [(control_name, "A", CONTROL_ANSWER_V4)]
    if 6 in versions:
        out.append((control_name, "AAAA", CONTROL_ANSWER_V6))
    for item in plan.items:
        address = item.address or ""
        qtype = "AAAA" if ipaddress.ip_address(address).version == 6 else "A"
        out.append((plan.names[item.id], qtype, address))
    return out


def write_capture(plan: FixturePlan, path: Path, control_name: str) -> int:
    """Craft the plan's exchanges (fixed ids, ports and times: a rerun writes the same bytes)."""
    cap = Capture(start=START_TS, client=CLIENT)
    count = 0
    for i, (qname, qtype, answer) in enumerate(exchanges(plan, control_name)):
        query = cap.dns(RESOLVER, qname, at=0.05 + 0.07 * i, qtype=qtype, ttl=64, txid=0x1000 + i,
                        sport=40000 + i, ip_id=0x1000 + i, df=False)
        query.respond([answer], delay_ms=20, ttl=RESOLVER_TTL, ip_id=3000 + i, df=False,
                      compress=False)
        count += 2
    cap.write(path)
    return count


def readme(plan: FixturePlan, origin: Origin, control_name: str, capture: str) -> str:
    rows = "\n".join(
        f"| `{plan.names[item.id]}` | {item.address} | `{item.id}` | "
        f"{', '.join([item.row.name, *(r.name for r in item.merged)])} | {item.row.line} |"
        for item in plan.items)
    cc = plan.country.upper()
    return f"""# Imported OONI DNS rows, {cc}: crafted resolver answers

What it shows: a resolver ({RESOLVER}) answers the control name `{control_name}`
genuinely ({CONTROL_ANSWER_V4}), then answers each target name below with the
blockpage / sinkhole / forged address of one row of OONI's blocking-fingerprints
DNS table. All answers come from the same resolver with the same IP TTL
({RESOLVER_TTL}) and IP ID pattern, so the analysis calls each target a DNS
redirect only because the address is a known one (a private or bogon address
is a redirect by itself; a public one is named by its signature).

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
