"""Benchmark: lab scenarios run again and again, for the agreement figures (root).

Runs `fingerprint lab run SCENARIO --json` RUNS times per scenario (default pacing and
confirmation round, the whole built-in catalog) and prints, per scenario:

* exact: runs whose verdicts are exactly the scenario's expectations (platforms a
  scenario marks `open_may_be_inconclusive` may be inconclusive instead of accessible);
* false blocked: platforms the scenario leaves open that a run called blocked, summed
  over the runs (issue 13's goal: 0 for the slow middlebox over 10 runs);
* identical: whether every run gave the same (status, techniques) per platform.

    sudo PYTHONPATH=. .venv/bin/python benchmarks/bench_scenarios.py --runs 5 \\
        firewall-reset address-interception injector-residual
    sudo PYTHONPATH=. .venv/bin/python benchmarks/bench_scenarios.py --runs 10 slow-middlebox

Figures are printed, never asserted (tests/lab/test_lab_scenarios.py checks one run of
every scenario).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Any

from fingerprint.lab.scenarios import load_scenario

Verdicts = dict[str, tuple[str, tuple[str, ...]]]


def one_run(scenario: str) -> Verdicts:
    done = subprocess.run([sys.executable, "-m", "fingerprint", "lab", "run", scenario, "--json"],
                          capture_output=True, text=True, check=False)
    if done.returncode not in (0, 3):
        raise SystemExit(f"lab run {scenario} failed ({done.returncode}): {done.stderr.strip()}")
    report: dict[str, Any] = json.loads(done.stdout)
    return {p["platform"]: (p["status"], tuple(sorted({f["technique"] for f in p.get("findings", [])})))
            for p in report["platforms"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenarios", nargs="+")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    for scenario_id in args.scenarios:
        scenario = load_scenario(scenario_id)
        lenient = scenario.open_may_be_inconclusive
        runs: list[Verdicts] = []
        exact = false_blocked = 0
        started = time.monotonic()
        for _ in range(args.runs):
            verdicts = one_run(scenario_id)
            runs.append(verdicts)
            expected = scenario.expected(sorted(verdicts))
            wrong = 0
            for platform, (status, techniques) in verdicts.items():
                want = tuple(expected.get(platform, []))
                if want:
                    wrong += (status, techniques) != ("blocked", want)
                elif status == "blocked":
                    wrong += 1
                    false_blocked += 1
                elif status != "accessible" and not lenient:
                    wrong += 1
            exact += wrong == 0
        identical = all(r == runs[0] for r in runs)
        print(f"{scenario_id}: {args.runs} runs in {time.monotonic() - started:.0f} s; exact "
              f"{exact}/{args.runs}; false blocked {false_blocked}; identical "
              f"{'yes' if identical else 'no'}")
        if not identical:
            for platform in sorted(runs[0]):
                seen = sorted({f"{r[platform][0]} {','.join(r[platform][1])}".strip() for r in runs})
                if len(seen) > 1:
                    print(f"  {platform}: {' | '.join(seen)}")


if __name__ == "__main__":
    main()
