"""How right `fingerprint analyze` is on real captures recorded by other researchers.

Runs the offline analysis over every capture set in `shared/realworld` beside the
repository (or beside a parent of it; `--data` overrides) and compares, per capture and target, what the
authors say (`benchmarks/realworld-labels.yaml`) with what the report says:

    python benchmarks/realworld.py
    python benchmarks/realworld.py --data /path/to/realworld --set tripwire -v

Totals: right, wrong, and false `blocked` (a target the authors call accessible,
reported blocked: the worst outcome).  Rows marked `proto: quic` wait for the QUIC
issue and are counted apart ("quic, pending").  Blocked findings on targets the
authors do not label are listed, not scored.  The data is not part of the product:
when the folder is absent the script says so and exits 0.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fingerprint.analysis.observe import CaptureHints  # noqa: E402
from fingerprint.analysis.pipeline import analyze_files  # noqa: E402
from fingerprint.catalog import load_catalog  # noqa: E402
from fingerprint.report import build_report  # noqa: E402
from fingerprint.signature import load_library  # noqa: E402
from fingerprint.trust import TrustStore  # noqa: E402


def default_data() -> Path:
    """`shared/realworld` beside the repository, or beside one of its parents (a git
    worktree sits one level deeper than the main checkout)."""
    for parent in REPO.parents:
        candidate = parent / "shared" / "realworld"
        if candidate.is_dir():
            return candidate
    return REPO.parent / "shared" / "realworld"


DEFAULT_DATA = default_data()
DEFAULT_LABELS = Path(__file__).resolve().parent / "realworld-labels.yaml"


@dataclass
class Tally:
    right: int = 0
    wrong: int = 0
    false_blocked: int = 0
    quic_right: int = 0
    quic_pending: int = 0
    unlabelled_blocked: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def found_for(report: dict[str, Any], platform: str, target: str,
              quic: bool) -> tuple[str, list[str]]:
    """What the report says about one target over QUIC or over everything else.

    blocked: a finding names the target; accessible: every check of it worked;
    inconclusive: a check failed without a finding; absent: not tested at all.
    """
    techniques: set[str] = set()
    checks: list[bool] = []
    for entry in report["platforms"]:
        if entry["platform"] != platform:
            continue
        techniques |= {f["technique"] for f in entry["findings"] if f["target"] == target
                       and f["technique"].startswith("quic.") == quic}
        checks += [bool(t["ok"]) for t in entry.get("tested", []) if t["target"] == target
                   and (t.get("kind") == "quic") == quic]
    if techniques:
        return "blocked", sorted(techniques)
    if not checks:
        return "absent", []
    return ("accessible" if all(checks) else "inconclusive"), []


def judge(label: dict[str, Any], status: str, techniques: list[str]) -> bool:
    if label["status"] == "blocked":
        return status == "blocked" and bool(set(techniques) & set(label.get("techniques", [])))
    if label["status"] == "unknown":  # the capture cannot show it either way: only blocked is wrong
        return status != "blocked"
    if label.get("role") == "control":
        return status in ("accessible", "absent")
    return status == "accessible"


def run_capture(capture: dict[str, Any], folder: Path, tally: Tally, verbose: bool,
                vantage: str | None) -> None:
    files = [folder / name for name in capture["files"]]
    absent = [str(f) for f in files if not f.exists()]
    if absent:
        tally.missing += absent
        print(f"{capture['name']}: skipped, missing {', '.join(absent)}")
        return
    catalog = load_catalog(None)
    library = load_library(REPO / "signatures")
    hints = CaptureHints(raw={"capture_point": vantage}) if vantage else None
    result = analyze_files([str(f) for f in files], catalog, library, TrustStore(None),
                           on_problem=lambda _line: None, vantage=hints)
    report = build_report(result.verdicts, catalog, "analyze")
    where = report.get("capture_point", {}).get("end", "-") if isinstance(
        report.get("capture_point"), dict) else "-"
    print(f"{capture['name']}  ({capture['set']}, taken {capture.get('taken', '?')} at the "
          f"{capture.get('vantage', '?')}; report says: {where})")
    labelled: set[tuple[str, str]] = set()
    for label in capture["expect"]:
        labelled.add((label["platform"], label["target"]))
        status, techniques = found_for(report, label["platform"], label["target"],
                                       label.get("proto") == "quic")
        ok = judge(label, status, techniques)
        expected = label["status"] + (f" {'/'.join(label['techniques'])}"
                                      if label["status"] == "blocked" else "")
        got = status + (f" {','.join(techniques)}" if techniques else "")
        if label.get("proto") == "quic":
            mark = "quic ok" if ok else "quic, pending"
            if ok:
                tally.quic_right += 1
            else:
                tally.quic_pending += 1
        elif ok:
            mark = "right"
            tally.right += 1
        else:
            false_blocked = label["status"] in ("accessible", "unknown") and status == "blocked"
            mark = "FALSE BLOCKED" if false_blocked else "wrong"
            tally.wrong += 1
            tally.false_blocked += false_blocked
        print(f"  {label['platform']:<8} {label['target']:<22} expected {expected:<24} "
              f"found {got:<32} {mark}")
    for entry in report["platforms"]:
        for finding in entry["findings"]:
            key = (entry["platform"], finding["target"])
            if key in labelled:
                continue
            line = f"{capture['name']}: {finding['target']} {finding['technique']}"
            tally.unlabelled_blocked.append(line)
            if verbose:
                print(f"  (unlabelled) {entry['platform']:<8} {finding['target']:<22} "
                      f"found blocked {finding['technique']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help=f"the realworld folder (default {DEFAULT_DATA})")
    parser.add_argument("--labels", type=Path, default=DEFAULT_LABELS)
    parser.add_argument("--set", action="append", dest="sets",
                        help="only this set (repeatable)")
    parser.add_argument("--vantage", choices=("client", "server"),
                        help="pass --vantage to the analysis (default: let it guess)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="also list blocked findings on unlabelled targets")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"realworld: {args.data} not found, nothing to measure (skipped)")
        return 0
    labels = yaml.safe_load(args.labels.read_text())
    tally = Tally()
    for capture in labels["captures"]:
        if args.sets and capture["set"] not in args.sets:
            continue
        folder = args.data / capture["set"]
        if not folder.is_dir():
            print(f"{capture['name']}: skipped, set {capture['set']} absent")
            continue
        run_capture(capture, folder, tally, args.verbose, args.vantage)
    scored = tally.right + tally.wrong
    print()
    print(f"TLS/HTTP/DNS labels: {scored}  right {tally.right}  wrong {tally.wrong}  "
          f"false blocked {tally.false_blocked}")
    print(f"QUIC labels: {tally.quic_right + tally.quic_pending}  right {tally.quic_right}  "
          f"quic, pending {tally.quic_pending}")
    print(f"blocked findings on unlabelled targets (not scored): {len(tally.unlabelled_blocked)}")
    if tally.missing:
        print(f"missing files: {len(tally.missing)}")
    unlisted = unlisted_captures(args.data, labels["captures"], args.sets)
    if unlisted:
        # A set that grew (or a new one): its captures are not measured until labelled.
        print(f"captures in {args.data} the label file does not list ({len(unlisted)}): "
              + ", ".join(unlisted))
    return 0


def unlisted_captures(data: Path, captures: list[dict[str, Any]],
                      sets: list[str] | None) -> list[str]:
    listed = {(c["set"], name) for c in captures for name in c["files"]}
    found = sorted(path.relative_to(data) for path in data.glob("*/*")
                   if path.suffix in (".pcap", ".pcapng", ".cap", ".gz")
                   and (not sets or path.parent.name in sets))
    return [str(rel) for rel in found if (rel.parts[0], rel.name) not in listed]


if __name__ == "__main__":
    raise SystemExit(main())
