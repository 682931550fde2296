"""A capture cut short: tests a probe run planned that its capture does not hold (issue 15).

A capture cut at a size (or by `editcap -c`) can hold a platform's DNS and address
tests but not its TLS and HTTP ones; judged on what it holds, the platform would
read `accessible`.  A probe capture's hints name the planned platforms and the
addresses probed for each: on every such address the probe sends TLS (443) and
HTTP (80) triggers for the platform's names once a control connected on the
port, so a port with no attempt at all, or connected with no target trigger,
was not covered.  Those are failed checks with the reason, and the verdicts say
the capture ended early.  Captures of other tools carry no plan and are judged
on what they hold.
"""

from __future__ import annotations

from collections import defaultdict

from fingerprint.analysis.findings import Check, Verdicts
from fingerprint.analysis.index import ObservationIndex
from fingerprint.analysis.observe import TcpFlow
from fingerprint.analysis.outcome import Outcome

ENDED_BEFORE_ANSWER = "the capture ended before an answer was due"
"""A check's detail when no attempt of a target had an answer due yet (`rules.trigger`)."""
NOT_HELD = "the capture holds no"
"""How a check of a planned test the capture does not hold begins its reason."""


def coverage(index: ObservationIndex, out: Verdicts) -> None:
    plan = index.hints.raw.get("probe")
    planned = plan.get("platforms") if isinstance(plan, dict) else None
    missing: list[str] = []
    if isinstance(planned, list):
        ports: dict[tuple[str, int], list[tuple[str, str, list[TcpFlow]]]] = defaultdict(list)
        for (server, port, kind, name), group in index.tcp_groups.items():
            ports[(server, port)].append((kind, name, list(group)))
        for address, platform in sorted(index.hints.address_platform.items()):
            if platform not in planned:
                continue
            for port, kind in ((443, "tls"), (80, "http")):
                groups = ports.get((address, port), [])
                if any(k == kind and n and not index.catalog.is_control_name(n)
                       for k, n, _g in groups):
                    continue
                flows = [f for _k, _n, group in groups for f in group]
                if flows and not any(f.synack is not None for f in flows) and any(
                        index.outcome(f).kind is not Outcome.PENDING for f in flows):
                    continue  # never connected: judged by rules.trigger.untested
                missing.append(f"{kind.upper()} of {platform} at {address}")
                out.checks.append(Check(platform, address, kind, False, None,
                                        f"{NOT_HELD} {kind.upper()} test of {address}: it "
                                        "ended before the probe's"))
    if missing:
        out.ended_early.append("the probe planned tests the capture does not hold: "
                               + ", ".join(missing))
    pending = sum(1 for c in out.checks if c.detail.endswith(ENDED_BEFORE_ANSWER))
    if pending:
        out.ended_early.append(f"{pending} test(s) had no answer yet when the capture ended")


def cut_short_platforms(verdicts: Verdicts) -> list[str]:
    """Platforms with a test the capture does not hold, or with no answer due yet."""
    return sorted({c.platform for c in verdicts.checks
                   if not c.ok and c.control_ok is None
                   and (c.detail.startswith(NOT_HELD) or c.detail.endswith(ENDED_BEFORE_ANSWER))})
