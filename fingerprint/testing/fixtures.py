"""Fixture folders: a capture plus what analysing it must give.

A fixture is a folder under `pcaps/` holding one capture (`*.pcap`,
`*.pcapng`, optionally `.gz`), `expected.json` (the report `analyze --json`
gives), a README saying what it shows and where the behaviour comes from, and
optionally `catalog.yaml` and `ca.pem` when it was recorded against the lab.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fingerprint.analysis.pipeline import Result, analyze_files
from fingerprint.catalog import load_catalog
from fingerprint.errors import InputError
from fingerprint.report import build_report
from fingerprint.signature import SignatureLibrary
from fingerprint.trust import TrustStore

CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".pcap.gz", ".pcapng.gz", ".cap")


@dataclass(frozen=True)
class Fixture:
    folder: Path

    @property
    def capture(self) -> Path:
        captures = sorted(p for p in self.folder.iterdir()
                          if p.is_file() and p.name.endswith(CAPTURE_SUFFIXES))
        if len(captures) != 1:
            raise InputError(str(self.folder), f"a fixture holds exactly one capture, found {len(captures)}")
        return captures[0]

    @property
    def expected_path(self) -> Path:
        return self.folder / "expected.json"

    def analyze(self, library: SignatureLibrary) -> tuple[Result, dict[str, Any]]:
        catalog_file = self.folder / "catalog.yaml"
        ca_file = self.folder / "ca.pem"
        catalog = load_catalog(catalog_file if catalog_file.exists() else None)
        trust = TrustStore(ca_file if ca_file.exists() else None)
        result = analyze_files([str(self.capture)], catalog, library, trust, on_problem=lambda _l: None)
        return result, build_report(result.verdicts, catalog, "analyze")

    def expected(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.expected_path.read_text())
        return loaded


def find_fixtures(root: Path) -> list[Fixture]:
    return [Fixture(p.parent) for p in sorted(root.rglob("expected.json"))]


def resolve_fixture(reference: str, base: Path) -> Fixture:
    """A signature's fixture reference (a path relative to the repository root)."""
    path = Path(reference)
    if not path.is_absolute():
        path = base / path
    if not path.is_dir():
        raise InputError(reference, "fixture folder not found")
    return Fixture(path)


def verdict_summary(report: dict[str, Any]) -> dict[str, Any]:
    """The stable part of a report that fixtures pin down (evidence text may evolve)."""
    out: dict[str, Any] = {}
    for p in report["platforms"]:
        out[p["platform"]] = {
            "status": p["status"],
            "techniques": sorted(p["techniques"]),
            "findings": sorted([f["target"], f["technique"], sorted(f["signatures"])]
                               for f in p["findings"]),
        }
    return out


def install_fixture(staging: Path, report: dict[str, Any], target: Path) -> int:
    """Write `report` as the staged folder's expected.json and put the folder at `target`
    (replacing what was there); returns the folder's size in bytes.  The fixture scripts
    stage every case first, so a case that comes out wrong replaces nothing."""
    (staging / "expected.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(staging, target)
    return sum(p.stat().st_size for p in target.iterdir())
