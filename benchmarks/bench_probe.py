"""Benchmark: a full `fingerprint probe` of the built-in platforms in the lab (root).

For each scenario given (default: gfw, clean), brings the lab up, runs the
probe from the client namespace with `--timeout T` under the default pacing
(`--rate`, connections per destination and overall), and prints the sweep's
wall time and the confirmation round's, and their sum divided by the timeout
(target <= 2.5, issue 13: paced, the sweep can no longer be one burst, and the
confirmation round re-tests every finding), then the cost of localisation
(TTL-limited repeats for the blocked targets) separately.  The
figures come from the report's `timing` block, which the probe measures
around its own phases; the whole command's wall time (interpreter start,
control resolution, localisation, analysis) is printed too, and that wall time
less localisation, divided by the timeout (everything a user waits for a run
with --no-localise).

    sudo PYTHONPATH=. /path/to/venv/bin/python benchmarks/bench_probe.py [--timeout 5] [SCENARIO ...]

`--no-quic` runs the probe without its QUIC Initials and ECH ClientHellos (on by
default), to measure what they add to the sweep.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from fingerprint.lab import lab as lab_core
from fingerprint.lab.scenarios import load_scenario


def up(scenario: str) -> lab_core.LabInfo:
    """Bring the lab up, waiting (up to 5 min) while another session's lab runs."""
    deadline = time.monotonic() + 300
    while True:
        try:
            return lab_core.up(load_scenario(scenario))
        except lab_core.LabBusyError:
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


def bench(scenario: str, timeout: float, extra: list[str]) -> None:
    info = up(scenario)
    try:
        command = lab_core.probe_command(info, timeout, None, extra)
        start = time.monotonic()
        proc = subprocess.run(command, capture_output=True, text=True, check=False)
        wall = time.monotonic() - start
    finally:
        lab_core.down()
    if proc.returncode not in (0, 3):
        print(f"{scenario}: probe failed: {proc.stderr.strip().splitlines()[-1:]}")
        return
    report = json.loads(proc.stdout)
    timing = report["timing"]
    platforms = len(report["platforms"])
    blocked = sum(p["status"] == "blocked" for p in report["platforms"])
    confirmation = timing.get("confirmation_s", 0.0)
    print(f"{scenario:16} platforms={platforms:2d} blocked={blocked:2d} packets={report['packets']:6d}"
          f"  sweep={timing['sweep_s']:6.2f}s  confirmation={confirmation:6.2f}s"
          f"  (sweep+confirmation)/timeout={(timing['sweep_s'] + confirmation) / timeout:5.2f}"
          f"  localisation={timing['localisation_s']:6.2f}s"
          f"  control-resolver={timing['control_resolver_s']:5.2f}s  command wall={wall:6.2f}s"
          f"  (wall-localisation)/timeout={(wall - timing['localisation_s']) / timeout:5.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="*", default=["gfw", "clean"])
    # The probe's own default (`fingerprint probe --timeout`): the sweep is bound by
    # --rate, a number of seconds whatever the timeout, so the ratio depends on it.
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--no-quic", action="store_true",
                        help="probe without QUIC Initials and ECH ClientHellos")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_probe needs root (the lab's namespaces)")
    extra = ["--no-quic"] if args.no_quic else []
    print(f"fingerprint probe, all built-in platforms, --timeout {args.timeout}"
          + (" --no-quic" if args.no_quic else ""))
    for scenario in args.scenarios:
        bench(scenario, args.timeout, extra)


if __name__ == "__main__":
    main()
